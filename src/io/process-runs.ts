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
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  // "pid (comm) state ...": comm may hold spaces and parentheses, so the state follows the last ')'
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
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
