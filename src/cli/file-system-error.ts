/**
 * File-system failures that are the machine's state (io/file-system-cause.ts) reach the user as one sentence
 * naming the path, with what to do, instead of a stack trace; outputs are written through temporary files,
 * so nothing earlier is lost.
 */
import { fileSystemCause } from '../io/file-system-cause.js';

/**
 * The sentence for such an error, or null for any other. `again` says how to go on (a training run continues
 * with --resume, which its plain command refuses once it has checkpoints).
 */
export function fileSystemSentence(err: unknown, again = 'run the same command again'): string | null {
  const e = err as NodeJS.ErrnoException;
  // the folders makeFolder creates are made one level at a time, each in a folder that exists
  const making = e?.syscall === 'mkdir' && typeof e.path === 'string';
  const known = fileSystemCause(err, { creating: making });
  if (known === null) return null;
  const { cause, remedy } = known;
  const what = making
    ? `cannot create the folder ${e.path}`
    : [e.syscall, e.path].filter((x) => typeof x === 'string').join(' ') || 'a file operation';
  return `${what}: ${cause} (${e.code}); ${remedy}, then ${again} ` + `(files written before are kept as they were).`;
}
