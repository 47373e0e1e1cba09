/**
 * Hard-negative mining: rank a candidate pool for each training query (BM25 or the model's own
 * embeddings), take the documents in a rank window (e.g. ranks 10–100: hard, but past the top where
 * unjudged relevant documents crowd), and drop likely false negatives — any candidate scoring at least
 * `falseNegativeRatio` × the query's best positive score. The output is FlagEmbedding's JSONL layout
 * ({query, pos, neg}), a data source for `train sft` as it is.
 */
import { Embedder, type PromptTemplates } from '../../embed/index.js';
import type { Qwen2Model } from '../../model/qwen2-model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { createAnalyzer } from '../../eval/analyzer.js';
import { Bm25Index } from '../../eval/bm25.js';
import { embedCorpus } from '../../eval/model-retriever.js';
import type { ProgressFn } from '../../eval/retriever.js';
import { Rng } from '../../tensor/index.js';
import type { TrainExample } from './data.js';

export interface MineOptions {
  /** First and last rank (1-based, inclusive) negatives are drawn from. */
  fromRank: number;
  toRank: number;
  /** Negatives kept per query (a seeded sample of the window after filtering). */
  negatives: number;
  /** Drop candidates scoring ≥ ratio × the best positive's score (÷ ratio when it is negative); null: keep all. */
  falseNegativeRatio: number | null;
  seed: number;
}

/**
 * Scores of candidates for one query: the ranked top (best first) and the score of each positive in the pool,
 * whether or not it made the top: a positive ranked below every candidate is where the filter drops the most.
 */
export interface Ranked {
  docs: number[];
  scores: number[];
  positiveScores: number[];
}

export type Ranker = (query: string, positives: readonly string[], k: number) => Ranked;

export interface MineStats {
  queries: number;
  withNegatives: number;
  negatives: number;
  filteredAsFalseNegative: number;
}

export function mineHardNegatives(
  examples: readonly TrainExample[],
  pool: readonly string[],
  rank: Ranker,
  o: MineOptions,
  onProgress?: (done: number, total: number) => void,
): { mined: TrainExample[]; stats: MineStats } {
  if (!(o.fromRank >= 1 && o.toRank >= o.fromRank))
    throw new Error(`the rank window ${o.fromRank}..${o.toRank} is empty`);
  const rng = new Rng(o.seed);
  const stats: MineStats = { queries: examples.length, withNegatives: 0, negatives: 0, filteredAsFalseNegative: 0 };
  const mined = examples.map((ex, qi) => {
    const r = rank(ex.query, ex.positives, o.toRank + ex.positives.length);
    const pos = new Set(ex.positives);
    const threshold = falseNegativeThreshold(r.positiveScores, o.falseNegativeRatio);
    // negatives the example already has keep their ranks but are not drawn again: the budget is for new ones
    const had = new Set(ex.negatives);
    const window: string[] = [];
    let rankNo = 0;
    for (let i = 0; i < r.docs.length && rankNo < o.toRank; i++) {
      const text = pool[r.docs[i]];
      if (pos.has(text) || text === ex.query) continue; // positives do not take up ranks
      rankNo++;
      if (rankNo < o.fromRank) continue;
      if (r.scores[i] >= threshold) {
        stats.filteredAsFalseNegative++;
        continue;
      }
      if (!had.has(text)) window.push(text);
    }
    const chosen = rng.shuffle(window).slice(0, o.negatives);
    if (chosen.length > 0) stats.withNegatives++;
    stats.negatives += chosen.length;
    onProgress?.(qi + 1, examples.length);
    return { query: ex.query, positives: ex.positives, negatives: [...had, ...chosen] };
  });
  return { mined, stats };
}

/**
 * The score at and above which a candidate counts as a likely false negative: ratio × the best positive's
 * score (÷ ratio for a negative one, so that a ratio below 1 still lowers it). Infinity, dropping nothing, when
 * the filter is off or no positive is in the pool to be scored.
 */
export function falseNegativeThreshold(positiveScores: readonly number[], ratio: number | null): number {
  if (ratio === null || positiveScores.length === 0) return Infinity;
  const best = Math.max(...positiveScores);
  return best >= 0 ? ratio * best : best / ratio;
}

/** BM25 (the eval layer's Lucene-style index) over the pool; positives are scored exactly, ranked or not. */
export function bm25Ranker(pool: readonly string[]): Ranker {
  const index = Bm25Index.build(
    pool.map((text, i) => ({ id: String(i), text })),
    createAnalyzer(),
  );
  const scratch = new Float64Array(index.size);
  const where = new Map(pool.map((t, i) => [t, i]));
  return (query, positives, k) => {
    const list = index.search(query, k, scratch);
    const docs = list.docIds.map(Number);
    const inPool = positives.flatMap((p) => where.get(p) ?? []);
    return { docs, scores: list.scores, positiveScores: index.scoreDocuments(query, inPool) };
  };
}

/** The model's own embeddings: documents embedded once (in groups: embedCorpus), queries one by one, exact cosine. */
export async function modelRanker(
  model: Qwen2Model,
  tokenizer: Tokenizer,
  pool: readonly string[],
  opts: { templates?: Partial<PromptTemplates>; maxLength?: number; onProgress?: ProgressFn } = {},
): Promise<Ranker> {
  const emb = new Embedder(model, tokenizer, opts);
  const d = emb.dimension;
  const matrix = await embedCorpus(
    emb,
    pool.length,
    (start, end) => pool.slice(start, end),
    (done, total) => opts.onProgress?.('encoding documents', done, total),
  );
  const where = new Map(pool.map((t, i) => [t, i]));
  return (query, positives, k) => {
    const q = emb.embedQuery(query).vector;
    const scores = pool.map((_, row) => {
      let s = 0;
      for (let i = 0, at = row * d; i < d; i++) s += q[i] * matrix[at + i];
      return s;
    });
    const docs = scores
      .map((_, i) => i)
      .sort((a, b) => scores[b] - scores[a])
      .slice(0, k);
    const positiveScores = positives.flatMap((p) => {
      const i = where.get(p);
      return i === undefined ? [] : [scores[i]];
    });
    return { docs, scores: docs.map((i) => scores[i]), positiveScores };
  };
}

/** FlagEmbedding's layout, one object per line. */
export function* jsonlLines(examples: readonly TrainExample[]): Generator<string> {
  for (const e of examples) yield JSON.stringify({ query: e.query, pos: e.positives, neg: e.negatives }) + '\n';
}
