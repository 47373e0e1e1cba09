import type { Command } from './command.js';
import { evalCommand } from './eval.js';
import { indexCommand } from './index-cmd.js';
import { searchCommand } from './search.js';
import { serveCommand } from './serve.js';
import { dashboardCommand } from './dashboard.js';
import { workerCommand } from './worker.js';
import { exportCommand } from './export.js';
import { addEmbedTokenCommand } from './add-embed-token.js';
import { trainCommand } from './train.js';
import { mineCommand } from './mine.js';
import { rlenvCommand } from './rlenv-audit.js';
import { tokenizerCommand } from './tokenizer-train.js';
import { corpusCommand } from './corpus-build.js';
import { demoCommand } from './demo.js';
import { recipeCommand } from './recipe.js';

/** Every sub-command, in the order `--help` lists them. Add one line per command. */
export const commands: Command[] = [
  evalCommand,
  indexCommand,
  searchCommand,
  serveCommand,
  dashboardCommand,
  workerCommand,
  exportCommand,
  addEmbedTokenCommand,
  trainCommand,
  mineCommand,
  rlenvCommand,
  tokenizerCommand,
  corpusCommand,
  demoCommand,
  recipeCommand,
];
