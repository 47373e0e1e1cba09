/**
 * File-system failures that are the machine's state, not a bug: a full disk, a quota, a file size limit, a
 * read-only mount, missing permission. They reach the user as one sentence naming the path, with what to
 * do, instead of a stack trace; outputs are written through temporary files, so nothing earlier is lost.
 */
const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EFBIG: 'the file is larger than this file system or the process file size limit (ulimit -f) allows',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
};

/** The sentence for such an error, or null for any other. */
export function fileSystemSentence(err: unknown): string | null {
  const e = err as NodeJS.ErrnoException;
  const cause = typeof e?.code === 'string' ? CAUSES[e.code] : undefined;
  if (cause === undefined) return null;
  const what = [e.syscall, e.path].filter((x) => typeof x === 'string').join(' ') || 'a file operation';
  return (
    `${what}: ${cause} (${e.code}); free space or fix the permission, then run the same command again ` +
    `(files written before are kept as they were).`
  );
}
