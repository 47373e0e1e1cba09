/**
 * The settings of the default-model recipe: one `full` profile (the shipped model, a few hours on a
 * 2-core machine) and one `tiny` profile with the same steps at toy sizes (the end-to-end test).
 * Every stage's config is a plain object written to <work>/configs/ before its step runs, so each
 * step is a command anyone can rerun by hand.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';

export type RecipeProfileName = 'full' | 'tiny';

/** Folders and files of one recipe run. */
export interface RecipePaths {
  work: string;
  data: string;
  corpus: string;
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
  vocabSize: number;
  lm: (p: RecipePaths) => Record<string, unknown>;
  /** `search-r3 mine` options after --config/--out. */
  mineArgs: string[];
  mine: (p: RecipePaths) => Record<string, unknown>;
  stage1: (p: RecipePaths) => Record<string, unknown>;
  stage2: (p: RecipePaths) => Record<string, unknown>;
  /** `search-r3 recipe evaluate` options after --stage1/--stage2/--out/--data. */
  evaluateArgs: string[];
  /** Longest sequence the model was trained on: the shipped config's context. */
  context: number;
}

const scifact = (p: RecipePaths): string => path.join(p.data, 'scifact');

/** The corpus's train shards by name (the folder itself would also read valid.jsonl). */
const lmData = (p: RecipePaths): Record<string, unknown> => ({
  train: readdirSync(p.corpus)
    .filter((f) => /^train-\d+\.jsonl$/.test(f))
    .sort()
    .map((f) => path.join(p.corpus, f)),
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
    mine: (p) => ({
      model: path.join(p.lm, 'final'),
      output: p.stage1,
      data: [{ type: 'beir', path: scifact(p), split: 'train' }],
    }),
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
      data: { beir: scifact(p), split: 'train', maxQueries: 0, maxDocuments: 0 },
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
    mine: (p) => ({
      model: path.join(p.lm, 'final'),
      output: p.stage1,
      data: [{ type: 'beir', path: scifact(p), split: 'train' }],
    }),
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
      data: { beir: scifact(p), split: 'train', maxQueries: 6, maxDocuments: 60 },
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
  },
};
