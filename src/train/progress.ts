/**
 * The training progress line on stderr: step, loss, lr, tokens/s and ETA. On a terminal it redraws one
 * line; otherwise (logs, CI) it prints a line every `intervalMs`.
 */
export interface ProgressFields {
  loss: number;
  lr: number;
  tokensPerSec: number;
  extra?: string;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec),
    h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export class ProgressBar {
  private readonly started = Date.now();
  private lastPrint = 0;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly firstStep: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly intervalMs = 5000,
    enabled = true,
  ) {
    this.tty = enabled && out.isTTY === true;
    this.enabled = enabled;
  }

  private readonly enabled: boolean;

  /** The line for `step` (steps done) — exported for tests through render(). */
  render(step: number, f: ProgressFields, now = Date.now()): string {
    const done = step - this.firstStep;
    const perStep = done > 0 ? (now - this.started) / 1000 / done : NaN;
    const width = 24,
      filled = Math.round((width * step) / Math.max(1, this.total));
    const bar = '█'.repeat(Math.min(width, filled)) + '░'.repeat(Math.max(0, width - filled));
    return (
      `${bar} ${step}/${this.total} loss ${f.loss.toFixed(4)} lr ${f.lr.toExponential(2)} ` +
      `${Math.round(f.tokensPerSec)} tok/s ETA ` +
      `${formatDuration(perStep * (this.total - step))}${f.extra ? ` ${f.extra}` : ''}`
    );
  }

  update(step: number, f: ProgressFields): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (this.tty) {
      this.out.write(`\r\x1b[2K${this.render(step, f, now)}`);
      return;
    }
    if (now - this.lastPrint >= this.intervalMs || step === this.total) {
      this.lastPrint = now;
      this.out.write(`${this.render(step, f, now)}\n`);
    }
  }

  /** Prints a message without breaking the redrawn line. */
  note(msg: string): void {
    if (!this.enabled) return;
    this.out.write(this.tty ? `\r\x1b[2K${msg}\n` : `${msg}\n`);
  }

  done(): void {
    if (this.tty) this.out.write('\n');
  }
}
