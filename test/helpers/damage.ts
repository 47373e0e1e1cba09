/**
 * The corruption suites' damage: what a crash, a full disk or failing hardware leaves of a file, made
 * reproducibly (seeded), and a digest of a folder to prove that a command changed none of its bytes.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SeededRandom } from './seeded-random.js';

export const DAMAGE_KINDS = ['missing', 'empty', 'truncated', 'random', 'bitflip'] as const;
export type DamageKind = (typeof DAMAGE_KINDS)[number];

/**
 * Damages `file` in place: removed, emptied, cut to half its length, random bytes of its size, or
 * `flips` bits flipped at seeded positions.
 */
export function damageFile(file: string, kind: DamageKind, seed = 1, flips = 1): void {
  const rnd = new SeededRandom(seed);
  if (kind === 'missing') {
    rmSync(file);
    return;
  }
  const bytes = readFileSync(file);
  if (kind === 'empty') writeFileSync(file, '');
  else if (kind === 'truncated') writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
  else if (kind === 'random')
    writeFileSync(
      file,
      Uint8Array.from(bytes, () => rnd.int(256)),
    );
  else {
    for (let i = 0; i < flips; i++) bytes[rnd.int(bytes.length)] ^= 1 << rnd.int(8);
    writeFileSync(file, bytes);
  }
}

/** SHA-256 of every file under `dir`, keyed by its path relative to `dir`. */
export function folderDigest(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out.set(path.relative(dir, file), createHash('sha256').update(readFileSync(file)).digest('hex'));
  }
  return out;
}
