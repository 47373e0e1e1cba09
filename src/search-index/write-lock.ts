/**
 * One writer per index: two `search-r3 index` runs on one folder would encode the same pending chunks and
 * overwrite each other's HNSW file. The lock is a file holding the writer's pid; a lock whose process is
 * gone (a killed run) is stale and taken over, so kill -9 never blocks the resume.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { processRuns } from '../io/process-runs.js';
import { IndexError } from './index-error.js';

export const LOCK_FILE = 'write.lock';

export class WriteLock {
  private constructor(private readonly file: string) {}

  static acquire(dir: string): WriteLock {
    const file = path.join(dir, LOCK_FILE);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new WriteLock(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = WriteLock.holder(dir);
      if (pid !== undefined) {
        throw new IndexError(
          `${file}: another process (pid ${pid}) is writing to this index; wait for it to finish (or remove ` +
            `the file if that process is not search-r3).`,
        );
      }
      rmSync(file, { force: true }); // stale: its writer is gone
    }
    throw new IndexError(`${file}: could not take the write lock; another process keeps taking it.`);
  }

  /** The pid of the live process, other than this one, that holds the lock of `dir`; undefined when none does. */
  static holder(dir: string): number | undefined {
    let pid = NaN;
    try {
      pid = Number(readFileSync(path.join(dir, LOCK_FILE), 'utf8').trim());
    } catch {
      return undefined; // no lock, or removed meanwhile
    }
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && processRuns(pid) ? pid : undefined;
  }

  release(): void {
    try {
      if (Number(readFileSync(this.file, 'utf8').trim()) === process.pid) rmSync(this.file, { force: true });
    } catch {
      /* already gone */
    }
  }
}
