import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
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

/** What a script run on a small disk printed, and how it ended. */
export type SmallDiskRun = Pick<SpawnSyncReturns<string>, 'status' | 'stdout' | 'stderr'>;

/**
 * Runs the sh `script` in a new user and mount namespace (unshare -rm) where `dir` (which must exist) is an empty
 * tmpfs of `kib` KiB, so that writes there meet a real full disk (ENOSPC) without root and without touching this
 * machine's mounts. The tmpfs is gone when the script ends, so the script checks what it needs itself. It finds
 * the folder in $DISK and `fill_to N`, which fills the disk with $DISK/.filler until N KiB are left (rm it to
 * free them); `env` is added to its environment. With `inodes`, the tmpfs holds that many files and folders at
 * most, and `keep_inodes N` creates empty files $DISK/.i<n> until only N more can be made. Null where no such
 * namespace may be made (not Linux, no unshare, user namespaces turned off).
 */
export function onSmallDisk(
  dir: string,
  kib: number,
  script: string,
  env: Record<string, string> = {},
  inodes?: number,
): SmallDiskRun | null {
  if (process.platform !== 'linux') return null;
  const mount = `mount -t tmpfs -o size=${kib}k${inodes === undefined ? '' : `,nr_inodes=${inodes}`} none "$DISK"`;
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', mount], { env: { ...process.env, DISK: dir } });
  if (probe.status !== 0) return null;
  const fillTo =
    `fill_to() { n=$(( $(df -P -k "$DISK" | awk 'NR == 2 { print $4 }') - $1 )); ` +
    'if [ "$n" -gt 0 ]; then dd if=/dev/zero of="$DISK/.filler" bs=1k count="$n" 2>/dev/null; fi; }\n' +
    'keep_inodes() { i=0; while touch "$DISK/.i$i" 2>/dev/null; do i=$((i + 1)); done; ' +
    'j=0; while [ "$j" -lt "$1" ]; do rm "$DISK/.i$j"; j=$((j + 1)); done; }';
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', `${mount} || exit 99\n${fillTo}\n${script}`], {
    encoding: 'utf8',
    env: { ...process.env, ...env, DISK: dir },
    maxBuffer: 1 << 26,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
