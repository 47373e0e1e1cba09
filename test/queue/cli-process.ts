/** A `search-r3` CLI process the queue tests watch while it runs: its output so far, waits for lines, kills. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';

export class CliProcess {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  private readonly proc: ChildProcess;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (b: Buffer): void => void (this.output += b.toString());
    this.proc.stdout!.on('data', take);
    this.proc.stderr!.on('data', take);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
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

  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.kill('SIGTERM');
    return (await this.exited).code;
  }
}
