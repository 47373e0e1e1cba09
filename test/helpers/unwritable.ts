import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * Places on Linux where no output folder can be made, for anyone: under /proc mkdir and open fail with ENOENT
 * though /proc exists (Node's recursive mkdir then retries forever), and under /sys they are refused (EPERM,
 * or EACCES). Null elsewhere.
 */
export function unwritablePlaces(): { proc: string; sys: string } | null {
  if (process.platform !== 'linux' || !existsSync('/proc/self') || !existsSync('/sys/kernel')) return null;
  const name = `search-r3-test-${process.pid}`;
  return { proc: path.join('/proc', name), sys: path.join('/sys', name) };
}

/**
 * Mounts an empty read-only tmpfs on `dir` (which must exist), where the process may (root, with the right to
 * mount); returns how to unmount it, or null where it may not.
 */
export function readOnlyMount(dir: string): { unmount: () => void } | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return null;
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return { unmount: () => void spawnSync('umount', [dir]) };
}
