/** What every `train <stage>` takes to end a session early, shared by train's help and each stage's. */

import { SESSION_ENDED } from '../train/training-run.js';

export { SESSION_ENDED };

/** The --max-seconds lines of a help whose descriptions start at column 19. */
export const MAX_SECONDS_HELP = [
  '  --max-seconds <n>  end this session within n seconds of wall time: before a step that would not end in',
  `                   time, write a checkpoint and exit with code ${SESSION_ENDED}; --resume continues (for machines`,
  '                   lent for minutes at a time)',
].join('\n');
