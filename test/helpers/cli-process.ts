/** A `search-r3` CLI process a test watches while it runs: its output so far, waits for lines, kills. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after } from 'node:test';
import { repoRoot } from './repo.js';

/** The processes not yet exited, of the test file that imports this module. */
const running = new Set<ChildProcess>();

// a test that fails before it stops its processes (a coordinator waiting for workers that will never come)
// must not leave them running: the test file's process would wait on them, and the suite would never end
after(() => {
  for (const p of running) p.kill('SIGKILL');
});

export class CliProcess {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Resolves once the process has exited and all it wrote is in `output` ('exit' may come before the rest). */
  readonly closed: Promise<void>;
  private readonly proc: ChildProcess;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (b: Buffer): void => void (this.output += b.toString());
    this.proc.stdout!.on('data', take);
    this.proc.stderr!.on('data', take);
    running.add(this.proc);
    this.closed = new Promise((resolve) => this.proc.once('close', () => resolve()));
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        running.delete(this.proc);
        resolve({ code, signal });
      }),
    );
  }

  /** The first match of `re` in the output, waiting for it (rejects if the process exits first or after `ms`). */
  async waitFor(re: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
    const start = Date.now();
    for (;;) {
      const m = re.exec(this.output);
      if (m) return m;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null || Date.now() - start > ms)
        throw new Error(`never printed ${re}; output:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.proc.kill(signal);
  }

  /**
   * The exit code, once the process exits by itself; one still running `ms` later is killed and the call fails,
   * so that a process that never stops fails its test instead of hanging the suite.
   */
  ended(ms: number): Promise<number | null> {
    return this.exitWithin(ms, `still running after ${ms / 1000} s`);
  }

  /**
   * SIGTERM, and the exit code; a process still running `ms` later is killed and the call fails, so that a
   * process that ignores SIGTERM fails its test instead of hanging the suite.
   */
  async stop(ms = 15_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return (await this.exited).code;
    this.kill('SIGTERM');
    return this.exitWithin(ms, `still running ${ms / 1000} s after SIGTERM`);
  }

  /** The exit code within `ms`; else the process is killed and the call fails, saying `late`. */
  private async exitWithin(ms: number, late: string): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
    const end = await Promise.race([this.exited, deadline]);
    clearTimeout(timer);
    if (end === 'late') {
      this.kill('SIGKILL');
      await this.exited;
      throw new Error(`${late} (killed); output:\n${this.output}`);
    }
    return end.code;
  }
}
