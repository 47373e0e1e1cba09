import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './repo.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `search-r3` CLI with the given arguments; `timeoutMs` stops it (SIGTERM) if it runs that
 * long, for a command that would otherwise start a server and never return.
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs?: number): CliResult {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 1 << 26,
    timeout: timeoutMs,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * runCli without blocking the test process (servers it started keep answering); `signal` names what killed it.
 * `cwd`: the folder it runs in (default the test's), for relative paths.
 */
export function runCliAsync(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<CliResult & { signal: string | null }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...args],
      { env: { ...process.env, ...env }, maxBuffer: 1 << 26, cwd },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        resolve({
          status: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/**
 * The last line of a run's output that search-r3 wrote as its sentence (`search-r3: …`): native code (Dawn's
 * warnings, written to fd 2 when they come) may add lines after it. The whole output when there is none.
 */
export function lastSentence(output: string): string {
  return (
    output
      .split('\n')
      .filter((l) => l.startsWith('search-r3: '))
      .at(-1) ?? output
  );
}
