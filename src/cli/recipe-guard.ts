/**
 * What keeps two runs of `recipe default` on one work folder from running its steps side by side: the
 * recipe's lock on the folder, and the record of the step it runs, by which a run finds the step that a killed
 * run of the recipe left running (it stops by itself: parent-watch.ts) and waits for it.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicallySync } from '../io/atomic-file.js';
import { fileSystemCause } from '../io/file-system-cause.js';
import { PidLock } from '../io/pid-lock.js';
import { processRuns, taskStart } from '../io/process-runs.js';
import { UserError } from './command.js';

/** The recipe's lock on its work folder, held for its whole run. */
export const RECIPE_LOCK_FILE = 'recipe.lock';
/** The step the recipe runs as a child process: written when it starts, removed when it exits. */
export const RUNNING_STEP_FILE = 'recipe-step.json';
/** How long a run waits for a killed run's step to stop (a trainer finishes its step in progress first). */
export const ORPHAN_WAIT_MS = 120_000;

/** Takes the lock on the work folder `work`, or says in one sentence which recipe runs in it. */
export function lockWorkFolder(work: string): PidLock {
  const file = path.join(work, RECIPE_LOCK_FILE);
  return PidLock.acquire(file, (pid, otherThread) => {
    const clash = 'two recipes in one work folder would run the same steps over each other';
    if (pid === undefined)
      return new UserError(`${file}: could not take the work folder's lock; other processes keep taking it`);
    if (pid === process.pid)
      return new UserError(
        `${work} is in use by another recipe in ${otherThread ? 'another thread of ' : ''}this process; ${clash}`,
      );
    return new UserError(
      `${work} is in use by another recipe (pid ${pid}, in ${file}); ${clash}: wait for it to finish or stop it ` +
        `(kill -TERM ${pid}), then run this again`,
    );
  });
}

/** A step as the record names it: its process, that process's start (to tell a reused pid), its command. */
interface RunningStep {
  pid: number;
  start?: string;
  command: string;
}

/** When process `pid` started (clock ticks since boot); undefined where /proc cannot say. */
function processStart(pid: number): string | undefined {
  try {
    return taskStart(pid, pid);
  } catch {
    return undefined; // /proc hides it: the pid is all there is to go by
  }
}

/**
 * Records in `file` that process `pid` runs `command` (search-r3 and its first words); a record that cannot be
 * written is a UserError naming the file, its cause and what to do.
 */
export function recordStep(file: string, pid: number, command: string): void {
  const start = processStart(pid);
  const step: RunningStep = { pid, ...(start !== undefined ? { start } : {}), command };
  try {
    writeFileAtomicallySync(file, JSON.stringify(step) + '\n');
  } catch (e) {
    const known = fileSystemCause(e);
    const why = known ? `${known.cause} (${known.code})` : e instanceof Error ? e.message : String(e);
    const remedy = known?.remedy ?? 'make the work folder writable';
    throw new UserError(
      `${file} could not be written (${why}), so ${command} was not run: a run of the recipe after this one ` +
        `is killed finds the step it left running by that record; ${remedy}, then run the same command again ` +
        '(finished steps are kept)',
    );
  }
}

/** Removes the record `file` (its step has exited). */
export function clearStep(file: string): void {
  rmSync(file, { force: true });
}

/** The step `file` records; undefined when there is none, or the file is not such a record. */
function readStep(file: string): RunningStep | undefined {
  let step: Partial<RunningStep>;
  try {
    step = JSON.parse(readFileSync(file, 'utf8')) as Partial<RunningStep>;
  } catch {
    return undefined; // no record: no step was left running (a record is written whole or not at all)
  }
  const { pid, start, command } = step ?? {};
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, ...(typeof start === 'string' ? { start } : {}), command: typeof command === 'string' ? command : '' };
}

/** Whether the recorded step still runs: its pid runs, with the start recorded where one was. */
function stillRuns(step: RunningStep): boolean {
  if (step.pid === process.pid || !processRuns(step.pid)) return false;
  return step.start === undefined || processStart(step.pid) === step.start;
}

/**
 * Before a run's first step: when `file` records a step that still runs (its recipe was killed, and the step
 * outlived it), says so in one line and waits for it to stop, up to `waitMs`; then refuses in one sentence
 * naming the pid to stop. A record whose step is gone is removed.
 */
export async function awaitEarlierStep(
  file: string,
  log: (line: string) => void,
  waitMs = ORPHAN_WAIT_MS,
): Promise<void> {
  const step = readStep(file);
  if (step !== undefined && stillRuns(step)) {
    const what = `pid ${step.pid} (${step.command || 'a step'}), which a killed run of the recipe left running`;
    log(`${what}, still runs; waiting for it to stop (it stops by itself once it finds its recipe gone)`);
    const until = Date.now() + waitMs;
    while (stillRuns(step)) {
      if (Date.now() > until)
        throw new UserError(
          `${what}, still runs after ${Math.round(waitMs / 1000)} s; a second run of that step beside it would ` +
            `write over it: stop it (kill -TERM ${step.pid}), then run the recipe again`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  clearStep(file);
}
