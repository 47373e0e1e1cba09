import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The folders tempDir made in this process. */
const made: string[] = [];

/**
 * A test file's folders go when its process ends, so that suite runs do not pile up in the temp folder (a run
 * leaves ~175 MB of models and checkpoints); a file whose tests failed keeps them to be looked at.
 */
function removeMadeFolders(): void {
  if (process.exitCode !== undefined && process.exitCode !== 0) return;
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
}

/** A new folder in the temp folder, named search-r3-<prefix>-XXXXXX, removed when the process ends. */
export function tempDir(prefix: string): string {
  if (made.length === 0) process.on('exit', removeMadeFolders);
  const dir = mkdtempSync(path.join(tmpdir(), `search-r3-${prefix}-`));
  made.push(dir);
  return dir;
}
