/**
 * A command run as one of a recipe's steps stops by itself when the recipe is gone. The recipe passes its
 * signals on to the step, but a recipe killed with SIGKILL (or by the OOM killer) passes nothing, and its step
 * would run on as an orphan beside the step the next run of the recipe starts in its place.
 */

/** The environment variable through which a recipe gives the step it spawns its own pid. */
export const PARENT_PID_VARIABLE = 'SEARCH_R3_PARENT_PID';

/** How often a step looks whether its recipe is still its parent. */
const WATCH_MS = 1000;

/**
 * When PARENT_PID_VARIABLE names a process, watches (now, then once a second) that it is still this process's
 * parent; once it is not (the process that was given this one is gone), sends this process SIGTERM, so that the
 * command stops as on Ctrl-C (a trainer after its step in progress, with a checkpoint). The variable is removed
 * from the environment: a command this one runs has this one as its parent.
 */
export function watchParent(env: NodeJS.ProcessEnv = process.env): void {
  const value = env[PARENT_PID_VARIABLE];
  delete env[PARENT_PID_VARIABLE];
  const parent = Number(value);
  if (value === undefined || !Number.isSafeInteger(parent) || parent <= 0) return;
  const stopIfOrphaned = (): boolean => {
    if (process.ppid === parent) return false;
    process.stderr.write(`search-r3: the recipe that ran this step (pid ${parent}) is gone; stopping as on SIGTERM.\n`);
    process.kill(process.pid, 'SIGTERM');
    return true;
  };
  if (stopIfOrphaned()) return;
  const timer = setInterval(() => {
    if (stopIfOrphaned()) clearInterval(timer);
  }, WATCH_MS);
  timer.unref(); // the watch never keeps a finished command alive
}
