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
