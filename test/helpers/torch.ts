/**
 * Calls PyTorch (Debian's python3-torch, through /usr/bin/python3) as an independent oracle;
 * SEARCH_R3_PYTHON names another interpreter (a GPU machine's image has its PyTorch elsewhere).
 * Arrays cross the boundary as base64 little-endian float32 (to Python) and float64 (back).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './repo.js';

export const systemPython = process.env.SEARCH_R3_PYTHON || '/usr/bin/python3';

export function encodeF32(a: ArrayLike<number>): string {
  return Buffer.from(Float32Array.from(a).buffer).toString('base64');
}

export function encodeI32(a: ArrayLike<number>): string {
  return Buffer.from(Int32Array.from(a).buffer).toString('base64');
}

export function decodeF64(s: string): Float64Array {
  const b = Buffer.from(s, 'base64');
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Runs test/oracles/<script> with `payload` as JSON on stdin and returns its JSON answer. */
export function runTorch<T>(script: string, payload: unknown, threads = 1): T {
  const r = spawnSync(systemPython, [join(repoRoot, 'test', 'oracles', script)], {
    input: JSON.stringify(payload),
    maxBuffer: 1 << 30,
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  });
  if (r.error)
    throw new Error(`cannot run ${systemPython}: ${r.error.message} (the setup script installs python3-torch)`);
  if (r.status !== 0) throw new Error(`${script} failed (exit ${r.status}):\n${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()) as T;
}

/** max|a − b| / max(max|b|, floor): the relative error the tests state their tolerances in. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0,
    scale = floor;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
