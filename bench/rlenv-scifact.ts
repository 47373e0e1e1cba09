/**
 * Sets up the SciFact audit of the RL environment (docs/rlenv.md): a small random Qwen2 model folder
 * (no pretrained weights exist on these machines; a random model is the policy the audit trains for a
 * few real GRPO steps) and a train-rl config on SciFact train queries with the full 5,183-document corpus.
 *
 * usage: node dist/bench/rlenv-scifact.js <work-dir> [reward kind: dcg|ndcg|rr] [k (rr: 0 = whole corpus)]
 * then:  node dist/src/cli/main.js rlenv audit --config <work-dir>/rl-<kind>.json --steps 8
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../src/tensor/index.js';
import { saveModelFolder } from '../src/model/model-folder.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { makeTinyTokenizer } from '../test/helpers/tiny-tokenizer.js';
import type { Qwen2Config } from '../src/model/qwen2-config.js';
import { repoRoot } from '../test/helpers/repo.js';

const work = path.resolve(process.argv[2] ?? 'rlenv-work');
const kind = process.argv[3] ?? 'dcg';
const k = Number(process.argv[4] ?? 10);
const modelConfig: Qwen2Config = {
  architectures: ['Qwen2ForCausalLM'],
  modelType: 'qwen2',
  vocabSize: 4096,
  hiddenSize: 128,
  intermediateSize: 384,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 32,
  hiddenAct: 'silu',
  maxPositionEmbeddings: 512,
  ropeTheta: 10000,
  rmsNormEps: 1e-6,
  tieWordEmbeddings: true,
  bosTokenId: null,
  eosTokenId: null,
  torchDtype: 'float32',
  extra: {},
};

async function main(): Promise<void> {
  mkdirSync(work, { recursive: true });
  const modelDir = path.join(work, 'model');
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: modelConfig.vocabSize });
    const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    await saveModelFolder(modelDir, {
      model: Qwen2Model.random({ ...modelConfig, vocabSize: tokenizer.vocabSize }, new T.Rng(1), 0.02),
      tokenizer,
    });
  }
  const cfg = {
    model: 'model',
    output: `run-${kind}${k}`,
    seed: 0,
    steps: 8,
    maxLength: 96,
    data: { beir: path.resolve(repoRoot, '../shared/data/scifact'), split: 'train' },
    rollout: { queries: 4, group: 4, temperature: 1, maxReasoningTokens: 16 },
    reward: { kind, k, formatPenalty: 0.5 },
    loss: { clipEps: 0.2, beta: 0.04, innerEpochs: 1, infonce: 1, temperature: 0.05 },
    optimizer: { lr: 1e-5 }, // docs/rlenv.md rows 1–2 used 1e-4
    environment: { mode: 'local', budget: 200, candidates: 4, neighbours: 2, rolling: 40, returnCandidates: 16 },
  };
  const file = path.join(work, `rl-${kind}${k}.json`);
  writeFileSync(file, JSON.stringify(cfg, null, 1));
  console.log(`node dist/src/cli/main.js rlenv audit --config ${file} --steps 8`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
