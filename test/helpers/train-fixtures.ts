import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { makeTinyTokenizer } from './tiny-tokenizer.js';
import type { TrainExample } from '../../src/train/sft/data.js';
import { type FineTuned, loadForFineTuning, saveFineTuned } from '../../src/train/fine-tune.js';
import { tinyQwen2Config } from './tiny-qwen2.js';

import { tempDir } from './temp-dir.js';

export { tempDir };

/** A tiny random Qwen2 model folder; withEmbedToken false leaves <|embed_token|> out of the tokenizer. */
export async function tinyModelFolder(dir: string, seed = 1, withEmbedToken = true): Promise<string> {
  const specialTokens = withEmbedToken ? undefined : ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300, specialTokens });
  const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const config = tinyQwen2Config({ vocabSize: tokenizer.vocabSize, maxPositionEmbeddings: 256 });
  await saveModelFolder(dir, { model: Qwen2Model.random(config, new T.Rng(seed), 0.1), tokenizer });
  return dir;
}

/**
 * A LoRA adapter folder on `base` as training saves one (base recorded), with random B: a trained B is near
 * zero, and the adapter must change the model for a test to see it merged.
 */
export async function toyAdapterFolder(base: string, out: string, seed = 11): Promise<FineTuned> {
  const lora = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] };
  const ft = await loadForFineTuning(base, lora, seed, false);
  const rng = new T.Rng(seed);
  for (const ad of ft.model.adapters.values()) ad.b.write(T.randn(ad.b.shape, rng, 0.5).data);
  await saveFineTuned(out, ft);
  return ft;
}

const words = ['alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'theta', 'lambda', 'zeta'];

/** Distinct toy queries with one positive and two hard negatives each. */
export function toyExamples(n: number, negatives = 2): TrainExample[] {
  return Array.from({ length: n }, (_, i) => ({
    query: `what is ${words[i % 10]} ${i}?`,
    positives: [`${words[i % 10]} ${i} is a letter${' and more'.repeat(i % 4)}`],
    negatives: Array.from({ length: negatives }, (_, k) => `${words[(i + k + 1) % 10]} is not ${i}${'!'.repeat(k)}`),
  }));
}

export function writeJsonl(file: string, examples: readonly TrainExample[]): string {
  writeFileSync(
    file,
    examples.map((e) => JSON.stringify({ query: e.query, pos: e.positives, neg: e.negatives })).join('\n') + '\n',
  );
  return file;
}

export function writeConfig(file: string, cfg: unknown): string {
  writeFileSync(file, JSON.stringify(cfg, null, 1));
  return file;
}

/**
 * A toy stage-1 run in `root`: a tiny model folder, 12 toy examples and the config file (10 steps of 4
 * queries with a hard negative, LoRA rank 4), relative to `root`; `extra` overrides config keys.
 */
export async function toySftRun(root: string, extra: Record<string, unknown> = {}): Promise<string> {
  await tinyModelFolder(path.join(root, 'model'));
  writeJsonl(path.join(root, 'train.jsonl'), toyExamples(12));
  return writeConfig(path.join(root, 'cfg.json'), {
    model: 'model',
    output: 'run',
    seed: 3,
    data: [{ type: 'jsonl', path: 'train.jsonl' }],
    maxLength: 128,
    steps: 10,
    batch: { queries: 4, hardNegatives: 1, subBatch: 5 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    checkpoint: { every: 2, keep: 2 },
    lora: { rank: 4, alpha: 8, dropout: 0.1 },
    ...extra,
  });
}

/** A toy BEIR folder: 40 documents, 8 train queries, one of which is judged only against a missing document. */
export function toyBeir(dir: string): string {
  mkdirSync(path.join(dir, 'qrels'), { recursive: true });
  const docs = Array.from({ length: 40 }, (_, i) => ({
    _id: `d${i}`,
    title: words[i % 10],
    text: `${words[i % 10]} ${words[(i * 3) % 10]} number ${i}`,
  }));
  writeFileSync(path.join(dir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const queries = Array.from({ length: 8 }, (_, i) => ({ _id: `q${i}`, text: `which ${words[i]} ${i}?` }));
  writeFileSync(path.join(dir, 'queries.jsonl'), queries.map((q) => JSON.stringify(q)).join('\n') + '\n');
  const judged = queries.slice(0, 7).map((q, i) => `${q._id}\td${i * 5}\t1`);
  const qrels = ['query-id\tcorpus-id\tscore', ...judged, 'q7\tmissing-doc\t1', 'q2\td3\t1'];
  writeFileSync(path.join(dir, 'qrels', 'train.tsv'), qrels.join('\n') + '\n');
  return dir;
}

/**
 * A tiny RL setup in a new folder: a random model folder, the toy BEIR folder and a train rl config
 * (3 steps of 2 queries × 3 responses, 2 inner epochs, checkpoints every 2 steps) relative to it.
 */
export async function rlFixture(prefix: string): Promise<{ dir: string; raw: Record<string, unknown> }> {
  const dir = tempDir(prefix);
  await tinyModelFolder(path.join(dir, 'model'));
  toyBeir(path.join(dir, 'beir'));
  const raw = {
    model: 'model',
    output: 'run',
    seed: 3,
    steps: 3,
    maxLength: 160,
    data: { beir: 'beir', split: 'train' },
    rollout: { queries: 2, group: 3, temperature: 1, maxReasoningTokens: 5 },
    reward: { kind: 'dcg', k: 10, formatPenalty: 0.5 },
    loss: { clipEps: 0.2, beta: 0.04, innerEpochs: 2, infonce: 0.5, temperature: 0.05 },
    optimizer: { lr: 1e-3 },
    environment: { mode: 'local', budget: 6, candidates: 2, neighbours: 2, rolling: 3, returnCandidates: 5 },
    checkpoint: { every: 2, keep: 2 },
  };
  return { dir, raw };
}

const TIME_KEYS = new Set([
  'seconds',
  'encodeSeconds',
  'graphSeconds',
  'rolloutSeconds',
  'updateSeconds',
  'stepSeconds',
  'environmentSetupSeconds',
  'localSeconds',
  'exactSeconds',
  'tokensPerSec',
]);

/** A metrics.jsonl line without its wall times, which differ between otherwise identical runs. */
export const withoutTimes = (line: string): unknown => JSON.parse(line, (k, v) => (TIME_KEYS.has(k) ? undefined : v));

/** A run folder's train records (metrics.jsonl's "train" lines), without their wall times. */
export const trainRecords = (runDir: string): unknown[] =>
  readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.includes('"type":"train"'))
    .map(withoutTimes);
