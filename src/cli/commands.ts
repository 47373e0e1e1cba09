import type { Command } from './command.js';
import { evalCommand } from './eval.js';

/** Every sub-command, in the order `--help` lists them. Add one line per command. */
export const commands: Command[] = [
  evalCommand,
];
