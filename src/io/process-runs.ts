import { readlinkSync } from 'node:fs';

/**
 * Whether a process id names a running process on this machine: how a lock or a temporary file tells a
 * live owner from one that was killed. EPERM means it runs under another user.
 */
export function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
