import { readFileSync, readlinkSync } from 'node:fs';

/**
 * Whether a process id names a running process on this machine: how a lock or a temporary file tells a
 * live owner from one that was killed. EPERM means it runs under another user. A zombie (killed, not yet
 * reaped) answers signal 0 yet runs no more: an orphan waits for PID 1 to reap it, which a container's
 * init may never do, and its lock would then hold for good.
 */
export function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** Linux: the state in /proc/<pid>/stat is Z (zombie) or X (dead); false where it cannot be read. */
function isZombie(pid: number): boolean {
  try {
    return exited(procStatFields(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

/**
 * The fields of a /proc stat file (a process's, or a thread's: /proc/<pid>/task/<tid>/stat) after the command,
 * from the state (field 3) on: the command is in parentheses and may hold spaces and parentheses itself, so
 * the fields start after the last ')'. Throws what reading the file throws (ENOENT: no such process).
 */
export function procStatFields(file: string): string[] {
  const stat = readFileSync(file, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Whether stat fields (procStatFields) are those of a process or thread that has exited: a zombie, or dead. */
export function exited(fields: readonly string[]): boolean {
  return fields[0] === 'Z' || fields[0] === 'X';
}

/**
 * The PID namespace this process runs in (Linux: 'pid:[4026531836]'), undefined where it cannot be read
 * (another system, /proc not mounted). Two processes with one hostname see each other's process ids only
 * within one namespace: a container sharing the host's hostname, or a pod with hostNetwork, has its own.
 * `link` is the namespace link to read (another process's, /proc/<pid>/ns/pid).
 */
export function pidNamespace(link = '/proc/self/ns/pid'): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

/**
 * When thread `tid` of process `pid` started (field 22 of its stat, after the command, which is in
 * parentheses and may hold spaces and parentheses itself); undefined when /proc/<pid>/task/<tid> is gone or
 * the thread has exited (a zombie).
 * Other errors (/proc hiding other users' processes) are thrown.
 */
export function taskStart(pid: number, tid: number): string | undefined {
  let fields: string[];
  try {
    fields = procStatFields(`/proc/${pid}/task/${tid}/stat`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  // a zombie (exited, not yet reaped: a container's pid 1 may never reap it) or dying thread holds nothing
  if (exited(fields)) return undefined;
  const start = fields[19];
  if (start === undefined || !/^\d+$/.test(start)) throw new Error(`/proc/${pid}/task/${tid}/stat: no start time`);
  return start;
}
