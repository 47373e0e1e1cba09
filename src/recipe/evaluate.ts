/**
 * The default model's evaluation table: BM25, stage 1, stage 2 with reasoning off and on, and reciprocal-
 * rank hybrids of BM25 with stage 2, on SciFact test, NFCorpus test, XQuAD-en and XQuAD de/zh/ar questions against
 * the English paragraphs. nDCG@10 and Recall@100 as trec_eval computes them, paired significance tests over
 * per-query nDCG@10, wall times and reasoning statistics; written as evaluation.json and evaluation.md.
 * The hybrids' fusion (dense weight and k) is chosen first, on dev sets only, and then reported on every test set.
 *
 * Resumable: each run is a TREC run file plus a sidecar (its wall time and reasoning statistics) in the work folder,
 * keyed by everything that determines it (model fingerprint, the exact queries and documents, the options), and
 * document embeddings are cached in shards; a killed evaluation continues without recomputing finished work.
 * A document corpus is embedded once per model: stage 2's rows share it, and so do the four XQuAD sets.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MAX_REASONING_TOKENS, Embedder } from '../embed/index.js';
import { corpusOf, documentText, readBeirDataset, type BeirDocument } from '../eval/beir.js';
import { Bm25Retriever } from '../eval/bm25-retriever.js';
import type { EmbeddingMatrix } from '../eval/dense-search.js';
import { EmbeddingRetriever } from '../eval/embedding-retriever.js';
import { cacheKey } from '../eval/cache-record.js';
import { shardedEmbeddingSeconds, shardedEmbeddings } from '../eval/embedding-cache.js';
import { cachedRun } from '../eval/run-cache.js';
import { evaluateRun, type Evaluation } from '../eval/measures.js';
import { embedQueryMatrix, stackVectors } from '../eval/model-retriever.js';
import { compareEvaluations } from '../eval/report.js';
import type { ProgressFn } from '../eval/retriever.js';
import { writeTextFileAtomic, writeTrecRun, type Run } from '../eval/run.js';
import { modelFingerprint } from '../model/model-fingerprint.js';
import { fuseHybridRuns, RRF_K, type HybridFusion } from '../search-index/rrf.js';
import { chooseFusion, FUSION_GRID, refuseTestSplit, type FusionDevCase } from '../search-index/fusion-choice.js';
import { ModelFileError } from '../model/model-file-error.js';
import { isModelFolder, loadModelFolder } from '../model/model-folder.js';
import { sampleDevQueries, subsetDevSet, type DevSet, type QuerySample } from '../eval/dev-eval.js';
import { devSampleNotHeldOut } from './recipe-check.js';
import { SCIFACT_DEV } from './recipe-profiles.js';

export const RECIPE_DATASETS = ['scifact', 'nfcorpus', 'xquad-en', 'xquad-de', 'xquad-zh', 'xquad-ar'] as const;
export type RecipeDatasetId = (typeof RECIPE_DATASETS)[number];

export const RECIPE_ROWS = [
  'bm25',
  'stage1-off',
  'stage1-on',
  'stage2-off',
  'stage2-on',
  'hybrid-off',
  'hybrid-on',
] as const;
export type RecipeRowId = (typeof RECIPE_ROWS)[number];

const ROW_LABELS: Record<RecipeRowId, string> = {
  bm25: 'BM25',
  'stage1-off': 'stage 1, reasoning off',
  'stage1-on': 'stage 1, reasoning on',
  'stage2-off': 'stage 2, reasoning off',
  'stage2-on': 'stage 2, reasoning on',
  'hybrid-off': 'RRF(BM25, stage 2 off)',
  'hybrid-on': 'RRF(BM25, stage 2 on)',
};

/** Where each dataset's queries (with their qrels) and documents are, relative to the data folder; split test. */
const DATASET_SPECS: Record<RecipeDatasetId, { label: string; queries: string; corpus: string }> = {
  scifact: { label: 'SciFact test', queries: 'scifact', corpus: 'scifact' },
  nfcorpus: {
    label: 'NFCorpus test (preprocessed text)',
    queries: 'nfcorpus/beir-preprocessed/test',
    corpus: 'nfcorpus/beir-preprocessed/test',
  },
  'xquad-en': { label: 'XQuAD en', queries: 'xquad/beir/en', corpus: 'xquad/beir/en' },
  'xquad-de': { label: 'XQuAD de → en paragraphs', queries: 'xquad/beir/de', corpus: 'xquad/beir/en' },
  'xquad-zh': { label: 'XQuAD zh → en paragraphs', queries: 'xquad/beir/zh', corpus: 'xquad/beir/en' },
  'xquad-ar': { label: 'XQuAD ar → en paragraphs', queries: 'xquad/beir/ar', corpus: 'xquad/beir/en' },
};

/** The dev sets the hybrids' fusion is chosen on, before any test set is looked at. */
export const FUSION_DEV_SETS = ['scifact-dev', 'nfcorpus-dev'] as const;
export type FusionDevSetId = (typeof FUSION_DEV_SETS)[number];

/**
 * Where each dev set is. SciFact has judged train and test queries only, so its dev set is a fixed sample of train
 * queries (SCIFACT_DEV): never a test query. The recipe's profiles hold that sample out of every source that trains
 * on SciFact train; a stage-2 model whose configs do not show it (an older model, or none recorded) would rank its
 * own training queries, which flatters the dense ranking and pulls the dense weight up, so such a dev set is left
 * out of the choice. NFCorpus dev, which no stage trains on, is always used.
 */
const DEV_SPECS: Record<FusionDevSetId, { label: string; folder: string; split: string; sample?: QuerySample }> = {
  'scifact-dev': { label: `SciFact train, a ${SCIFACT_DEV.sample.n}-query sample`, ...SCIFACT_DEV },
  'nfcorpus-dev': { label: 'NFCorpus dev (preprocessed text)', folder: 'nfcorpus/beir-preprocessed/dev', split: 'dev' },
};

/** Every set a run is computed on: the test sets reported, and the dev sets the fusion is chosen on. */
type SetId = RecipeDatasetId | FusionDevSetId;

/**
 * Paired comparisons (a vs b) over per-query nDCG@10: what RL changed with reasoning off and on, what
 * reasoning changes before and after RL (the paper's two claims), and what fusion adds to BM25.
 */
const COMPARISONS: readonly [RecipeRowId, RecipeRowId][] = [
  ['stage2-off', 'stage1-off'],
  ['stage2-on', 'stage1-on'],
  ['stage1-on', 'stage1-off'],
  ['stage2-on', 'stage2-off'],
  ['hybrid-off', 'bm25'],
  ['hybrid-on', 'bm25'],
];

const MODEL_ROWS = ['stage1-off', 'stage1-on', 'stage2-off', 'stage2-on'] as const satisfies readonly RecipeRowId[];
type ModelRowId = (typeof MODEL_ROWS)[number];

/** Documents retrieved per query (as BEIR runs), and the cutoffs reported. */
const RUN_DEPTH = 1000;
const CUTOFFS = [10, 100] as const;
/**
 * BM25 as Pyserini's BEIR baselines, English analysis everywhere (the cross-lingual sets search English paragraphs).
 */
const BM25 = { k1: 0.9, b: 0.4, language: 'en' } as const;
/** Documents per cached embedding shard: a killed run loses at most one shard of work. */

export interface RecipeEvaluateOptions {
  /** Stage-1 and stage-2 model folders. */
  stage1: string;
  stage2: string;
  /** Folder for evaluation.json and evaluation.md. */
  out: string;
  /** Datasets folder (the CLI's default is ../shared/data beside the package). */
  data: string;
  /** Cache of runs and document embeddings (default <out>/work). */
  work?: string;
  /** Which datasets, in this order (default all of RECIPE_DATASETS). */
  datasets?: readonly RecipeDatasetId[];
  /** Keep the first N judged queries of each dataset (0 or undefined: all). */
  maxQueries?: number;
  /** Cut each corpus to the kept queries' judged documents plus the first N others (0 or undefined: whole corpus). */
  maxDocuments?: number;
  /** Reasoning budget with reasoning on (default DEFAULT_MAX_REASONING_TOKENS, as `search-r3 eval`). */
  maxReasoningTokens?: number;
  /** Sampling temperature of the reasoning (default 0: greedy). */
  temperature?: number;
  /** Longest prompt in tokens (default: each model's context). */
  maxLength?: number;
  /** Queries per generation batch with reasoning on (default 8). */
  queryBatch?: number;
  /** Seed of the reasoning sampler and of the randomisation test (default 42). */
  seed?: number;
  /** Sign flips of the randomisation test (default 10,000). */
  trials?: number;
  /** Progress of long work (stage names start with the dataset and row). */
  onProgress?: ProgressFn;
  /** One line per finished or reused step. */
  onLog?: (line: string) => void;
  /** How this evaluation was started, for the "produced by" line (default: the function call). */
  command?: string;
}

export interface ReasoningStats {
  queries: number;
  /** Queries whose embed token was forced after the budget. */
  forced: number;
  forcedFraction: number;
  /** Tokens generated before the embed token, averaged over queries. */
  meanReasoningTokens: number;
}

export interface RecipeRowResult {
  id: RecipeRowId;
  label: string;
  ndcg10: number;
  recall100: number;
  /**
   * Wall seconds of the row's own work: BM25 indexing + search; query encoding + search for a model row (document
   * embedding is reported per dataset, shared by rows); for a hybrid, its two runs + the fusion.
   */
  seconds: number;
  /** True when the run came from the work folder instead of being computed now. */
  reused: boolean;
  /** The TREC run file (absolute). */
  runFile: string;
  reasoning: ReasoningStats | null;
}

export interface RecipeComparison {
  a: RecipeRowId;
  b: RecipeRowId;
  measure: 'ndcg_cut_10';
  n: number;
  meanA: number;
  meanB: number;
  difference: number;
  /** Two-sided paired p-values; null with fewer than 2 queries. */
  tTestP: number | null;
  randomizationP: number | null;
}

export interface DocumentEmbeddingInfo {
  documents: number;
  /** Wall seconds spent embedding (summed over shards, including shards computed in an earlier, killed run). */
  seconds: number;
  reused: boolean;
  folder: string;
}

export interface RecipeDatasetResult {
  id: RecipeDatasetId;
  label: string;
  split: 'test';
  queriesFolder: string;
  corpusFolder: string;
  queries: number;
  documents: number;
  /** Sizes before maxQueries / maxDocuments. */
  judgedQueriesAvailable: number;
  documentsAvailable: number;
  bm25Analyzer: 'en';
  documentEmbeddings: { stage1: DocumentEmbeddingInfo; stage2: DocumentEmbeddingInfo };
  rows: RecipeRowResult[];
  significance: RecipeComparison[];
}

export interface RecipeDevSet {
  id: FusionDevSetId;
  label: string;
  queriesFolder: string;
  /** The qrels split read (never 'test'). */
  split: string;
  /** The sample of a split without a dev split of its own: how many queries, drawn with which seed. */
  sample: QuerySample | null;
  queries: number;
  documents: number;
  /** The runs the fusion was chosen on (TREC format, absolute paths). */
  runFiles: { bm25: string; 'stage2-off': string; 'stage2-on': string };
}

/** A dev set the fusion was not chosen on, and why (its queries may have been trained on). */
export interface SkippedDevSet {
  id: FusionDevSetId;
  label: string;
  reason: string;
}

/** The hybrids' fusion, chosen on the dev sets with stage 2's runs, reasoning off and on. */
export interface RecipeFusion extends HybridFusion {
  /** The dev sets in words; what the model stores with the fusion. */
  chosenOn: string;
  /** The choice's mean dev nDCG@10 (mean over dev set × reasoning of each mean), and plain RRF's (k = 60). */
  devNdcg10: number;
  plainRrfDevNdcg10: number | null;
  grid: { denseWeights: number[]; ks: number[] };
  /** The dev sets chosen on, and those left out because the stage-2 model may have trained on them. */
  devSets: RecipeDevSet[];
  skippedDevSets: SkippedDevSet[];
  /** Wall seconds of the dev runs (cached ones as recorded) and the grid search. */
  seconds: number;
}

/** evaluation.json's schema: @3 records the dev sets left out of the fusion choice (fusion.skippedDevSets). */
export const RECIPE_EVALUATION_SCHEMA = 'search-r3/recipe-evaluation@3';

export interface RecipeEvaluation {
  schema: typeof RECIPE_EVALUATION_SCHEMA;
  createdAt: string;
  producedBy: string;
  models: { stage1: { folder: string; fingerprint: string }; stage2: { folder: string; fingerprint: string } };
  settings: {
    data: string;
    work: string;
    datasets: RecipeDatasetId[];
    maxQueries: number;
    maxDocuments: number;
    maxReasoningTokens: number;
    temperature: number;
    maxLength: number | null;
    queryBatch: number;
    seed: number;
    randomizationTrials: number;
    runDepth: number;
    bm25: { k1: number; b: number; analyzer: 'en' };
    measures: string[];
    evaluation: string;
    threads: string | null;
  };
  fusion: RecipeFusion;
  datasets: RecipeDatasetResult[];
  seconds: number;
}

interface Settings {
  data: string;
  work: string;
  maxQueries: number;
  maxDocuments: number;
  maxReasoningTokens: number;
  temperature: number;
  maxLength: number | undefined;
  queryBatch: number;
  seed: number;
  trials: number;
}

interface ModelHandle {
  role: 'stage1' | 'stage2';
  dir: string;
  fingerprint: string;
  embedder?: Embedder;
}

interface LoadedDataset extends DevSet {
  /** The qrels split the queries were judged in. */
  split: string;
  corpusKey: string;
  queriesKey: string;
  fullQueries: number;
  fullDocuments: number;
}

interface RowRun {
  run: Run;
  seconds: number;
  reasoning: ReasoningStats | null;
  reused: boolean;
  runFile: string;
}

async function loadDataset(data: string, id: RecipeDatasetId, s: Settings): Promise<LoadedDataset> {
  const spec = DATASET_SPECS[id];
  const ds = await readBeirDataset(path.join(data, spec.queries), 'test');
  // Cross-lingual sets keep their own questions and qrels but search the English paragraphs (ids are parallel).
  const corpus =
    spec.corpus === spec.queries ? ds.corpus : (await readBeirDataset(path.join(data, spec.corpus), 'test')).corpus;
  return loaded({ corpus, queries: ds.queries, qrels: ds.qrels }, ds.split, s);
}

/** A set cut to the evaluation's maxQueries / maxDocuments, with the keys its cached runs are filed under. */
function loaded(full: DevSet, split: string, s: Settings): LoadedDataset {
  const set = subsetDevSet(full, s.maxQueries, s.maxDocuments);
  return {
    ...set,
    split,
    corpusKey: cacheKey(set.corpus.flatMap((d) => [d.id, d.title, d.text])),
    queriesKey: cacheKey([...set.queries].flat()),
    fullQueries: full.queries.size,
    fullDocuments: full.corpus.length,
  };
}

/** A dev set: its split (refused if 'test'), sampled when it is part of a train split, then cut as test sets are. */
async function loadDevDataset(data: string, id: FusionDevSetId, s: Settings): Promise<LoadedDataset> {
  const spec = DEV_SPECS[id];
  const ds = await readBeirDataset(path.join(data, spec.folder), spec.split);
  refuseTestSplit(ds.split);
  const full = spec.sample ? sampleDevQueries(ds, spec.sample.n, spec.sample.seed) : ds;
  return loaded(full, ds.split, s);
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** Everything one evaluation call shares: settings, models (loaded on first use), document embeddings in memory. */
class RecipeEvaluator {
  private readonly docCache = new Map<string, { matrix: EmbeddingMatrix; info: DocumentEmbeddingInfo }>();

  constructor(
    readonly s: Settings,
    readonly models: { stage1: ModelHandle; stage2: ModelHandle },
    private readonly onProgress: ProgressFn | undefined,
    private readonly log: (line: string) => void,
  ) {}

  private progress(prefix: string): ProgressFn {
    return (stage, done, total) => this.onProgress?.(`${prefix}: ${stage}`, done, total);
  }

  private async embedder(m: ModelHandle): Promise<Embedder> {
    if (!m.embedder) {
      const { model, tokenizer } = await loadModelFolder(m.dir);
      m.embedder = new Embedder(model, tokenizer, { maxLength: this.s.maxLength });
    }
    return m.embedder;
  }

  /** The run of `row`, from the work folder when a finished one with the same key is there, else computed and saved. */
  private async cachedRun(
    dsId: SetId,
    row: RecipeRowId,
    keyParts: string[],
    compute: () => Promise<{ run: Run; seconds: number; reasoning: ReasoningStats | null }>,
  ): Promise<RowRun> {
    const folder = path.join(this.s.work, 'runs', dsId);
    const r = await cachedRun(
      folder,
      row,
      keyParts,
      async () => {
        const { run, ...facts } = await compute();
        return { run, facts };
      },
      this.log,
    );
    this.log(
      r.reused
        ? `${dsId}: ${ROW_LABELS[row]} reused from ${r.runFile}`
        : `${dsId}: ${ROW_LABELS[row]} done in ${r.facts.seconds.toFixed(1)} s`,
    );
    return { run: r.run, seconds: r.facts.seconds, reasoning: r.facts.reasoning, reused: r.reused, runFile: r.runFile };
  }

  bm25(dsId: SetId, ds: LoadedDataset): Promise<RowRun> {
    return this.cachedRun(
      dsId,
      'bm25',
      ['bm25', JSON.stringify(BM25), String(RUN_DEPTH), ds.corpusKey, ds.queriesKey],
      async () => {
        const t0 = performance.now();
        const run = await new Bm25Retriever(BM25).retrieve(
          corpusOf(ds.corpus),
          ds.queries,
          RUN_DEPTH,
          this.progress(`${dsId} BM25`),
        );
        return { run, seconds: seconds(t0), reasoning: null };
      },
    );
  }

  /** Document embeddings of `m` for this corpus: from memory, from cached shards, or computed shard by shard. */
  async documents(
    m: ModelHandle,
    dsId: SetId,
    corpus: readonly BeirDocument[],
    corpusKey: string,
  ): Promise<{ matrix: EmbeddingMatrix; info: DocumentEmbeddingInfo }> {
    const { key, folder } = this.documentFolder(m, corpusKey);
    const hit = this.docCache.get(key);
    if (hit) return hit;
    const progress = this.progress(`${dsId} ${m.role}`);
    let e: Embedder | undefined;
    const texts = (a: number, b: number): string[] => corpus.slice(a, b).map(documentText);
    const r = await shardedEmbeddings(
      folder,
      corpus.map((d) => d.id),
      texts,
      {
        prepare: async () => {
          e = await this.embedder(m);
        },
        encode: (shard, start) => {
          const vectors = e!.embedDocuments(shard, (done) =>
            progress('encoding documents', start + done, corpus.length),
          ).vectors;
          return { vectors: stackVectors(vectors, e!.dimension), dim: e!.dimension };
        },
      },
      this.log,
    );
    const result = {
      matrix: r.matrix,
      info: { documents: corpus.length, seconds: r.seconds, reused: r.reused, folder },
    };
    this.log(
      `${dsId}: ${m.role} document embeddings ${r.reused ? 'reused' : 'computed'} (${corpus.length} ` +
        `documents, ${r.seconds.toFixed(1)} s)`,
    );
    this.docCache.set(key, result);
    return result;
  }

  modelRow(dsId: SetId, ds: LoadedDataset, row: ModelRowId): Promise<RowRun> {
    const m = row.startsWith('stage1') ? this.models.stage1 : this.models.stage2;
    const reasoning = row.endsWith('-on') ? 'on' : 'off';
    const s = this.s;
    const options =
      reasoning === 'on'
        ? [`budget=${s.maxReasoningTokens}`, `temperature=${s.temperature}`, `seed=${s.seed}`, `batch=${s.queryBatch}`]
        : [];
    const keyParts = [
      row,
      m.fingerprint,
      reasoning,
      ...options,
      `maxLength=${s.maxLength ?? 'context'}`,
      String(RUN_DEPTH),
      ds.corpusKey,
      ds.queriesKey,
    ];
    return this.cachedRun(dsId, row, keyParts, async () => {
      const docs = await this.documents(m, dsId, ds.corpus, ds.corpusKey);
      const embedder = await this.embedder(m);
      const progress = this.progress(`${dsId} ${ROW_LABELS[row]}`);
      const t0 = performance.now();
      const q = await embedQueryMatrix(
        embedder,
        ds.queries,
        {
          reasoning,
          maxReasoningTokens: s.maxReasoningTokens,
          temperature: s.temperature,
          seed: s.seed,
          queryBatch: s.queryBatch,
        },
        progress,
      );
      const run = await new EmbeddingRetriever(q.matrix, docs.matrix, row).retrieve(
        corpusOf(ds.corpus),
        ds.queries,
        RUN_DEPTH,
        progress,
      );
      const n = ds.queries.size;
      // generatedTokens counts the embed token of every query that emitted it; reasoning is what came before.
      const reasoningStats =
        reasoning === 'on'
          ? {
              queries: n,
              forced: q.forced,
              forcedFraction: n > 0 ? q.forced / n : 0,
              meanReasoningTokens: n > 0 ? (q.generatedTokens - (n - q.forced)) / n : 0,
            }
          : null;
      return { run, seconds: seconds(t0), reasoning: reasoningStats };
    });
  }

  private documentFolder(m: ModelHandle, corpusKey: string): { key: string; folder: string } {
    const key = cacheKey([m.fingerprint, corpusKey, String(this.s.maxLength ?? 'context')]);
    return { key, folder: path.join(this.s.work, 'embeddings', `${m.role}.${key}`) };
  }

  /**
   * The report's document-embedding line for `m`: from this call, or, when every run of the model was reused and
   * the embeddings were never loaded, from the cached shards' timings.
   */
  documentInfo(m: ModelHandle, ds: LoadedDataset): DocumentEmbeddingInfo {
    const { key, folder } = this.documentFolder(m, ds.corpusKey);
    const hit = this.docCache.get(key);
    if (hit) return hit.info;
    return { documents: ds.corpus.length, seconds: shardedEmbeddingSeconds(folder), reused: true, folder };
  }
}

function evaluate(run: Run, ds: LoadedDataset): Evaluation {
  // complete: every judged query counts, one retrieving nothing scores 0 (as `search-r3 eval --dataset`).
  return evaluateRun(run, ds.qrels, { cutoffs: CUTOFFS, complete: true });
}

function compare(a: RecipeRowId, b: RecipeRowId, evs: Map<RecipeRowId, Evaluation>, s: Settings): RecipeComparison {
  const ea = evs.get(a)!;
  const eb = evs.get(b)!;
  const n = ea.numQueries;
  if (n < 2) {
    const meanA = ea.all['ndcg_cut_10']!;
    const meanB = eb.all['ndcg_cut_10']!;
    return {
      a,
      b,
      measure: 'ndcg_cut_10',
      n,
      meanA,
      meanB,
      difference: meanA - meanB,
      tTestP: null,
      randomizationP: null,
    };
  }
  const [c] = compareEvaluations(ea, eb, ['ndcg_cut_10'], { seed: s.seed, trials: s.trials });
  return {
    a,
    b,
    measure: 'ndcg_cut_10',
    n: c!.n,
    meanA: c!.a,
    meanB: c!.b,
    difference: c!.a - c!.b,
    tTestP: c!.tTestP,
    randomizationP: c!.randomizationP,
  };
}

/**
 * Why the fusion must not be chosen on dev set `id` for this stage-2 model, or null when it may be: a sample of a
 * train split is used only when the model's recorded configs show that every step held the sample out of training.
 */
function trainedOnReason(id: FusionDevSetId, stage2: ModelHandle): string | null {
  const { folder, split, sample } = DEV_SPECS[id];
  return sample ? devSampleNotHeldOut(stage2.dir, { folder, split, sample }) : null;
}

/**
 * The hybrids' fusion: BM25 and stage 2 (reasoning off and on) on each dev set the model did not train on, then the
 * grid point with the best mean nDCG@10 over those dev runs. One fusion for both reasoning modes, because the model
 * stores one and search uses it whichever mode a query asks for. No test query is read here.
 */
async function chooseRecipeFusion(ev: RecipeEvaluator, log: (line: string) => void): Promise<RecipeFusion> {
  const s = ev.s;
  const cases: FusionDevCase[] = [];
  const devSets: RecipeDevSet[] = [];
  const skippedDevSets: SkippedDevSet[] = [];
  let runSeconds = 0;
  for (const id of FUSION_DEV_SETS) {
    const spec = DEV_SPECS[id];
    const reason = trainedOnReason(id, ev.models.stage2);
    if (reason) {
      log(`${id}: left out of the fusion choice: ${reason}`);
      skippedDevSets.push({ id, label: spec.label, reason });
      continue;
    }
    const ds = await loadDevDataset(s.data, id, s);
    log(`${id}: ${ds.queries.size} dev queries (${spec.split} qrels), ${ds.corpus.length} documents`);
    const bm25 = await ev.bm25(id, ds);
    const runFiles = { bm25: bm25.runFile, 'stage2-off': '', 'stage2-on': '' };
    runSeconds += bm25.seconds;
    for (const row of ['stage2-off', 'stage2-on'] as const) {
      const dense = await ev.modelRow(id, ds, row);
      runSeconds += dense.seconds;
      runFiles[row] = dense.runFile;
      cases.push({ split: ds.split, dense: dense.run, bm25: bm25.run, qrels: ds.qrels });
    }
    devSets.push({
      id,
      label: spec.label,
      queriesFolder: path.join(s.data, spec.folder),
      split: ds.split,
      sample: spec.sample ?? null,
      queries: ds.queries.size,
      documents: ds.corpus.length,
      runFiles,
    });
  }
  const t0 = performance.now();
  const choice = chooseFusion(cases);
  // weights 0.5 and 0.5 halve every score of plain RRF (weights 1 and 1): the same ranking, so the same nDCG@10
  const plain = choice.candidates.find((c) => c.denseWeight === 0.5 && c.k === RRF_K);
  const chosenOn =
    devSets.map((d) => `${d.label} (${d.queries} queries)`).join(' + ') + '; stage 2, reasoning off and on';
  const { denseWeight, k } = choice.fusion;
  log(`fusion: dense weight ${denseWeight}, k ${k}, chosen on ${chosenOn} (dev nDCG@10 ${choice.ndcg10.toFixed(4)})`);
  return {
    denseWeight,
    k,
    chosenOn,
    devNdcg10: choice.ndcg10,
    plainRrfDevNdcg10: plain?.ndcg10 ?? null,
    grid: { denseWeights: [...FUSION_GRID.denseWeights], ks: [...FUSION_GRID.ks] },
    devSets,
    skippedDevSets,
    seconds: runSeconds + seconds(t0),
  };
}

async function evaluateDataset(
  ev: RecipeEvaluator,
  dsId: RecipeDatasetId,
  fusion: HybridFusion,
  log: (line: string) => void,
): Promise<RecipeDatasetResult> {
  const s = ev.s;
  const spec = DATASET_SPECS[dsId];
  const ds = await loadDataset(s.data, dsId, s);
  log(`${dsId}: ${ds.queries.size} queries, ${ds.corpus.length} documents`);
  const runs = new Map<RecipeRowId, RowRun>();
  runs.set('bm25', await ev.bm25(dsId, ds));
  for (const row of MODEL_ROWS) runs.set(row, await ev.modelRow(dsId, ds, row));
  for (const [row, dense] of [
    ['hybrid-off', 'stage2-off'],
    ['hybrid-on', 'stage2-on'],
  ] as const) {
    const a = runs.get('bm25')!;
    const b = runs.get(dense)!;
    const t0 = performance.now();
    const run = fuseHybridRuns(b.run, a.run, RUN_DEPTH, fusion);
    const fusionSeconds = seconds(t0);
    const key = cacheKey([a.runFile, b.runFile, `denseWeight=${fusion.denseWeight}`, `k=${fusion.k}`]);
    const runFile = path.join(s.work, 'runs', dsId, `${row}.${key}.trec`);
    writeTrecRun(runFile, run, row);
    runs.set(row, {
      run,
      seconds: a.seconds + b.seconds + fusionSeconds,
      reasoning: b.reasoning,
      reused: a.reused && b.reused,
      runFile,
    });
  }
  const evs = new Map<RecipeRowId, Evaluation>();
  const rows: RecipeRowResult[] = RECIPE_ROWS.map((id) => {
    const r = runs.get(id)!;
    const e = evaluate(r.run, ds);
    evs.set(id, e);
    return {
      id,
      label: ROW_LABELS[id],
      ndcg10: e.all['ndcg_cut_10']!,
      recall100: e.all['recall_100']!,
      seconds: r.seconds,
      reused: r.reused,
      runFile: r.runFile,
      reasoning: r.reasoning,
    };
  });
  const m = ev.models;
  return {
    id: dsId,
    label: spec.label,
    split: 'test',
    queriesFolder: path.join(s.data, spec.queries),
    corpusFolder: path.join(s.data, spec.corpus),
    queries: ds.queries.size,
    documents: ds.corpus.length,
    judgedQueriesAvailable: ds.fullQueries,
    documentsAvailable: ds.fullDocuments,
    bm25Analyzer: 'en',
    documentEmbeddings: {
      stage1: ev.documentInfo(m.stage1, ds),
      stage2: ev.documentInfo(m.stage2, ds),
    },
    rows,
    significance: COMPARISONS.map(([a, b]) => compare(a, b, evs, s)),
  };
}

async function modelHandle(role: 'stage1' | 'stage2', dir: string): Promise<ModelHandle> {
  const abs = path.resolve(dir);
  if (!isModelFolder(abs)) {
    const stage = role === 'stage1' ? 'stage-1' : 'stage-2';
    throw new ModelFileError(
      abs,
      `is not a model folder (no config.json or adapter_config.json); give the ${stage} model folder.`,
    );
  }
  return { role, dir: abs, fingerprint: await modelFingerprint(abs) };
}

/**
 * Evaluates a stage-1 and a stage-2 model folder against BM25 on real data and writes `<out>/evaluation.json` and
 * `<out>/evaluation.md` (atomically). Call it again with the same arguments after a crash: finished runs and
 * document-embedding shards are reused from the work folder.
 */
export async function evaluateRecipeModels(o: RecipeEvaluateOptions): Promise<RecipeEvaluation> {
  const t0 = performance.now();
  const out = path.resolve(o.out);
  const datasets = [...(o.datasets ?? RECIPE_DATASETS)];
  for (const d of datasets) {
    if (!RECIPE_DATASETS.includes(d))
      throw new RangeError(`unknown dataset '${d}' (known: ${RECIPE_DATASETS.join(', ')})`);
  }
  const s: Settings = {
    data: path.resolve(o.data),
    work: path.resolve(o.work ?? path.join(out, 'work')),
    maxQueries: o.maxQueries ?? 0,
    maxDocuments: o.maxDocuments ?? 0,
    maxReasoningTokens: o.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS,
    temperature: o.temperature ?? 0,
    maxLength: o.maxLength,
    queryBatch: o.queryBatch ?? 8,
    seed: o.seed ?? 42,
    trials: o.trials ?? 10000,
  };
  const log = o.onLog ?? (() => {});
  const models = { stage1: await modelHandle('stage1', o.stage1), stage2: await modelHandle('stage2', o.stage2) };
  const ev = new RecipeEvaluator(s, models, o.onProgress, log);
  const fusion = await chooseRecipeFusion(ev, log);
  const results: RecipeDatasetResult[] = [];
  for (const d of datasets) results.push(await evaluateDataset(ev, d, fusion, log));
  const report: RecipeEvaluation = {
    schema: RECIPE_EVALUATION_SCHEMA,
    createdAt: new Date().toISOString(),
    producedBy: o.command ?? `evaluateRecipeModels (src/recipe/evaluate.ts)`,
    models: {
      stage1: { folder: models.stage1.dir, fingerprint: models.stage1.fingerprint },
      stage2: { folder: models.stage2.dir, fingerprint: models.stage2.fingerprint },
    },
    settings: {
      data: s.data,
      work: s.work,
      datasets,
      maxQueries: s.maxQueries,
      maxDocuments: s.maxDocuments,
      maxReasoningTokens: s.maxReasoningTokens,
      temperature: s.temperature,
      maxLength: s.maxLength ?? null,
      queryBatch: s.queryBatch,
      seed: s.seed,
      randomizationTrials: s.trials,
      runDepth: RUN_DEPTH,
      bm25: { k1: BM25.k1, b: BM25.b, analyzer: BM25.language },
      measures: ['ndcg_cut_10', 'recall_100'],
      evaluation: 'trec_eval semantics (src/eval/measures.ts), every judged query counted (-c)',
      threads: process.env['SEARCH_R3_THREADS'] ?? null,
    },
    fusion,
    datasets: results,
    seconds: seconds(t0),
  };
  writeTextFileAtomic(path.join(out, 'evaluation.json'), JSON.stringify(report, null, 2) + '\n');
  writeTextFileAtomic(path.join(out, 'evaluation.md'), formatRecipeEvaluation(report));
  log(`wrote ${path.join(out, 'evaluation.json')} and evaluation.md`);
  return report;
}

const f4 = (x: number): string => x.toFixed(4);
const pValue = (p: number | null): string => (p === null ? '—' : p < 1e-4 ? p.toExponential(1) : p.toFixed(4));
const secs = (x: number): string => (x < 10 ? x.toFixed(2) : x.toFixed(1));

/** The fusion's section: what was chosen, on which dev sets, by what, and what plain RRF scored there. */
function formatFusion(f: RecipeFusion): string[] {
  const plain = f.plainRrfDevNdcg10 === null ? '' : `; plain RRF, k = ${RRF_K}: ${f4(f.plainRrfDevNdcg10)}`;
  // rounded, or 1 − 0.7 prints as 0.30000000000000004
  const bm25Weight = Math.round((1 - f.denseWeight) * 1e9) / 1e9;
  return [
    '',
    '## Hybrid fusion (chosen on dev sets, never on test)',
    '',
    `Dense weight ${f.denseWeight}, BM25 weight ${bm25Weight}, k = ${f.k}: the best mean` +
      ` nDCG@10 (${f4(f.devNdcg10)}${plain}) of stage 2's hybrids with reasoning off and on, over dense weights` +
      ` ${f.grid.denseWeights.join(', ')} and k ${f.grid.ks.join(', ')} (ties go to the point nearest equal weights` +
      ` and k = ${RRF_K}). Every hybrid row below uses it; the recipe stores it with the model (search-r3.json),` +
      ' and hybrid search uses it.',
    '',
    '| dev set | split | queries | documents | folder |',
    '| --- | --- | ---: | ---: | --- |',
    ...f.devSets.map(
      (d) =>
        `| ${d.label} | ${d.split}${d.sample ? ` (seeded sample, seed ${d.sample.seed})` : ''} | ` +
        `${d.queries.toLocaleString('en')} | ${d.documents.toLocaleString('en')} | \`${d.queriesFolder}\` |`,
    ),
    '',
    'SciFact has no dev split: its dev set is a fixed sample of train queries, used only when the stage-2' +
      " model's configs show every training step held it out; NFCorpus dev is trained on by no stage.",
    ...f.skippedDevSets.map((d) => `Left out: ${d.label}, because ${d.reason}.`),
  ];
}

/** The markdown report: a summary of nDCG@10, then per dataset its rows, document-embedding time and p-values. */
export function formatRecipeEvaluation(r: RecipeEvaluation): string {
  const st = r.settings;
  const lines: string[] = ['# Search-R3 default model: evaluation', ''];
  lines.push(
    `Produced by \`${r.producedBy}\` on ${r.createdAt} in ${secs(r.seconds)} s` +
      ` (SEARCH_R3_THREADS=${st.threads ?? 'unset'}); stage 1 \`${r.models.stage1.folder}\` ` +
      `(${r.models.stage1.fingerprint}),` +
      ` stage 2 \`${r.models.stage2.folder}\` (${r.models.stage2.fingerprint}).`,
  );
  lines.push(
    `Measures as trec_eval computes them (every judged query counted); runs of depth ${st.runDepth};` +
      ` reasoning budget ${st.maxReasoningTokens} tokens, temperature ` +
      `${st.temperature}${st.temperature === 0 ? ' (greedy)' : ''};` +
      ` BM25 k1 ${st.bm25.k1}, b ${st.bm25.b}, English analyzer on every set; hybrid = reciprocal-rank fusion ` +
      `weighted as chosen on dev sets (below);` +
      ` paired tests over per-query nDCG@10 (t-test, and ${st.randomizationTrials} sign flips with seed ${st.seed}).`,
  );
  if (st.maxQueries > 0 || st.maxDocuments > 0) {
    lines.push(
      `Subsets: first ${st.maxQueries || 'all'} judged queries per set, corpus cut to their judged documents` +
        ` plus ${st.maxDocuments || 'all'} others. Not the full benchmark.`,
    );
  }
  lines.push('', '## nDCG@10', '');
  lines.push(`| row | ${r.datasets.map((d) => d.label).join(' | ')} |`);
  lines.push(`| --- |${r.datasets.map(() => ' ---: |').join('')}`);
  for (const id of RECIPE_ROWS) {
    lines.push(
      `| ${ROW_LABELS[id]} | ${r.datasets.map((d) => f4(d.rows.find((x) => x.id === id)!.ndcg10)).join(' | ')} |`,
    );
  }
  lines.push(...formatFusion(r.fusion));
  for (const d of r.datasets) {
    lines.push('', `## ${d.label}`, '');
    lines.push(
      `${d.queries.toLocaleString('en')} ` +
        `queries${d.queries < d.judgedQueriesAvailable ? ` of ${d.judgedQueriesAvailable.toLocaleString('en')}` : ''}` +
        ',' +
        ` ${d.documents.toLocaleString('en')} ` +
        `documents${d.documents < d.documentsAvailable ? ` of ${d.documentsAvailable.toLocaleString('en')}` : ''}` +
        ` (queries: \`${d.queriesFolder}\`, documents: \`${d.corpusFolder}\`).`,
    );
    const emb = (e: DocumentEmbeddingInfo): string => `${secs(e.seconds)} s${e.reused ? ' (cached)' : ''}`;
    lines.push(
      `Document embedding: stage 1 ${emb(d.documentEmbeddings.stage1)}, stage 2 ${emb(d.documentEmbeddings.stage2)}` +
        ' (once per model and corpus, shared by the rows; not in the row times).',
      '',
    );
    lines.push('| row | nDCG@10 | R@100 | wall s | mean reasoning tokens | forced |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const row of d.rows) {
      const rs = row.reasoning;
      lines.push(
        `| ${row.label} | ${f4(row.ndcg10)} | ${f4(row.recall100)} | ${secs(row.seconds)} | ` +
          `${rs ? rs.meanReasoningTokens.toFixed(1) : ''} | ${rs ? `${(100 * rs.forcedFraction).toFixed(1)} %` : ''} |`,
      );
    }
    lines.push('', '| comparison (nDCG@10) | a | b | a − b | p (t-test) | p (randomisation) | queries |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const c of d.significance) {
      lines.push(
        `| ${ROW_LABELS[c.a]} vs ${ROW_LABELS[c.b]} | ${f4(c.meanA)} | ${f4(c.meanB)} | ` +
          `${c.difference >= 0 ? '+' : ''}${f4(c.difference)}` +
          ` | ${pValue(c.tTestP)} | ${pValue(c.randomizationP)} | ${c.n} |`,
      );
    }
  }
  lines.push(
    '',
    'Hybrid wall time = its two runs + the fusion. Runs (TREC format) are in the work folder:' + ` \`${st.work}\`.`,
    '',
  );
  return lines.join('\n');
}
