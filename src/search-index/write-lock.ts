/**
 * One writer per index: two `search-r3 index` runs on one folder would encode the same pending chunks and
 * overwrite each other's HNSW file. The lock is a file naming the writer's pid and thread (io/pid-lock.ts); a
 * lock whose holder is gone (a killed run, a terminated worker) is stale and taken over, so kill -9 never
 * blocks the resume. Two SearchIndex instances of one folder in one process (in one thread or two) are two
 * writers too: each keeps its own graph in memory, and the one that commits last would save a graph without
 * the other's vectors.
 */
import path from 'node:path';
import { PidLock } from '../io/pid-lock.js';
import { IndexError } from './index-error.js';

export const LOCK_FILE = 'write.lock';

export class WriteLock {
  private constructor(private readonly lock: PidLock) {}

  static acquire(dir: string): WriteLock {
    const file = path.join(dir, LOCK_FILE);
    const lock = PidLock.acquire(file, (pid, otherThread) => new IndexError(inUse(dir, file, pid, otherThread)));
    return new WriteLock(lock);
  }

  /**
   * The pid of the live process that holds the lock of `dir`, other than this thread (process.pid when another
   * thread of this process holds it); undefined when none does.
   */
  static holder(dir: string): number | undefined {
    return PidLock.holder(path.join(dir, LOCK_FILE));
  }

  release(): void {
    this.lock.release();
  }
}

/**
 * Why the lock `file` of index `dir` was not taken: `pid` holds it (this process: another SearchIndex in it,
 * in another of its threads when `otherThread`).
 */
function inUse(dir: string, file: string, pid: number | undefined, otherThread: boolean): string {
  if (pid === undefined) return `${file}: could not take the write lock; another process keeps taking it.`;
  const which = otherThread ? 'another SearchIndex, in another thread' : 'another SearchIndex';
  const here = `is already open for writing in this process (${which})`;
  if (pid === process.pid) return `${dir} ${here}; use that instance or close it first.`;
  return (
    `${file}: another process (pid ${pid}) is writing to this index; wait for it to finish (or remove the file ` +
    `if that process is not search-r3).`
  );
}
