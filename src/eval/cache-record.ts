/**
 * Work kept in a folder between runs (TREC runs, shards of document embeddings), each file beside a
 * record written last (its presence marks finished work) that keeps the files' SHA-256: a file that is
 * missing, damaged or unparsable is noticed, named in a warning, and computed again.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sha256File } from '../io/checksums.js';
import { EvalInputError } from './input-error.js';
import { isJsonObject } from '../io/json-object.js';

/** File name → SHA-256, as a record keeps them. */
export type Sums = Record<string, string>;

/** A short content hash: cache keys change whenever anything that determines the work changes. */
export function cacheKey(parts: Iterable<string>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

/**
 * A record, or undefined when it is missing, cut short or no record at all (JSON of another shape, such as `5`):
 * the work is then done again.
 */
export function readRecord<T>(file: string): T | undefined {
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return isJsonObject(v) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

export async function sumsOf(files: readonly string[]): Promise<Sums> {
  const out: Sums = {};
  for (const f of files) out[path.basename(f)] = await sha256File(f);
  return out;
}

/**
 * The files read back with `read`, or null when its record keeps no SHA-256 of them (a record edited or from
 * before records kept them: its facts cannot be told from damage), or one is missing, does not match it, or does
 * not parse; `warn` says which.
 */
export async function readVerified<T>(
  files: readonly string[],
  record: string,
  sums: Sums | undefined,
  read: () => Promise<T>,
  warn: (line: string) => void,
): Promise<T | null> {
  if (!isJsonObject(sums)) {
    warn(`warning: ${record} keeps no SHA-256 of its files; computed again`);
    return null;
  }
  for (const f of files) {
    if (!existsSync(f)) {
      warn(`warning: ${f} is missing from its record ${record}; computed again`);
      return null;
    }
    if (sums[path.basename(f)] !== (await sha256File(f))) {
      warn(`warning: ${f} does not match its record ${record}; computed again`);
      return null;
    }
  }
  try {
    return await read();
  } catch (e) {
    if (!(e instanceof EvalInputError)) throw e;
    warn(`warning: ${e.message}; computed again`);
    return null;
  }
}
