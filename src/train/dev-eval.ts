/**
 * Dev-set evaluation during training: embed a BEIR split's corpus and queries with the model being
 * trained (direct prompts, no reasoning), rank by exact cosine, score nDCG@10 with the eval harness
 * (trec_eval semantics). A dev subset (first maxQueries queries, their judged documents plus the first
 * maxDocuments others) keeps evaluation cheap; the chosen sizes are reported with the score.
 */
import { Embedder } from '../embed/embedder.js';
import type { PromptTemplates } from '../embed/prompts.js';
import type { Qwen2Model } from '../model/qwen2-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { type BeirDocument, documentText, readBeirDataset } from '../eval/beir.js';
import { evaluateRun } from '../eval/measures.js';
import type { Qrels } from '../eval/qrels.js';
import type { Run } from '../eval/run.js';

export interface DevSet { corpus: BeirDocument[]; queries: Map<string, string>; qrels: Qrels }

export async function loadDevSet(folder: string, split: string, maxQueries = 0, maxDocuments = 0): Promise<DevSet> {
  return subsetDevSet(await readBeirDataset(folder, split), maxQueries, maxDocuments);
}

/**
 * The first maxQueries queries (file order) with their qrels, and the corpus cut to their judged documents plus the
 * first maxDocuments others (corpus order kept); 0 keeps everything.
 */
export function subsetDevSet(ds: DevSet, maxQueries = 0, maxDocuments = 0): DevSet {
  let queries = ds.queries;
  if (maxQueries > 0) queries = new Map([...queries].slice(0, maxQueries));
  const qrels: Qrels = new Map([...ds.qrels].filter(([q]) => queries.has(q)));
  let corpus = ds.corpus;
  if (maxDocuments > 0) {
    const judged = new Set([...qrels.values()].flatMap((m) => [...m.keys()]));
    let others = 0;
    corpus = corpus.filter((d) => judged.has(d.id) || others++ < maxDocuments);
  }
  return { corpus, queries, qrels };
}

/** The k most similar documents of each query by cosine (vectors are unit length from the Embedder). */
export function exactSearch(docIds: readonly string[], docs: readonly Float32Array[], queries: ReadonlyMap<string, Float32Array>, k: number): Run {
  const run: Run = new Map();
  for (const [qid, q] of queries) {
    const scores = docs.map((d) => { let s = 0; for (let i = 0; i < q.length; i++) s += q[i] * d[i]; return s; });
    const top = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]).slice(0, k);
    run.set(qid, { docIds: top.map((i) => docIds[i]), scores: top.map((i) => scores[i]) });
  }
  return run;
}

export interface DenseEvalResult { ndcg10: number; queries: number; documents: number; seconds: number }

export function evaluateDense(model: Qwen2Model, tokenizer: Tokenizer, set: DevSet, opts: { templates?: Partial<PromptTemplates>; maxLength?: number } = {}): DenseEvalResult {
  const t0 = Date.now();
  const emb = new Embedder(model, tokenizer, { templates: opts.templates, maxLength: opts.maxLength });
  const docs = emb.embedDocuments(set.corpus.map(documentText)).vectors;
  const qids = [...set.queries.keys()];
  const qv = emb.embedQueries(qids.map((q) => set.queries.get(q)!));
  const run = exactSearch(set.corpus.map((d) => d.id), docs, new Map(qids.map((q, i) => [q, qv[i].vector])), 10);
  const ev = evaluateRun(run, set.qrels, { cutoffs: [10] });
  return { ndcg10: ev.all.ndcg_cut_10, queries: qids.length, documents: set.corpus.length, seconds: (Date.now() - t0) / 1000 };
}
