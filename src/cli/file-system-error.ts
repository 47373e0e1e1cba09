/**
 * File-system failures that are the machine's state, not a bug: a full disk, a quota, a file size limit, a
 * read-only mount, missing permission. They reach the user as one sentence naming the path, with what to
 * do, instead of a stack trace; outputs are written through temporary files, so nothing earlier is lost.
 */
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

/** What such an error means (its code, the cause in words, what to do), or null for any other error. */
export function fileSystemCause(err: unknown): { code: string; cause: string; remedy: string } | null {
  const e = err as NodeJS.ErrnoException;
  const known = typeof e?.code === 'string' ? CAUSES[e.code] : undefined;
  return known === undefined ? null : { code: e.code!, cause: known[0], remedy: known[1] };
}

/**
 * The sentence for such an error, or null for any other. `again` says how to go on (a training run continues
 * with --resume, which its plain command refuses once it has checkpoints).
 */
export function fileSystemSentence(err: unknown, again = 'run the same command again'): string | null {
  const known = fileSystemCause(err);
  if (known === null) return null;
  const e = err as NodeJS.ErrnoException;
  const { cause, remedy } = known;
  const what = [e.syscall, e.path].filter((x) => typeof x === 'string').join(' ') || 'a file operation';
  return `${what}: ${cause} (${e.code}); ${remedy}, then ${again} ` + `(files written before are kept as they were).`;
}
