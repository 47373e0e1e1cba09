/**
 * File-system failures that are the machine's state, not a bug: a full disk, a quota, a file size limit, a
 * read-only mount, missing permission, a folder that takes nothing new. Each has a cause in words and what
 * to do, for the one sentence a user gets instead of a stack trace.
 */
import { statfsSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';

const CAUSES: Record<string, [cause: string, remedy: string]> = {
  ENOSPC: ['no space left on the device', 'free space'],
  EDQUOT: ['the disk quota is exceeded', 'free space or raise the quota'],
  EFBIG: [
    'the file is larger than this file system or the process file size limit (ulimit -f) allows',
    'raise ulimit -f or write to another file system',
  ],
  EROFS: ['the file system is read-only', 'write to another file system'],
  EACCES: ['permission denied', 'fix the permission'],
  EPERM: ['the operation is not permitted', 'fix the permission'],
};

/** ENOSPC where bytes are free but file entries are not: "free space" would send the user to the wrong fix. */
export const NO_INODES: [cause: string, remedy: string] = [
  'no free inodes (file entries) are left on the file system',
  'delete files there, or write to a file system with more inodes',
];

const FEW_INODES = 64;

/** Bytes free above which a full file system is not what ENOSPC meant. */
const BYTES_FREE = 1 << 20;

/**
 * Whether the file system holding `file` (or the nearest folder of it that exists) is out of inodes while it has
 * bytes free. Asked after the failed write removed its temporary files, which gave a few inodes back: a disk full
 * of bytes keeps thousands, or (ZFS, which derives its inode count from the space left) no bytes free either.
 */
export function outOfInodes(file: string): boolean {
  for (let at = file; ; at = path.dirname(at)) {
    try {
      const s = statfsSync(at);
      // files 0: the file system does not count inodes (btrfs)
      return s.files > 0 && s.ffree < FEW_INODES && s.bavail * s.bsize > BYTES_FREE;
    } catch {
      if (path.dirname(at) === at) return false;
    }
  }
}

/**
 * ENOENT from creating a file or folder in a folder that exists (makeFolder creates one level at a time, and
 * a write probe creates in a folder it found): that folder takes nothing new, as /proc does. Anywhere else
 * ENOENT is a missing input, which its reader reports.
 */
const CANNOT_CREATE: [cause: string, remedy: string] = [
  'the folder takes no new files, as a virtual file system (/proc, /sys) does',
  'write to an ordinary file system',
];

/**
 * What such an error means (its code, the cause in words, what to do), or null for any other error.
 * `creating`: the error came from creating `path` in a folder that exists, where ENOENT is such a failure too.
 */
export function fileSystemCause(
  err: unknown,
  o: { creating?: boolean } = {},
): { code: string; cause: string; remedy: string } | null {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string') return null;
  const known =
    e.code === 'ENOENT' && o.creating
      ? CANNOT_CREATE
      : e.code === 'ENOSPC' && typeof e.path === 'string' && outOfInodes(path.resolve(e.path))
        ? NO_INODES
        : CAUSES[e.code];
  return known === undefined ? null : { code: e.code, cause: known[0], remedy: known[1] };
}

/**
 * A failure that a native library (LanceDB, written in Rust) reports with the system's error number in its
 * message only, as "No space left on device (os error 28)", made an error as Node's own are (its code, and
 * `path`: what the library was writing or reading), so that a full disk gets fileSystemCause's sentence rather
 * than the library's dump. Null when the message names no such number, or one with no cause here.
 */
export function nativeFileSystemError(err: unknown, path: string): NodeJS.ErrnoException | null {
  const m = err instanceof Error ? /([^:()]*?)\s*\(os error (\d+)\)/.exec(err.message) : null;
  if (!m) return null;
  const errno = Number(m[2]);
  const code = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0];
  if (code === undefined || CAUSES[code] === undefined) return null;
  return Object.assign(new Error(`${code}: ${m[1].trim()}, '${path}'`, { cause: err }), { code, errno: -errno, path });
}
