/**
 * Runs a Python oracle with the system interpreter that has PyTorch 1.13 (`/usr/bin/python3`; the
 * pyenv `python3` first on PATH has no torch). Input and output travel as JSON on stdin/stdout.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './repo.js';

export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Absolute path of a script in test/oracles/. */
export function oraclePath(name: string): string {
  return path.join(repoRoot, 'test', 'oracles', name);
}

/** Runs `python3 -c code` or a script file; resolves to stdout; rejects with stderr on failure. */
export function runPython(args: string[], stdin = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(SYSTEM_PYTHON, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else
        reject(
          new Error(
            `${SYSTEM_PYTHON} ${args.join(' ').slice(0, 200)} exited with ` +
              `${code}:\n${Buffer.concat(err).toString('utf8')}`,
          ),
        );
    });
    child.stdin.end(stdin);
  });
}

/** Runs an oracle script from test/oracles/ with a JSON request; resolves to its JSON reply. */
export async function runOracle<T>(script: string, request: unknown): Promise<T> {
  const stdout = await runPython([oraclePath(script)], JSON.stringify(request));
  return JSON.parse(stdout) as T;
}
