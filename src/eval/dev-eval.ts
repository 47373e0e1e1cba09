/**
 * A dev set: a BEIR split, or a subset of it (its first maxQueries queries, their judged documents plus
 * the first maxDocuments others), small enough to score often, as stage 1 does between training steps.
 * Any Retriever scores it (the model being trained: a ModelRetriever, documents embedded directly and
 * queries without reasoning, then the exact dense search); nDCG@10 is measured with trec_eval semantics,
 * and the sizes are reported with the score, since a subset's figure is not the full benchmark's.
 */
import { corpusOf, type BeirDocument, readBeirDataset } from './beir.js';
import { evaluateRun } from './measures.js';
import type { Qrels } from './qrels.js';
import type { Retriever } from './retriever.js';
import { mulberry32 } from './significance.js';

export interface DevSet {
  corpus: BeirDocument[];
  queries: Map<string, string>;
  qrels: Qrels;
}

export async function loadDevSet(folder: string, split: string, maxQueries = 0, maxDocuments = 0): Promise<DevSet> {
  return subsetDevSet(await readBeirDataset(folder, split), maxQueries, maxDocuments);
}

/** The first maxQueries queries (file order; 0 keeps them all) with their qrels. */
export function firstQueries(
  ds: Pick<DevSet, 'queries' | 'qrels'>,
  maxQueries = 0,
): { queries: Map<string, string>; qrels: Qrels } {
  const queries = maxQueries > 0 ? new Map([...ds.queries].slice(0, maxQueries)) : ds.queries;
  return { queries, qrels: new Map([...ds.qrels].filter(([q]) => queries.has(q))) };
}

/**
 * The first maxQueries queries (file order) with their qrels, and the corpus cut to their judged documents
 * plus the first maxDocuments others (corpus order kept); 0 keeps everything.
 */
export function subsetDevSet(ds: DevSet, maxQueries = 0, maxDocuments = 0): DevSet {
  const { queries, qrels } = firstQueries(ds, maxQueries);
  let corpus = ds.corpus;
  if (maxDocuments > 0) {
    const judged = new Set([...qrels.values()].flatMap((m) => [...m.keys()]));
    let others = 0;
    corpus = corpus.filter((d) => judged.has(d.id) || others++ < maxDocuments);
  }
  return { corpus, queries, qrels };
}

/** A seeded sample of a split's queries (sampleDevQueries): how many, drawn with which seed. */
export interface QuerySample {
  n: number;
  seed: number;
}

/**
 * `n` queries drawn at random with `seed` (a Fisher–Yates shuffle of the ids; kept in file order) with their
 * qrels, and the whole corpus: a fixed held-out part of a split that has no dev split of its own. n ≥ the
 * number of queries keeps them all.
 */
export function sampleDevQueries(ds: DevSet, n: number, seed: number): DevSet {
  return keepQueries(ds, sampledIds(ds, { n, seed }), true);
}

/**
 * `ds` without the queries sampleDevQueries(ds, n, seed) draws: what a trainer reads from a split whose sample
 * is a dev set, so that the dev set stays unseen. The draw depends only on the split's query ids and the seed,
 * so a trainer and the evaluation that read the same split agree on it. A query with the same text as a drawn
 * one goes too: SciFact train repeats claims under other ids, and training on the twin is training on the dev
 * query.
 */
export function withoutDevSample<D extends DevSet>(ds: D, sample: QuerySample): D {
  const drawn = sampledIds(ds, sample);
  return withoutQueries(ds, drawn, new Set([...drawn].map((q) => ds.queries.get(q)!)));
}

/** `ds` less the queries in `ids` and every query whose text is one of `texts`, with their qrels. */
export function withoutQueries<D extends DevSet>(ds: D, ids: ReadonlySet<string>, texts: ReadonlySet<string>): D {
  const out = new Set([...ds.queries].filter(([q, text]) => ids.has(q) || texts.has(text)).map(([q]) => q));
  return { ...ds, ...keepQueries(ds, out, false) };
}

function sampledIds(ds: DevSet, { n, seed }: QuerySample): Set<string> {
  const ids = [...ds.queries.keys()];
  const rand = mulberry32(seed);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  return new Set(ids.slice(0, Math.max(0, n)));
}

/** The queries of `ds` (with their qrels) that are in `ids` (inside) or not (outside), and the whole corpus. */
function keepQueries(ds: DevSet, ids: Set<string>, inside: boolean): DevSet {
  return {
    corpus: ds.corpus,
    queries: new Map([...ds.queries].filter(([q]) => ids.has(q) === inside)),
    qrels: new Map([...ds.qrels].filter(([q]) => ids.has(q) === inside)),
  };
}

export interface DevSetScore {
  ndcg10: number;
  queries: number;
  documents: number;
  seconds: number;
}

/** nDCG@10 of `retriever` on the dev set, with the set's sizes and the wall time it took. */
export async function scoreDevSet(retriever: Retriever, set: DevSet): Promise<DevSetScore> {
  const t0 = Date.now();
  const run = await retriever.retrieve(corpusOf(set.corpus), set.queries, 10);
  const ev = evaluateRun(run, set.qrels, { cutoffs: [10] });
  const seconds = (Date.now() - t0) / 1000;
  return { ndcg10: ev.all.ndcg_cut_10, queries: set.queries.size, documents: set.corpus.length, seconds };
}
