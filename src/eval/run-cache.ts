/**
 * A TREC run kept in a work folder under a key of everything that determines it: `<base>.trec` and the
 * record `<base>.json` (written last; it holds the run's own facts, such as its wall time, and the run
 * file's SHA-256). A killed evaluation continues without computing finished runs again.
 */
import { cacheKey, readRecord, readVerified, sumsOf, type Sums } from './cache-record.js';
import { readTrecRun, writeTextFileAtomic, writeTrecRun, type Run } from './run.js';

export interface CachedRun<T> {
  run: Run;
  /** What the computation reported beside the run (kept in the record, whose other fields come along). */
  facts: T;
  reused: boolean;
  runFile: string;
}

/**
 * The run for `keyParts` under `folder/<name>.<key>`, read back when a finished, intact one is there, else
 * computed by `compute` and saved. `tag` is the run's TREC tag; `warn` names a damaged cache entry.
 */
export async function cachedRun<T extends object>(
  folder: string,
  name: string,
  keyParts: readonly string[],
  compute: () => Promise<{ run: Run; facts: T }>,
  warn: (line: string) => void,
): Promise<CachedRun<T>> {
  const base = `${folder}/${name}.${cacheKey(keyParts)}`;
  const runFile = `${base}.trec`;
  const recordFile = `${base}.json`;
  const record = readRecord<T & { sha256?: Sums }>(recordFile);
  const cached = record && (await readVerified([runFile], recordFile, record.sha256, () => readTrecRun(runFile), warn));
  if (record && cached) return { run: cached.run, facts: record, reused: true, runFile };
  const r = await compute();
  writeTrecRun(runFile, r.run, name);
  // the facts sit at the top of the record, beside what identifies the run
  const saved = { row: name, keyParts, ...r.facts, sha256: await sumsOf([runFile]) };
  writeTextFileAtomic(recordFile, JSON.stringify(saved, null, 2) + '\n');
  return { run: r.run, facts: r.facts, reused: false, runFile };
}
