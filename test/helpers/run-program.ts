import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './repo.js';

export interface ProgramRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `program`, an ES module importing the built package entry as ENTRY (as a user's program imports
 * search-r3), in its own Node process, with `env` added to this one's.
 */
export function runProgram(
  dir: string,
  name: string,
  program: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv = {},
): Promise<ProgramRun> {
  const entry = pathToFileURL(path.join(repoRoot, 'dist/src/index.js')).href;
  const file = path.join(dir, `${name}.mjs`);
  writeFileSync(file, program.replaceAll('ENTRY', entry));
  return new Promise((resolve) => {
    const options = { timeout: timeoutMs, env: { ...process.env, ...env } };
    execFile(process.execPath, [file], options, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: string | null }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
      resolve({ code, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}
