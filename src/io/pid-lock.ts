/**
 * One writer per folder, between processes on this machine: a lock file created exclusively, holding the
 * writer's pid. A lock whose process is gone (a killed run) is stale and taken over, so kill -9 never
 * blocks the next run; a process that exits (process.exit included) removes its own. A process can take
 * over its own lock: one process runs one writer at a time.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { processRuns } from './process-runs.js';

/** The locks this process holds, removed when it exits (one listener for all of them). */
const held = new Set<PidLock>();
let exitHook = false;

export class PidLock {
  private constructor(readonly file: string) {
    held.add(this);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const lock of held) lock.release();
      });
    }
  }

  /**
   * Takes the lock `file`, or throws what `refuse` makes of the live process that holds it (undefined: the
   * lock was taken again each time it was found stale, by processes racing for it).
   */
  static acquire(file: string, refuse: (pid: number | undefined) => Error): PidLock {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new PidLock(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = PidLock.holder(file);
      if (pid !== undefined) throw refuse(pid);
      rmSync(file, { force: true }); // stale: its writer is gone
    }
    throw refuse(undefined);
  }

  /** The pid of the live process, other than this one, that holds the lock `file`; undefined when none does. */
  static holder(file: string): number | undefined {
    let pid = NaN;
    try {
      pid = Number(readFileSync(file, 'utf8').trim());
    } catch {
      return undefined; // no lock, or removed meanwhile
    }
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && processRuns(pid) ? pid : undefined;
  }

  /** Removes the lock, if it is still this process's. */
  release(): void {
    held.delete(this);
    try {
      if (Number(readFileSync(this.file, 'utf8').trim()) === process.pid) rmSync(this.file, { force: true });
    } catch {
      /* already gone */
    }
  }
}
