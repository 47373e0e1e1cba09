/**
 * The settings of the default-model recipe: one `full` profile (the shipped model, a few hours on a
 * 2-core machine), one `gpu` profile (the v2 model, sized for a GPU machine lent in short sessions:
 * docs/default-model-v2.md) and one `tiny` profile with the same steps at toy sizes (the end-to-end
 * test). Every stage's config is a plain object written to <work>/configs/ before its step runs, so
 * each step is a command anyone can rerun by hand.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_PAIRS_SAMPLE } from '../train/sft/debian-pairs.js';
import { qwen2Parameters } from '../model/qwen2-config.js';

export type RecipeProfileName = 'full' | 'gpu' | 'tiny';

/** Folders and files of one recipe run. */
export interface RecipePaths {
  work: string;
  data: string;
  corpus: string;
  /** Stage-1 pairs from the Debian text packages (corpus pairs), for a profile with pairsArgs. */
  pairs: string;
  tokenizer: string;
  lm: string;
  mined: string;
  stage1: string;
  stage2: string;
  evaluation: string;
  configs: string;
}

export function recipePaths(work: string, data: string): RecipePaths {
  const w = (p: string): string => path.join(work, p);
  return {
    work,
    data,
    corpus: w('corpus'),
    // in the corpus folder: made from the same packages, and it travels with the corpus to a GPU machine
    pairs: w('corpus/pairs.jsonl'),
    tokenizer: w('tokenizer'),
    lm: w('lm'),
    mined: w('mined/scifact-train.jsonl'),
    stage1: w('stage1'),
    stage2: w('stage2'),
    evaluation: w('evaluation'),
    configs: w('configs'),
  };
}

export interface RecipeProfile {
  name: RecipeProfileName;
  /** `search-r3 corpus build` options after --data/--out. */
  corpusArgs: string[];
  /**
   * `search-r3 corpus pairs` options after --out: when set, the corpus step also writes the stage-1 pairs
   * of the Debian text packages (RecipePaths.pairs), which stage 1 should then read as a jsonl source.
   */
  pairsArgs?: string[];
  vocabSize: number;
  lm: (p: RecipePaths) => Record<string, unknown>;
  /** `search-r3 mine` options after --config/--out. */
  mineArgs: string[];
  mine: (p: RecipePaths) => Record<string, unknown>;
  stage1: (p: RecipePaths) => Record<string, unknown>;
  stage2: (p: RecipePaths) => Record<string, unknown>;
  /** `search-r3 recipe evaluate` options after --stage1/--stage2/--out/--data. */
  evaluateArgs: string[];
  /** `search-r3 demo --write-vectors` options after --model: which of the demo's abstracts ship encoded. */
  demoVectorsArgs: string[];
  /** Longest sequence the model was trained on: the shipped config's context. */
  context: number;
  /** Train shards the tokenizer learns from (the first n; shards are a seeded shuffle); default all. */
  tokenizerShards?: number;
  /** How the model's size was chosen, for the model card (the gpu profile's: gpuSizeNote). */
  sizeNote?: string;
}

/**
 * SciFact's dev set, on which recipe evaluate chooses the hybrid's fusion: SciFact has judged train and test
 * queries only, so it is a seeded sample (sampleDevQueries) of the train queries, never a test query. 300 is
 * the test set's size; the seed is its own, so the sample never moves. Every profile holds it out of each
 * source that reads SciFact train queries (recipe-check.ts refuses one that does not), so the dev set is
 * unseen by the models the fusion is chosen for.
 */
export const SCIFACT_DEV = { folder: 'scifact', split: 'train', sample: { n: 300, seed: 1 } } as const;

const scifact = (p: RecipePaths): string => path.join(p.data, SCIFACT_DEV.folder);

/** SciFact's train queries less the dev sample, as every source that trains on them reads them. */
const scifactTrain = { split: SCIFACT_DEV.split, holdOut: { ...SCIFACT_DEV.sample } };

/** Every profile mines stage 1's hard negatives for SciFact's train queries with the pretrained model. */
const mineScifactTrain = (p: RecipePaths): Record<string, unknown> => ({
  model: path.join(p.lm, 'final'),
  output: p.stage1,
  data: [{ type: 'beir', path: scifact(p), ...scifactTrain }],
});

/** The corpus's train shards in order, the first `max` of them (all by default). */
export function trainShards(corpus: string, max?: number): string[] {
  const all = existsSync(corpus)
    ? readdirSync(corpus)
        .filter((f) => /^train-\d+\.jsonl$/.test(f))
        .sort()
    : [];
  return all.slice(0, max ?? all.length).map((f) => path.join(corpus, f));
}

/** The corpus's train shards by name (the folder itself would also read valid.jsonl). */
const lmData = (p: RecipePaths): Record<string, unknown> => ({
  train: trainShards(p.corpus),
  valid: [path.join(p.corpus, 'valid.jsonl')],
});

/** SciFact train (BM25-mined hard negatives), Climate-FEVER claims, and pseudo-queries from SciFact's corpus. */
const stage1Data = (p: RecipePaths, maxDocuments: number): Record<string, unknown>[] => [
  { type: 'jsonl', path: p.mined },
  { type: 'climate-fever', path: path.join(p.data, 'climate-fever/climate-fever.jsonl') },
  { type: 'pseudo-queries', path: scifact(p), queries: 'sentence', seed: 0, maxDocuments },
  { type: 'pseudo-queries', path: scifact(p), queries: 'title', seed: 0, maxDocuments },
];

const nfcorpusDev = (p: RecipePaths): string => path.join(p.data, 'nfcorpus/beir-preprocessed/dev');

// ---- the gpu profile's size: from a throughput, not a guess (docs/default-model-v2.md) ----

export interface GpuShape {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
}

/** Candidate shapes, smallest first: heads of 64, half as many key/value heads, MLP ≈ 2.75–3× the width. */
export const GPU_SHAPES: readonly GpuShape[] = [
  { hiddenSize: 256, intermediateSize: 768, numHiddenLayers: 6, numAttentionHeads: 4, numKeyValueHeads: 2 },
  { hiddenSize: 384, intermediateSize: 1024, numHiddenLayers: 6, numAttentionHeads: 6, numKeyValueHeads: 3 },
  { hiddenSize: 384, intermediateSize: 1024, numHiddenLayers: 8, numAttentionHeads: 6, numKeyValueHeads: 3 },
  { hiddenSize: 512, intermediateSize: 1408, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 4 },
  { hiddenSize: 512, intermediateSize: 1408, numHiddenLayers: 12, numAttentionHeads: 8, numKeyValueHeads: 4 },
  { hiddenSize: 768, intermediateSize: 2048, numHiddenLayers: 12, numAttentionHeads: 12, numKeyValueHeads: 6 },
];

/**
 * What sizes the gpu profile. A shape's pretraining rate is `measured`: tokens/s of the training step
 * `npm run bench:sizing` times on the GPU machine, per shape (gpuShapeKey), at the profile's batch. Until
 * that has run there, `tflops` stands in, an ASSUMPTION: the effective f32 rate of our WebGPU training
 * step on the H200 (f32 peak ≈ 67 TFLOP/s without tensor cores; WGSL tiled gemms at these widths, plus the
 * per-dispatch overhead of a small model, taken at ≈ 7 % of it). Once any shape is measured, only measured
 * shapes are candidates. Set it before the first v2 run: the shape and the step counts follow from it,
 * and must not change between the sessions of one run.
 */
export interface GpuBudget {
  tflops: number;
  /** Pretraining tokens/s by gpuShapeKey, from bench:sizing on the machine the profile trains on. */
  measured: Readonly<Record<string, number>>;
  /** The adapter bench:sizing measured them on, as it names it. */
  measuredOn: string;
  pretrainSeconds: number;
  minTokensPerParameter: number;
  vocabSize: number;
  tokensPerStep: number;
  outBytes: number;
}

export const GPU_BUDGET: GpuBudget = {
  tflops: 5,
  measured: {},
  measuredOn: '',
  /** Pretraining seconds in one lease: a 15-minute lease minus start-up, transfers and the other steps. */
  pretrainSeconds: 360,
  /** Fewest pretraining tokens per parameter the chosen shape must see (v1 saw ≈ 1). */
  minTokensPerParameter: 2,
  vocabSize: 16384,
  /** Tokens per optimiser step (sequences × length × accumulation). */
  tokensPerStep: 32 * 256 * 2,
  /**
   * f16 bytes that may come back from one command (8 files of 16 MiB, 64 MiB together): the stage-1 and
   * stage-2 model folders return together, the pretrained one from an earlier command.
   */
  outBytes: 64 * 2 ** 20,
};

/** A shape's name in `GpuBudget.measured` and in bench:sizing's table: width × layers. */
export const gpuShapeKey = (m: GpuShape): string => `d${m.hiddenSize}x${m.numHiddenLayers}`;

export interface GpuSizing {
  shape: GpuShape;
  parameters: number;
  /** Pretraining tokens/s: measured, or tflops / 6N. */
  tokensPerSecond: number;
  /** Whether tokensPerSecond was measured (bench:sizing) or follows from the assumed tflops. */
  measured: boolean;
  /** Pretraining tokens the budget buys at this size (tokens/s × seconds). */
  tokens: number;
  steps: number;
}

/**
 * The largest candidate whose pretraining in the budget sees at least minTokensPerParameter tokens per
 * parameter, and whose two f16 model folders (stage 1, stage 2) fit what one command may bring back.
 */
export function gpuSizing(b: GpuBudget = GPU_BUDGET): GpuSizing {
  const anyMeasured = GPU_SHAPES.some((shape) => b.measured[gpuShapeKey(shape)] !== undefined);
  const sized = GPU_SHAPES.filter((shape) => !anyMeasured || b.measured[gpuShapeKey(shape)] !== undefined).map(
    (shape) => {
      const parameters = qwen2Parameters(shape, b.vocabSize);
      const rate = b.measured[gpuShapeKey(shape)];
      const tokensPerSecond = rate ?? (b.tflops * 1e12) / (6 * parameters);
      const tokens = tokensPerSecond * b.pretrainSeconds;
      return {
        shape,
        parameters,
        tokensPerSecond,
        measured: rate !== undefined,
        tokens,
        steps: Math.floor(tokens / b.tokensPerStep),
      };
    },
  );
  const fits = sized.filter(
    (x) => x.tokens >= b.minTokensPerParameter * x.parameters && 2 * 2 * x.parameters <= b.outBytes,
  );
  return fits.length > 0 ? fits[fits.length - 1] : sized[0];
}

/** How the gpu profile's size follows from its budget, in a sentence for the model card. */
export function gpuSizeNote(b: GpuBudget = GPU_BUDGET): string {
  const s = gpuSizing(b);
  const rate = s.measured
    ? `${Math.round(s.tokensPerSecond).toLocaleString('en')} tokens/s, the rate \`npm run bench:sizing\` measured ` +
      `on ${b.measuredOn || 'the GPU machine'}`
    : `an assumed ${b.tflops} TFLOP/s (${Math.round(s.tokensPerSecond).toLocaleString('en')} tokens/s; no rate was ` +
      'measured)';
  const perParameter = s.tokens / s.parameters;
  const which =
    perParameter >= b.minTokensPerParameter
      ? `the largest candidate that sees at least ${b.minTokensPerParameter} pretraining tokens per parameter`
      : `the smallest candidate, since none sees ${b.minTokensPerParameter} pretraining tokens per parameter`;
  return (
    `Its size (${s.shape.numHiddenLayers} layers × ${s.shape.hiddenSize}, ${(s.parameters / 1e6).toFixed(2)} M ` +
    `parameters) is ${which} in ${b.pretrainSeconds} s at ${rate}: ${(s.tokens / 1e6).toFixed(1)} M tokens ` +
    `(${perParameter.toFixed(1)} per parameter) in ${s.steps.toLocaleString('en')} steps. Its stage-1 and ` +
    'stage-2 folders come back from the GPU machine in one command.'
  );
}

/**
 * Stage-1 data of the v2 model: the v1 sources, DRCD dev and ARCD train questions (their test splits are
 * never read as queries) with same-article hard negatives, and pseudo-queries from every shared corpus's
 * documents except XQuAD's (XQuAD is evaluated) and NFCorpus's (its only text is preprocessed, and its dev
 * split is the dev set).
 */
const gpuStage1Data = (p: RecipePaths): Record<string, unknown>[] => [
  ...stage1Data(p, 0),
  // term → definition and heading → section pairs, made here by the corpus step (GPU_PAIRS_ARGS)
  { type: 'jsonl', path: p.pairs },
  { type: 'beir', path: path.join(p.data, 'drcd/beir/dev'), split: 'dev', sameTitleNegatives: 2 },
  { type: 'beir', path: path.join(p.data, 'arcd/beir/train'), split: 'train', sameTitleNegatives: 2 },
  ...['drcd/beir/dev', 'drcd/beir/test', 'arcd/beir/train', 'arcd/beir/test'].map((c) => ({
    type: 'pseudo-queries',
    path: path.join(p.data, c, 'corpus.jsonl'),
    queries: 'sentence',
    seed: 0,
    maxDocuments: 0,
  })),
];

/**
 * Train shards (8 MB each, a seeded shuffle of every source) pretraining reads: what travels to the GPU
 * machine beside the pack, dist and repo (≈ 2.2 MB each with xz; docs/default-model-v2.md).
 */
export const GPU_LM_SHARDS = 7;

/** The Debian pairs' sample (term → definition, heading → section): what travels is tightly limited. */
export const GPU_PAIRS_ARGS = [
  '--max-terms',
  String(DEFAULT_PAIRS_SAMPLE.maxTerms),
  '--max-headings',
  String(DEFAULT_PAIRS_SAMPLE.maxHeadings),
  '--seed',
  String(DEFAULT_PAIRS_SAMPLE.seed),
];

/** Reasoning budget of the v2 model: the analysis of stage 1, stage 2's rollouts and the evaluation. */
const GPU_REASONING_TOKENS = 32;

const sizing = gpuSizing();

export const PROFILES: Record<RecipeProfileName, RecipeProfile> = {
  full: {
    name: 'full',
    corpusArgs: ['--seed', '0', '--valid-fraction', '0.01'],
    vocabSize: 8192,
    context: 256,
    // docs/default-model.md: d256, 6 layers, ≈ 6.8 M parameters, 1,600 × 4,096 tokens ≈ 0.8 epoch
    lm: (p) => ({
      tokenizer: p.tokenizer,
      output: p.lm,
      seed: 0,
      data: { ...lmData(p) },
      model: {
        hiddenSize: 256,
        intermediateSize: 768,
        numHiddenLayers: 6,
        numAttentionHeads: 4,
        numKeyValueHeads: 2,
        ropeTheta: 10000,
        maxPositionEmbeddings: 1024,
        tieWordEmbeddings: true,
      },
      seqLength: 256,
      batchSize: 8,
      accumulation: 2,
      steps: 1600,
      optimizer: { lr: 2e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, warmupSteps: 100, minLr: 2e-4, maxGradNorm: 1 },
      eval: { every: 200, maxSequences: 64 },
      checkpoint: { every: 100, keep: 2 },
      saveDtype: 'F16',
    }),
    mineArgs: ['--window', '10:100', '--negatives', '4', '--fn-ratio', '0.95', '--seed', '0'],
    mine: mineScifactTrain,
    // KL is off: the pretrained base never saw the chat template, so a KL term on the response tokens
    // would only pull against L_SFT (Search-R3 starts from an instruction-tuned model, where it helps)
    stage1: (p) => ({
      model: path.join(p.lm, 'final'),
      output: p.stage1,
      seed: 0,
      maxLength: 256,
      steps: 250,
      data: stage1Data(p, 0),
      batch: { queries: 32, hardNegatives: 1, subBatch: 0, accumulation: 1 },
      loss: { sft: 1, kl: 0, infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2 },
      optimizer: { lr: 5e-4, weightDecay: 0.01, warmupSteps: 20, minLr: 5e-5, maxGradNorm: 1 },
      checkpoint: { every: 25, keep: 2 },
      eval: { beir: nfcorpusDev(p), split: 'dev', every: 50, maxQueries: 50, maxDocuments: 300 },
    }),
    stage2: (p) => ({
      model: path.join(p.stage1, 'final'),
      output: p.stage2,
      seed: 0,
      steps: 40,
      maxLength: 256,
      data: { beir: scifact(p), ...scifactTrain, maxQueries: 0, maxDocuments: 0 },
      // stage 1 leaves the response nearly deterministic ("The embedding is <|embed_token|>."): at T = 1
      // every response of a group was the same, every advantage 0 and GRPO idle; T = 1.5 explores
      rollout: { queries: 8, group: 4, temperature: 1.5, topP: 1, topK: 0, maxReasoningTokens: 24 },
      reward: { kind: 'ndcg', k: 10, formatPenalty: 0.5, lengthPenalty: 0 },
      // the contrastive term trains the embedding alongside the reasoning; its negatives are fresh rows
      // only (with stale ones it learnt to tell fresh from stale and the ranking reward fell to 0), and
      // with it reasoning-on retrieval rose 0.057 → 0.084 nDCG@10 (docs/default-model.md, attempts 2–5)
      loss: { clipEps: 0.2, beta: 0.04, innerEpochs: 1, infonce: 0.5, temperature: 0.05 },
      optimizer: { lr: 2e-5, weightDecay: 0, warmupSteps: 4, minLr: 2e-6, maxGradNorm: 1 },
      // a full refresh every 15 steps keeps the mean staleness ≤ 10, where the local rewards track exact
      // ones; without it the table reached 19 versions and under-rewarded (rlenv audit --from, docs/rlenv.md)
      environment: {
        mode: 'local',
        budget: 200,
        candidates: 8,
        neighbours: 4,
        rolling: 32,
        fullEvery: 15,
        returnCandidates: 16,
      },
      checkpoint: { every: 10, keep: 2 },
    }),
    evaluateArgs: ['--max-reasoning-tokens', '24'],
    demoVectorsArgs: [],
  },
  gpu: {
    name: 'gpu',
    corpusArgs: ['--seed', '0', '--valid-fraction', '0.005'],
    pairsArgs: GPU_PAIRS_ARGS,
    vocabSize: GPU_BUDGET.vocabSize,
    context: 256,
    // the BPE trainer holds every distinct word in memory; four 8 MB shards of the shuffled corpus hold
    // every source in proportion
    tokenizerShards: 4,
    sizeNote: gpuSizeNote(),
    lm: (p) => ({
      tokenizer: p.tokenizer,
      output: p.lm,
      seed: 0,
      data: { train: trainShards(p.corpus, GPU_LM_SHARDS), valid: [path.join(p.corpus, 'valid.jsonl')] },
      model: { ...sizing.shape, ropeTheta: 10000, maxPositionEmbeddings: 1024, tieWordEmbeddings: true },
      seqLength: 256,
      batchSize: 32,
      accumulation: 2,
      steps: sizing.steps,
      optimizer: { lr: 2e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, warmupSteps: 200, minLr: 2e-4, maxGradNorm: 1 },
      eval: { every: 250, maxSequences: 256 },
      // a checkpoint every 50 steps: a session that ends loses at most 50 steps
      checkpoint: { every: 50, keep: 2 },
      saveDtype: 'F16',
    }),
    mineArgs: ['--window', '10:100', '--negatives', '4', '--fn-ratio', '0.95', '--seed', '0'],
    mine: mineScifactTrain,
    stage1: (p) => ({
      model: path.join(p.lm, 'final'),
      output: p.stage1,
      seed: 0,
      maxLength: 256,
      steps: 400,
      data: gpuStage1Data(p),
      batch: { queries: 64, hardNegatives: 1, subBatch: 0, accumulation: 1 },
      loss: { sft: 1, kl: 0, infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2 },
      optimizer: { lr: 5e-4, weightDecay: 0.01, warmupSteps: 40, minLr: 5e-5, maxGradNorm: 1 },
      checkpoint: { every: 50, keep: 2 },
      eval: { beir: nfcorpusDev(p), split: 'dev', every: 100, maxQueries: 50, maxDocuments: 300 },
      // half the queries learn an analysis before the token, so that stage 2 has analyses to shape
      reasoning: { fraction: 0.5, concepts: 3, related: 3, maxTokens: GPU_REASONING_TOKENS },
    }),
    stage2: (p) => ({
      model: path.join(p.stage1, 'final'),
      output: p.stage2,
      seed: 0,
      steps: 60,
      maxLength: 256,
      data: { beir: scifact(p), ...scifactTrain, maxQueries: 0, maxDocuments: 0 },
      rollout: {
        queries: 16,
        group: 4,
        temperature: 1.2,
        topP: 1,
        topK: 0,
        maxReasoningTokens: GPU_REASONING_TOKENS,
      },
      reward: { kind: 'ndcg', k: 10, formatPenalty: 0.5, lengthPenalty: 0 },
      loss: { clipEps: 0.2, beta: 0.04, innerEpochs: 1, infonce: 0.5, temperature: 0.05 },
      optimizer: { lr: 2e-5, weightDecay: 0, warmupSteps: 8, minLr: 2e-6, maxGradNorm: 1 },
      environment: {
        mode: 'local',
        budget: 400,
        candidates: 8,
        neighbours: 4,
        rolling: 64,
        fullEvery: 15,
        returnCandidates: 16,
      },
      checkpoint: { every: 10, keep: 2 },
    }),
    evaluateArgs: ['--max-reasoning-tokens', String(GPU_REASONING_TOKENS)],
    demoVectorsArgs: [],
  },
  tiny: {
    name: 'tiny',
    // one small English source keeps tokenizing and pretraining to seconds
    corpusArgs: ['--seed', '0', '--valid-fraction', '0.05', '--only', 'climate-fever-evidence'],
    vocabSize: 384,
    context: 128,
    lm: (p) => ({
      tokenizer: p.tokenizer,
      output: p.lm,
      seed: 0,
      data: { ...lmData(p) },
      model: {
        hiddenSize: 32,
        intermediateSize: 64,
        numHiddenLayers: 2,
        numAttentionHeads: 2,
        numKeyValueHeads: 1,
        ropeTheta: 10000,
        maxPositionEmbeddings: 256,
        tieWordEmbeddings: true,
      },
      seqLength: 64,
      batchSize: 2,
      accumulation: 1,
      steps: 4,
      optimizer: { lr: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, warmupSteps: 1, minLr: 1e-4, maxGradNorm: 1 },
      eval: { every: 2, maxSequences: 2 },
      checkpoint: { every: 2, keep: 2 },
      saveDtype: 'F32',
    }),
    mineArgs: ['--window', '2:20', '--negatives', '2', '--seed', '0'],
    mine: mineScifactTrain,
    stage1: (p) => ({
      model: path.join(p.lm, 'final'),
      output: p.stage1,
      seed: 0,
      maxLength: 128,
      steps: 3,
      data: stage1Data(p, 40),
      batch: { queries: 4, hardNegatives: 1, subBatch: 0, accumulation: 1 },
      loss: { sft: 1, kl: 0, infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2 },
      optimizer: { lr: 1e-3, warmupSteps: 1 },
      checkpoint: { every: 2, keep: 2 },
      eval: { beir: nfcorpusDev(p), split: 'dev', every: 2, maxQueries: 3, maxDocuments: 20 },
    }),
    stage2: (p) => ({
      model: path.join(p.stage1, 'final'),
      output: p.stage2,
      seed: 0,
      steps: 2,
      maxLength: 128,
      data: { beir: scifact(p), ...scifactTrain, maxQueries: 6, maxDocuments: 60 },
      rollout: { queries: 2, group: 2, temperature: 1, maxReasoningTokens: 4 },
      reward: { kind: 'ndcg', k: 10 },
      loss: { infonce: 0.5 },
      optimizer: { lr: 1e-4 },
      environment: { budget: 20, rolling: 4 },
      checkpoint: { every: 1, keep: 2 },
    }),
    evaluateArgs: [
      '--max-reasoning-tokens',
      '4',
      '--max-queries',
      '4',
      '--max-documents',
      '40',
      '--datasets',
      'scifact,xquad-de',
    ],
    // the judged abstracts of 5 test claims and 20 others: seconds, where all 5,183 would take a minute
    demoVectorsArgs: ['--max-queries', '5', '--max-documents', '20'],
  },
};
