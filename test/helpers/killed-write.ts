/** What a write killed part way leaves behind, made on purpose for the readers that must clear it up. */
import { spawnSync } from 'node:child_process';
import { renameSync } from 'node:fs';
import path from 'node:path';

/** The pid of a process that has exited (and so runs no more). */
export const deadPid = (): number =>
  Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout);

/**
 * Leaves `dir` as a writeDirAtomically killed between its two renames leaves it: set aside beside its path as
 * `.<name>.<dead pid>.<stamp>.tmp.old`, its only copy, and `dir` missing. Returns the name it was set aside as.
 */
export function leaveAsideAsKilledWrite(dir: string): string {
  const aside = `.${path.basename(dir)}.${deadPid()}.mqx6abc.tmp.old`;
  renameSync(dir, path.join(path.dirname(dir), aside));
  return aside;
}
