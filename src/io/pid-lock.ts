/**
 * One writer per folder, between processes on this machine and between threads of one process: a lock file
 * created exclusively, naming its holder. A lock whose holder is gone (a killed run, a terminated worker)
 * is stale and taken over, so kill -9 never blocks the next run; a process that exits (process.exit
 * included) removes its own.
 *
 * The holder is its pid and, on Linux, the OS thread that took the lock (its tid, from /proc/thread-self:
 * each worker thread is one, the main thread's tid is the pid) with that thread's start (clock ticks since
 * boot, /proc/<pid>/task/<tid>/stat). A pid alone cannot tell a live holder from a process that was given a
 * dead holder's pid (common in containers), nor two threads of one process apart, and a worker that is
 * terminated runs no exit handler. So a lock is held while its thread runs with the same start; one whose
 * thread is gone, or now runs with another start (the pid or tid reused), is stale. Where /proc cannot
 * say (another system), the lock holds the pid only and is judged by it, as are such files already there.
 *
 * Each thread keeps the locks it holds by path, resolved through links (one folder named two ways is one
 * lock): a second acquire while the first is held and not released is refused as one from another process
 * would be, since two holders in one process would write over each other just the same. A lock naming this
 * thread that it does not hold is stale and taken over, as is one holding only this process's pid.
 *
 * Several processes can find the same stale lock at once, and removing it then creating their own would let
 * one that read the stale pid remove the lock another has just made: both would write. So removing a stale
 * lock is claimed first: only the process that creates `<lock>.takeover-<inode>-<mtime>` (exclusively, the
 * name the same for every process that found that file) removes the lock, and only if the path still names
 * the file it found, which it holds open meanwhile so that no new file can reuse its inode. A claim whose
 * process is gone is stale in turn and taken over the same way (a claim of the claim), so a taker killed
 * mid-way blocks no one. Threads race the same way.
 *
 * A lock is created with its holder already in it (a hard link to a written temporary file), so no reader
 * sees it empty. Where it is empty, its writer creates it and then writes (a file system without hard links,
 * or a search-r3 that created locks so): it counts as being written for GRACE_MS after it was made, and as
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
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { namingFile, tempPathFor } from './atomic-file.js';
import { resolvedPath } from './path-relation.js';
import { processRuns, taskStart } from './process-runs.js';

/** How long an empty lock counts as being written by the process that made it. */
const GRACE_MS = 2000;
/** How long acquire waits for another process's takeover, or an empty lock's writer, to finish. */
const WAIT_MS = GRACE_MS + 1000;
/** Claims of claims (each level a taker killed in the middle of its takeover) before acquire waits instead. */
const MAX_DEPTH = 8;
/** What link() answers on a file system without hard links (FAT, some network shares). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);
const TAKEOVER = '.takeover-';

/**
 * The locks this thread holds (module state is per thread), by resolved path; removed when it exits (one
 * listener for all of them).
 */
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
   * this process holds it (an acquire not yet released; `otherThread` when another thread of it did),
   * undefined when no holder could be named within WAIT_MS because other processes kept taking the lock over
   * or writing it.
   */
  static acquire(file: string, refuse: (pid: number | undefined, otherThread: boolean) => Error): PidLock {
    const key = lockKey(file);
    if (held.has(key)) throw refuse(process.pid, false);
    const until = Date.now() + WAIT_MS;
    for (;;) {
      const got = take(file, 0);
      if (got === true) {
        removeClaims(file);
        return new PidLock(file, key);
      }
      if (got !== 'wait') throw refuse(got, got === process.pid);
      if (Date.now() > until) throw refuse(undefined, false);
      sleep(5);
    }
  }

  /**
   * The pid of the live process that holds the lock `file`, other than this thread (process.pid when another
   * thread of this process holds it); undefined when none does.
   */
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

  /** Removes the lock, if it is still this thread's; releasing again does nothing (the next holder's stays). */
  release(): void {
    if (held.get(this.key) !== this) return;
    held.delete(this.key);
    try {
      if (readFileSync(this.file, 'utf8') === lockText(thisThread())) rmSync(this.file, { force: true });
    } catch {
      /* already gone */
    }
  }
}

/** Where this thread keeps the lock `file`: its folder resolved through links (the file may not exist yet). */
function lockKey(file: string): string {
  return path.join(resolvedPath(path.dirname(file)), path.basename(file));
}

/**
 * Who holds a lock: a process and, where /proc tells, its OS thread that took it and when that thread
 * started (clock ticks since boot, as /proc writes them).
 */
interface Holder {
  pid: number;
  thread?: { tid: number; start: string };
}

/** The text of a lock held by `holder`: the pid on the first line, then its thread where /proc tells it. */
function lockText(holder: Holder): string {
  const { pid, thread } = holder;
  return thread ? `${pid}\nthread ${thread.tid} start ${thread.start}\n` : `${pid}\n`;
}

/** The holder a lock's text names; undefined when it names none (empty, or not written by lockText). */
function parseHolder(text: string): Holder | undefined {
  const m = /^(\d+)(?:\nthread (\d+) start (\d+))?$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) return undefined;
  return m[2] === undefined
    ? { pid: Number(m[1]) }
    : { pid: Number(m[1]), thread: { tid: Number(m[2]), start: m[3]! } };
}

let self: Holder | undefined;
/** The calling thread as a lock's holder (module state is per thread, so is this): the pid only without /proc. */
function thisThread(): Holder {
  if (self) return self;
  self = { pid: process.pid };
  try {
    // '<pid>/task/<tid>'; a /proc of another PID namespace names another pid, and is not this process's
    const m = /^(\d+)\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
    const start = m && Number(m[1]) === process.pid ? taskStart(process.pid, Number(m[2])) : undefined;
    if (start !== undefined) self = { pid: process.pid, thread: { tid: Number(m![2]), start } };
  } catch {
    /* no /proc: locks name the pid only */
  }
  return self;
}

/**
 * Whether `holder` holds its lock against this thread: its thread runs with the start it wrote, or where
 * that cannot be read (no thread written, /proc hidden, missing, or not this process's PID namespace: this
 * thread cannot find itself there), its process runs and is not this one. A lock naming this very thread is
 * not held: this thread would have it in `held`.
 */
function holds(holder: Holder): boolean {
  const { pid, thread } = holder;
  const me = thisThread().thread;
  if (thread && me && pid === process.pid && thread.tid === me.tid && thread.start === me.start) return false;
  if (thread && me) {
    try {
      const start = taskStart(pid, thread.tid);
      if (start !== undefined) return start === thread.start;
      // the thread is gone, unless /proc does not show the process at all (not mounted, hidden)
      if (procShows(pid)) return false;
    } catch {
      /* /proc hides it: its pid is all there is to go by */
    }
  }
  return pid !== process.pid && processRuns(pid);
}

/** Whether /proc lists process `pid` (false for a process that is gone, and where /proc hides it). */
function procShows(pid: number): boolean {
  try {
    statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
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
    const holder = parseHolder(text);
    if (text === '' && Math.abs(Date.now() - Number(stat.mtimeMs)) < GRACE_MS) found = { kind: 'writing' };
    else if (holder && holds(holder)) found = { kind: 'held', pid: holder.pid };
    else found = { kind: 'stale', fd, stat };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (found.kind !== 'stale') closeSync(fd);
  return found;
}

/**
 * Creates `file` naming this thread, taking it over when stale. true: created; a number: the live process
 * that holds it (process.pid: another thread of this one); 'wait': another process is taking it over or
 * writing it, so look again shortly.
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

/** Creates `file` naming this thread; false when it exists. */
function createWithPid(file: string): boolean {
  const content = lockText(thisThread());
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
    // a link takes a file entry too (tmpfs counts it against nr_inodes): the lock is what could not be made
    if (!NO_HARD_LINKS.has(code)) throw namingFile(e, file, tmp, file);
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
