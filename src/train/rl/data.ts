/**
 * Stage-2 data: training queries with their judged positives, and the environment's corpus. A query
 * none of whose positives is in the corpus cannot be rewarded: it is skipped and counted.
 */
import { documentText } from '../../eval/beir.js';
import type { Positive } from '../../rlenv/reward.js';
import { type HeldOutCounts, readTrainingSplit } from '../hold-out.js';
import type { RlConfig } from './config.js';

export interface RlQuery {
  id: string;
  text: string;
  positives: Positive[];
}

export interface RlData {
  queries: RlQuery[];
  /** Document ids and texts, one per environment row. */
  docIds: string[];
  docTexts: string[];
  stats: {
    /** Of the split, less those held out. */
    judgedQueries: number;
    queries: number;
    /**
     * Of the judged queries looked at: all of them, or (data.maxQueries) those up to the last query used, so that
     * `queries` + `skippedNoPositiveInCorpus` are the queries looked at.
     */
    skippedNoPositiveInCorpus: number;
    /** Judged relevant by the queries looked at, and not in corpus.jsonl. */
    positivesNotInCorpus: number;
    documents: number;
    corpusDocuments: number;
    /** Judged queries kept out of training (hold-out.ts): data.holdOut's dev sample, test queries' texts. */
    heldOut: HeldOutCounts;
  };
}

/** The queries and corpus of a stage-2 config's data section (its split less the held-out dev sample, if any). */
export async function loadRlData(data: RlConfig['data']): Promise<RlData> {
  const { maxQueries, maxDocuments } = data;
  const ds = await readTrainingSplit(data.beir, data.split, data.holdOut);
  const qids = [...ds.qrels.keys()].filter((q) => ds.queries.has(q)).sort();
  const byId = new Map(ds.corpus.map((d, i) => [d.id, i]));
  let skipped = 0,
    missing = 0;
  const picked: { id: string; text: string; docs: [number, number][] }[] = [];
  for (const id of qids) {
    // the queries after the first maxQueries usable ones are not looked at: what is counted is of those that were
    if (maxQueries > 0 && picked.length === maxQueries) break;
    const docs: [number, number][] = [];
    for (const [doc, grade] of ds.qrels.get(id)!) {
      if (grade < 1) continue;
      const at = byId.get(doc);
      if (at === undefined) {
        missing++;
        continue;
      }
      docs.push([at, grade]);
    }
    if (docs.length === 0) {
      skipped++;
      continue;
    }
    picked.push({ id, text: ds.queries.get(id)!, docs });
  }
  const used = picked;
  // a corpus subset keeps every positive of the used queries, then the corpus in its order
  let keep: number[];
  if (maxDocuments > 0 && maxDocuments < ds.corpus.length) {
    const set = new Set<number>(used.flatMap((q) => q.docs.map(([d]) => d)));
    for (let i = 0; i < ds.corpus.length && set.size < maxDocuments; i++) set.add(i);
    keep = [...set].sort((a, b) => a - b);
  } else {
    keep = ds.corpus.map((_, i) => i);
  }
  const row = new Map(keep.map((d, r) => [d, r]));
  const queries = used.map((q) => ({
    id: q.id,
    text: q.text,
    positives: q.docs.map(([d, grade]) => ({ row: row.get(d)!, grade })),
  }));
  return {
    queries,
    docIds: keep.map((d) => ds.corpus[d].id),
    docTexts: keep.map((d) => documentText(ds.corpus[d])),
    stats: {
      judgedQueries: qids.length,
      queries: queries.length,
      skippedNoPositiveInCorpus: skipped,
      positivesNotInCorpus: missing,
      documents: keep.length,
      corpusDocuments: ds.corpus.length,
      heldOut: ds.heldOut,
    },
  };
}

/**
 * Why `stats` holds no query to train on, and what to check. A corpus cut by data.maxDocuments is not among the
 * causes: the cut keeps every positive of the queries used.
 */
export function noTrainingQuery(stats: RlData['stats'], split: string): string {
  const qrels = `qrels/${split}.tsv`;
  if (stats.judgedQueries === 0)
    return (
      `${qrels} leaves no query to train on: it judges none, or every one was held out (by data.holdOut, or as ` +
      'the text of a test query)'
    );
  const n = stats.judgedQueries;
  if (stats.positivesNotInCorpus === 0)
    return (
      `none of the ${n} queries of ${qrels} has a document judged relevant (grade ≥ 1): check that its third ` +
      'column holds the grades'
    );
  return (
    `none of the ${n} queries of ${qrels} has a relevant document in corpus.jsonl (all ` +
    `${stats.positivesNotInCorpus} it judges relevant are missing): check that the qrels and corpus.jsonl are ` +
    "of the same dataset and version, whose document ids match, not another dataset's or split's"
  );
}
