/**
 * The calls under way on something that close() must not pull from under them (an index's files, a LanceDB
 * connection): each is tracked until it settles, whichever way, so that close() can wait for them all.
 */
export class CallsUnderWay {
  private readonly calls = new Set<Promise<void>>();

  /** `run`, tracked until it settles. */
  track<T>(run: Promise<T>): Promise<T> {
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.calls.add(settled);
    void settled.then(() => this.calls.delete(settled));
    return run;
  }

  /** Settles once every call tracked so far has. */
  async settled(): Promise<void> {
    await Promise.all(this.calls);
  }
}
