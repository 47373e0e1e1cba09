/**
 * Stage 1 on real data: a small Qwen2 trained from scratch (no pretrained weights exist on these
 * machines) with `train sft` on SciFact train + Climate-FEVER pairs (BM25-mined hard negatives for
 * SciFact), dev nDCG@10 on an NFCorpus dev subset during training, and SciFact **test** nDCG@10 of the
 * untrained and the trained model (best dev checkpoint and final), beside the published BM25 peer.
 *
 * usage: node dist/bench/stage1-scifact.js <work-dir>
 * env: STAGE1_STEPS (300), STAGE1_MAXLEN (128), STAGE1_HIDDEN (256), STAGE1_LAYERS (4), STAGE1_LR (1e-3),
 *      STAGE1_KL (0.1), STAGE1_EVAL_EVERY (100); SEARCH_R3_THREADS for the kernel pool
 * Writes <work-dir>/results.json; the run folder is <work-dir>/run (report.html, metrics.jsonl).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../src/tensor/index.js';
import { loadModelFolder, saveModelFolder } from '../src/model/model-folder.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { makeTinyTokenizer } from '../test/helpers/tiny-tokenizer.js';
import type { Qwen2Config } from '../src/model/qwen2-config.js';
import { parseSftConfig } from '../src/train/sft/config.js';
import { candidatePool, loadTrainingData } from '../src/train/sft/data.js';
import { Embedder } from '../src/embed/embedder.js';
import { loadDevSet, scoreDevSet, type DevSet, type DevSetScore } from '../src/eval/dev-eval.js';
import { ModelRetriever } from '../src/eval/model-retriever.js';
import { bm25Ranker, jsonlLines, mineHardNegatives } from '../src/train/sft/mine.js';
import { writeLinesAtomicallySync } from '../src/io/atomic-file.js';
import { trainSft } from '../src/train/sft/trainer.js';
import { repoRoot } from '../test/helpers/repo.js';

const work = path.resolve(process.argv[2] ?? 'stage1-work');
const steps = Number(process.env.STAGE1_STEPS ?? 300);
const data = path.resolve(repoRoot, '../shared/data');
const maxLength = Number(process.env.STAGE1_MAXLEN ?? 128);
const log = (m: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);
};

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
const hidden = env('STAGE1_HIDDEN', 256),
  heads = 4;
const modelConfig: Qwen2Config = {
  architectures: ['Qwen2ForCausalLM'],
  modelType: 'qwen2',
  vocabSize: 6400,
  hiddenSize: hidden,
  intermediateSize: 3 * hidden,
  numHiddenLayers: env('STAGE1_LAYERS', 4),
  numAttentionHeads: heads,
  numKeyValueHeads: 2,
  headDim: hidden / heads,
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

/** SciFact-test nDCG@10 of a model, queries embedded without reasoning. */
function devScore(model: Qwen2Model, tokenizer: Tokenizer, set: DevSet, maxLength: number): Promise<DevSetScore> {
  return scoreDevSet(new ModelRetriever(new Embedder(model, tokenizer, { maxLength }), 'model'), set);
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const modelDir = path.join(work, 'model-init');
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: modelConfig.vocabSize });
    const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    await saveModelFolder(modelDir, {
      model: Qwen2Model.random({ ...modelConfig, vocabSize: tokenizer.vocabSize }, new T.Rng(1), 0.02),
      tokenizer,
    });
    log(`random model written to ${modelDir}`);
  }
  const scifactTest = await loadDevSet(path.join(data, 'scifact'), 'test');
  const untrainedFile = path.join(work, 'untrained.json');
  let before: { ndcg10: number; seconds: number };
  if (existsSync(untrainedFile)) before = JSON.parse(readFileSync(untrainedFile, 'utf8')) as typeof before;
  else {
    const init = await loadModelFolder(modelDir);
    before = await devScore(init.model, init.tokenizer, scifactTest, maxLength);
    writeFileSync(untrainedFile, JSON.stringify(before));
  }
  log(`untrained SciFact test nDCG@10 ${before.ndcg10.toFixed(4)} (${before.seconds.toFixed(0)} s)`);

  // BM25-mined hard negatives for SciFact train (ranks 10–100, false-negative filter 0.95)
  const mined = path.join(work, 'scifact-train-mined.jsonl');
  if (!existsSync(mined)) {
    const sources = [{ type: 'beir' as const, path: path.join(data, 'scifact'), split: 'train' }];
    const { examples } = await loadTrainingData(sources);
    const pool = await candidatePool(sources, examples);
    const r = mineHardNegatives(examples, pool, bm25Ranker(pool), {
      fromRank: 10,
      toRank: 100,
      negatives: 8,
      falseNegativeRatio: 0.95,
      seed: 0,
    });
    writeLinesAtomicallySync(mined, jsonlLines(r.mined));
    log(`mined ${r.stats.negatives} negatives (${r.stats.filteredAsFalseNegative} dropped as likely false negatives)`);
  }
  const cfgJson = {
    model: modelDir,
    output: path.join(work, 'run'),
    seed: 0,
    maxLength,
    steps,
    data: [
      { type: 'jsonl', path: mined },
      { type: 'climate-fever', path: path.join(data, 'climate-fever/climate-fever.jsonl') },
    ],
    batch: { queries: 16, hardNegatives: 1, subBatch: 0, accumulation: 1 },
    loss: { sft: 1, kl: env('STAGE1_KL', 0.1), infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2 },
    optimizer: {
      lr: env('STAGE1_LR', 1e-3),
      warmupSteps: 30,
      minLr: env('STAGE1_LR', 1e-3) / 10,
      weightDecay: 0.01,
      maxGradNorm: 1,
    },
    checkpoint: { every: 50, keep: 2 },
    eval: {
      beir: path.join(data, 'nfcorpus/beir-preprocessed/dev'),
      split: 'dev',
      every: env('STAGE1_EVAL_EVERY', 100),
      maxQueries: 50,
      maxDocuments: 300,
    },
  };
  writeFileSync(path.join(work, 'train-config.json'), JSON.stringify(cfgJson, null, 1));
  const cfg = parseSftConfig(cfgJson, work);
  const resume = existsSync(path.join(cfg.output, 'checkpoints'));
  const trained = await trainSft(cfg, { resume });
  log(
    `trained ${trained.steps} steps in ${trained.seconds.toFixed(0)} s; best dev nDCG@10 ${trained.bestScore} ` +
      `at step ${trained.bestStep}`,
  );

  const results: Record<string, unknown> = {
    steps: trained.steps,
    trainSeconds: trained.seconds,
    untrained: before.ndcg10,
    bestDev: trained.bestScore,
    bestStep: trained.bestStep,
  };
  for (const which of ['final', 'best']) {
    const dir = path.join(cfg.output, which);
    if (!existsSync(dir)) continue;
    const m = await loadModelFolder(dir);
    const r = await devScore(m.model, m.tokenizer, scifactTest, maxLength);
    results[which] = r.ndcg10;
    log(`${which} SciFact test nDCG@10 ${r.ndcg10.toFixed(4)} (${r.seconds.toFixed(0)} s)`);
  }
  results.wallSeconds = (Date.now() - t0) / 1000;
  results.peerBm25 = 0.665;
  writeFileSync(path.join(work, 'results.json'), JSON.stringify(results, null, 1));
  console.log(
    `SciFact test nDCG@10: untrained ${before.ndcg10.toFixed(4)}, trained (final) ` +
      `${(results.final as number)?.toFixed(4)}, best-dev ` +
      `${(results.best as number | undefined)?.toFixed(4)}; peer BM25 0.665; ratio final/BM25 ` +
      `${((results.final as number) / 0.665).toFixed(3)}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
