/**
 * One writer per folder, between processes on this machine: a lock file created exclusively, holding the
 * writer's pid. A lock whose process is gone (a killed run) is stale and taken over, so kill -9 never
 * blocks the next run; a process that exits (process.exit included) removes its own.
 *
 * Within one process the pid says nothing, so the process keeps the locks it holds by path, resolved through
 * links (one folder named two ways is one lock): a second acquire while the first is held and not released
 * is refused as one from another process would be, since two holders in one process would write over each
 * other just the same. A lock file holding this process's pid that no acquire here holds (a killed process
 * whose pid this one was given, common in containers) is stale and taken over.
 *
 * Several processes can find the same stale lock at once, and removing it then creating their own would let
 * one that read the stale pid remove the lock another has just made: both would write. So removing a stale
 * lock is claimed first: only the process that creates `<lock>.takeover-<inode>-<mtime>` (exclusively, the
 * name the same for every process that found that file) removes the lock, and only if the path still names
 * the file it found, which it holds open meanwhile so that no new file can reuse its inode. A claim whose
 * process is gone is stale in turn and taken over the same way (a claim of the claim), so a taker killed
 * mid-way blocks no one.
 *
 * A lock is created with its pid already in it (a hard link to a written temporary file), so no reader sees
 * it empty. Where it is empty, its writer creates it and then writes (a file system without hard links, or
 * a search-r3 that created locks so): it counts as being written for GRACE_MS after it was made, and as
 * stale after that.
 */
import {
  type BigIntStats,
  closeSync,
  fstatSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { namingFile, tempPathFor } from './atomic-file.js';
import { resolvedPath } from './path-relation.js';
import { processRuns } from './process-runs.js';

/** How long an empty lock counts as being written by the process that made it. */
const GRACE_MS = 2000;
/** How long acquire waits for another process's takeover, or an empty lock's writer, to finish. */
const WAIT_MS = GRACE_MS + 1000;
/** Claims of claims (each level a taker killed in the middle of its takeover) before acquire waits instead. */
const MAX_DEPTH = 8;
/** What link() answers on a file system without hard links (FAT, some network shares). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);
const TAKEOVER = '.takeover-';

/** The locks this process holds, by resolved path; removed when it exits (one listener for all of them). */
const held = new Map<string, PidLock>();
let exitHook = false;

export class PidLock {
  private constructor(
    readonly file: string,
    private readonly key: string,
  ) {
    held.set(key, this);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const lock of held.values()) lock.release();
      });
    }
  }

  /**
   * Takes the lock `file`, or throws what `refuse` makes of the live process that holds it: process.pid when
   * this process holds it (an acquire not yet released), undefined when no holder could be named within
   * WAIT_MS because other processes kept taking the lock over or writing it.
   */
  static acquire(file: string, refuse: (pid: number | undefined) => Error): PidLock {
    const key = lockKey(file);
    if (held.has(key)) throw refuse(process.pid);
    const until = Date.now() + WAIT_MS;
    for (;;) {
      const got = take(file, 0);
      if (got === true) {
        removeClaims(file);
        return new PidLock(file, key);
      }
      if (got !== 'wait') throw refuse(got);
      if (Date.now() > until) throw refuse(undefined);
      sleep(5);
    }
  }

  /** The pid of the live process, other than this one, that holds the lock `file`; undefined when none does. */
  static holder(file: string): number | undefined {
    const until = Date.now() + GRACE_MS;
    for (;;) {
      let found: Found;
      try {
        found = inspect(file);
      } catch {
        return undefined; // unreadable: no holder this process can name
      }
      if (found.kind === 'stale') closeSync(found.fd);
      if (found.kind === 'held') return found.pid;
      if (found.kind !== 'writing' || Date.now() > until) return undefined;
      sleep(5);
    }
  }

  /** Removes the lock, if it is still this process's; releasing again does nothing (the next holder's stays). */
  release(): void {
    if (held.get(this.key) !== this) return;
    held.delete(this.key);
    try {
      if (Number(readFileSync(this.file, 'utf8').trim()) === process.pid) rmSync(this.file, { force: true });
    } catch {
      /* already gone */
    }
  }
}

/** Where this process keeps the lock `file`: its folder resolved through links (the file may not exist yet). */
function lockKey(file: string): string {
  return path.join(resolvedPath(path.dirname(file)), path.basename(file));
}

/** A lock file as found: none, a live process's, one being written, or stale (kept open: see the top). */
type Found =
  | { kind: 'none' }
  | { kind: 'held'; pid: number }
  | { kind: 'writing' }
  | { kind: 'stale'; fd: number; stat: BigIntStats };

function inspect(file: string): Found {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    throw e;
  }
  let found: Found;
  try {
    const stat = fstatSync(fd, { bigint: true });
    const text = readFileSync(fd, 'utf8').trim();
    const pid = Number(text);
    if (text === '' && Math.abs(Date.now() - Number(stat.mtimeMs)) < GRACE_MS) found = { kind: 'writing' };
    else if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processRuns(pid)) found = { kind: 'held', pid };
    else found = { kind: 'stale', fd, stat };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (found.kind !== 'stale') closeSync(fd);
  return found;
}

/**
 * Creates `file` holding this process's pid, taking it over when stale. true: created; a number: the live
 * process that holds it; 'wait': another process is taking it over or writing it, so look again shortly.
 */
function take(file: string, depth: number): true | number | 'wait' {
  // each turn either answers or follows a stale file's removal; a new lock made meanwhile by another
  // process is found on the next turn
  for (let turn = 0; turn < 3; turn++) {
    if (createWithPid(file)) return true;
    const found = inspect(file);
    if (found.kind === 'held') return found.pid;
    if (found.kind === 'writing') return 'wait';
    if (found.kind === 'stale') {
      try {
        if (depth >= MAX_DEPTH || !removeStale(file, found.stat, depth)) return 'wait';
      } finally {
        closeSync(found.fd);
      }
    }
  }
  return 'wait';
}

/**
 * Removes the stale `file` found as `stat`, under its claim; false when another process holds the claim.
 * Only a claim's holder removes the file, so no lock made after it can be removed in its place.
 */
function removeStale(file: string, stat: BigIntStats, depth: number): boolean {
  const claim = `${file}${TAKEOVER}${stat.ino}-${stat.mtimeNs}`;
  if (take(claim, depth + 1) !== true) return false;
  try {
    if (sameFile(file, stat)) rmSync(file, { force: true });
  } finally {
    rmSync(claim, { force: true });
  }
  return true;
}

/** Whether `file` is still the file found as `stat` (unwritten since). */
function sameFile(file: string, stat: BigIntStats): boolean {
  try {
    const now = statSync(file, { bigint: true });
    return now.dev === stat.dev && now.ino === stat.ino && now.mtimeNs === stat.mtimeNs;
  } catch {
    return false;
  }
}

/** Creates `file` holding this process's pid; false when it exists. */
function createWithPid(file: string): boolean {
  const content = `${process.pid}\n`;
  const tmp = tempPathFor(file);
  try {
    writeFileSync(tmp, content, { flag: 'wx' });
  } catch (e) {
    throw namingFile(e, file, tmp, file); // a read-only or full folder: the lock is what could not be made
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return false;
    if (!NO_HARD_LINKS.has(code)) throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  try {
    const fd = openSync(file, 'wx');
    try {
      // writeFileSync loops until every byte is written, where one write() may take fewer
      writeFileSync(fd, content);
    } catch (e) {
      // a lock this process made but could not fill would block others for GRACE_MS for nothing
      rmSync(file, { force: true });
      throw e;
    } finally {
      closeSync(fd);
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/**
 * Removes the claims that takers killed mid-way left beside `file`, now that this process holds it: each
 * names a file that is gone, so a process that takes one finds nothing to remove.
 */
function removeClaims(file: string): void {
  const prefix = `${path.basename(file)}${TAKEOVER}`;
  let names: string[];
  try {
    names = readdirSync(path.dirname(file));
  } catch {
    return;
  }
  for (const name of names) if (name.startsWith(prefix)) rmSync(path.join(path.dirname(file), name), { force: true });
}

const pause = new Int32Array(new SharedArrayBuffer(4)); // a cell nobody notifies: Atomics.wait sleeps
function sleep(ms: number): void {
  Atomics.wait(pause, 0, 0, ms);
}
