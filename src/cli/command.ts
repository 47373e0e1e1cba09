/** A sub-command of the `search-r3` CLI. Each lives in its own file; commands.ts names it and lists it. */
export interface Command {
  /** Full help text for `search-r3 <name> --help`. */
  help: string;
  /**
   * The sub-commands a first word may name (`train sft`, `rlenv audit`): one of them must come first, or the
   * command line is refused in one sentence naming them before the command runs.
   */
  subcommands?: readonly string[];
  /** What the command calls its sub-commands in that sentence (default 'sub-command'). */
  subcommandNoun?: string;
  /** The help of a sub-command that has its own (`train lm --help`); `help` is shown otherwise. */
  helpOf?(subcommand: string): string | undefined;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
  /**
   * What to do next when the GPU device fails while the command runs (lost, out of memory: a GpuError
   * with deviceFailed), added to the device's sentence; without it, the user is told to run it again.
   */
  afterGpuFailure?: string;
  /**
   * What makes the command's work smaller on the GPU ('a smaller --batch-tokens or --max-length'), for the
   * sentence of a tensor larger than the GPU binds or of a GPU out of memory; `subcommand` is the first word
   * of the command line. Without it, the sentence says 'a smaller batch or sequence length'.
   */
  gpuSizeSettings?(subcommand: string | undefined): string | undefined;
}

/** An error whose message is meant for the user as it is: printed without a stack trace. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
