/**
 * Progress for the index command: a redrawn bar with rate and ETA when stderr is a terminal, otherwise a
 * plain line every few seconds (and at the end), so logs of long runs stay readable.
 */
export class ProgressReporter {
  private readonly start = performance.now();
  private lastLine = 0;
  private readonly tty = process.stderr.isTTY === true;

  constructor(
    private readonly label: string,
    private readonly lineEveryMs = 5000,
  ) {}

  update(done: number, total: number): void {
    const now = performance.now();
    const finished = done >= total;
    if (!this.tty && !finished && now - this.lastLine < this.lineEveryMs) return;
    this.lastLine = now;
    const secs = (now - this.start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = rate > 0 ? (total - done) / rate : NaN;
    const pct = total > 0 ? (100 * done) / total : 100;
    const stats =
      `${done}/${total} (${pct.toFixed(1)}%) ${rate.toFixed(1)}/s elapsed ${fmt(secs)} ETA ` +
      `${Number.isFinite(eta) ? fmt(eta) : '?'}`;
    if (this.tty) {
      const width = 30;
      const filled = Math.round((width * pct) / 100);
      process.stderr.write(
        `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${stats}\x1b[K${finished ? '\n' : ''}`,
      );
    } else {
      process.stderr.write(`${this.label}: ${stats}\n`);
    }
  }
}

function fmt(s: number): string {
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
