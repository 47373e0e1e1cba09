/**
 * Keeping evaluated queries out of training. A BEIR split read for training (stage 1's `beir` source, what
 * `mine` reads, stage 2's `data`) never yields a query whose text is one of the folder's test queries, and a
 * source may name `holdOut: {n, seed}`, and then never yields the queries that sampleDevQueries(split, n,
 * seed) draws, the queries an evaluation chooses settings on (recipe evaluate's SciFact dev set is such a
 * sample of SciFact train).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beirSplitFiles, readBeirDataset, readBeirQueries, type BeirDataset } from '../eval/beir.js';
import { readBeirQrels } from '../eval/qrels.js';
import { withoutDevSample, withoutQueries, type QuerySample } from '../eval/dev-eval.js';
import { ConfigError, checkSeed } from './config-merge.js';

/** The `holdOut` of a source at `at` (e.g. "data[0].holdOut"): null when absent, else both keys checked. */
export function parseHoldOut(v: unknown, at: string): QuerySample | null {
  if (v === undefined || v === null) return null;
  const shape = `{"n": <queries>, "seed": <integer>} (the dev sample to keep out of training)`;
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`"${at}" must be an object ${shape}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'n' && k !== 'seed') throw new ConfigError(`"${at}.${k}" is not a config key; known keys: n, seed`);
  // both are required: a defaulted seed would hold out another sample than the dev set's, silently
  const { n, seed } = o;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw new ConfigError(`"${at}.n" must be an integer ≥ 1 (queries held out), got ${JSON.stringify(n)}`);
  return { n, seed: checkSeed(seed, `${at}.seed`) };
}

/**
 * Refuses a training split named test (`key` is its config key, e.g. "data.split"): test qrels are for
 * evaluation only, and training on them would make every reported test score meaningless. Any case is
 * refused, as a case-insensitive file system opens qrels/test.tsv for "Test".
 */
export function checkTrainingSplit(split: string, key: string): void {
  if (split.toLowerCase() === 'test')
    throw new ConfigError(`"${key}" is "${split}": test queries are never trained on; use the train (or dev) split`);
}

/** The files readTrainingSplit reads: the split's corpus, queries and qrels, and the test qrels it filters by. */
export function trainingSplitFiles(folder: string, split: string): string[] {
  return [...Object.values(beirSplitFiles(folder, split)), beirSplitFiles(folder, 'test').qrels];
}

/**
 * A BEIR split as a trainer reads it: without the queries whose text is also a query of the folder's test
 * split (SciFact train repeats two test claims under other ids: training on them is training on test
 * queries), and without the held-out sample's queries, when there is one. Holding out every judged query
 * leaves nothing to train on, which is refused rather than trained on as an empty source.
 */
export async function readTrainingSplit(
  folder: string,
  split: string,
  holdOut: QuerySample | null | undefined,
): Promise<TrainingSplit> {
  const ds = await readBeirDataset(folder, split);
  // drawn from the split as it is, as the evaluation draws it, so that both hold out the same sample
  const kept = holdOut ? withoutDevSample(ds, holdOut) : ds;
  if (holdOut && kept.queries.size === 0)
    throw new ConfigError(
      `${folder}: holdOut {n: ${holdOut.n}, seed: ${holdOut.seed}} keeps out all ${ds.queries.size} judged ` +
        `queries of split ${split}; nothing is left to train on`,
    );
  const out = await withoutTestQueries(kept);
  return {
    ...out,
    heldOut: { devSample: ds.queries.size - kept.queries.size, testQueries: kept.queries.size - out.queries.size },
  };
}

/** A split as read for training, and how many of its queries were kept out of it, and why. */
export interface TrainingSplit extends BeirDataset {
  heldOut: HeldOutCounts;
}

export interface HeldOutCounts {
  /** In the holdOut sample, or with the text of a query in it. */
  devSample: number;
  /** With the text of one of the folder's test queries. */
  testQueries: number;
}

/**
 * The queries kept out of training as a command's summary says them, after its other counts ("; 301 held out:
 * 300 of a holdOut dev sample, 1 repeating a test query"); nothing when none were. mine, train sft and train rl
 * say it alike.
 */
export function heldOutClause(counts: HeldOutCounts): string {
  const { devSample, testQueries } = counts;
  if (devSample + testQueries === 0) return '';
  const kinds = `${devSample} of a holdOut dev sample, ${testQueries} repeating a test query`;
  return `; ${devSample + testQueries} held out: ${kinds}`;
}

/** `ds` less its queries whose text a query of the same folder's test split has (unless ds is that split). */
async function withoutTestQueries(ds: BeirDataset): Promise<BeirDataset> {
  const testQrels = path.join(ds.folder, 'qrels', 'test.tsv');
  if (ds.split === 'test' || !existsSync(testQrels)) return ds;
  // in turn, so that with both files faulty the message is always the qrels file's
  const test = await readBeirQrels(testQrels);
  const texts = await readBeirQueries(beirSplitFiles(ds.folder, 'test').queries);
  const testTexts = new Set([...test.keys()].flatMap((q) => texts.get(q) ?? []));
  return withoutQueries(ds, new Set(), testTexts);
}
