/**
 * The five ways the corruption suites damage a file: gone, emptied, cut in half, overwritten by random
 * bytes of the same size, or a few bits flipped at seeded positions. And a snapshot of a folder (each
 * file's SHA-256) to prove that a read changed nothing.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SeededRandom } from './seeded-random.js';

export const DAMAGE_KINDS = ['missing', 'empty', 'truncated', 'random', 'bitflip'] as const;
export type DamageKind = (typeof DAMAGE_KINDS)[number];

export function damage(file: string, kind: DamageKind, seed = 1): void {
  const bytes = readFileSync(file);
  const rnd = new SeededRandom(seed);
  switch (kind) {
    case 'missing': rmSync(file); return;
    case 'empty': writeFileSync(file, ''); return;
    case 'truncated': writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2))); return;
    case 'random': writeFileSync(file, Buffer.from(Array.from({ length: bytes.length }, () => rnd.int(256)))); return;
    case 'bitflip': {
      const out = Buffer.from(bytes);
      for (let i = 0; i < 8; i++) { const at = rnd.int(out.length); out[at] ^= 1 << rnd.int(8); }
      writeFileSync(file, out);
    }
  }
}

/** Relative path → SHA-256 of every file under dir. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.set(path.relative(dir, full), createHash('sha256').update(readFileSync(full)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}
