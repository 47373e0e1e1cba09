/**
 * How two paths relate as the file system resolves them: through symbolic links where the path exists, so
 * that ./a, a and a link to a are one place, and as written where it does not exist yet (an output to come).
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';

/** `p` absolute, through every symbolic link when something is there. */
export function resolvedPath(p: string): string {
  return existsSync(p) ? realpathSync(p) : path.resolve(p);
}

/** Whether resolved path `inner` is `outer` or lies inside it. */
export function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer + path.sep);
}
