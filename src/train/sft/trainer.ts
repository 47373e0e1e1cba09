/**
 * The stage-1 training loop: contrastive SFT of a Qwen2 model under the Search-R3 embedding protocol.
 *
 * Per optimiser step: `accumulation` contrastive batches (each with all its in-batch and hard
 * negatives; GradCache when batch.subBatch > 0), gradient clipping, AdamW with warm-up + cosine.
 * Every step appends a record to metrics.jsonl; every checkpoint.every steps (and at the end) a
 * checkpoint is written atomically; eval.every steps the dev nDCG@10 is measured and the best model
 * kept in best/. A resumed run rebuilds the same batches from (seed, epoch) and restores weights,
 * optimiser moments and the dropout generator, so it continues exactly as if never interrupted.
 * A NaN/Inf loss or gradient stops training before the update: the last checkpoint stays the last
 * good state, and the error names the step and batch.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as T from '../../tensor/index.js';
import type { Tensor } from '../../tensor/index.js';
import { attachLora, loraParameters, saveLoraAdapter, type LoraConfig, type LoraTarget } from '../../model/lora.js';
import { addSpecialTokens, loadModelFolder, saveModelFolder } from '../../model/model-folder.js';
import { Qwen2Model } from '../../model/qwen2-model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { Embedder } from '../../embed/embedder.js';
import { DEFAULT_TEMPLATES, EMBED_TOKEN, type PromptTemplates } from '../../embed/prompts.js';
import { type BatchLoss, type EncodedBatch, type TrainModels, plainBackward } from './batch-loss.js';
import { type PlannedBatch, batchTexts, planEpoch } from './batches.js';
import { writeDirAtomically, writeTextFileAtomically } from '../../model/atomic-file.js';
import {
  type TrainerState, applyCheckpoint, listCheckpoints, removeStaleTemporaries, saveCheckpoint, skippedCheckpointNotes,
  startingCheckpoint,
} from '../checkpoint.js';
import type { SftConfig } from './config.js';
import { type DataStats, type TrainExample, loadTrainingData } from './data.js';
import { type DevSet, loadDevSet, scoreDevSet } from '../../eval/dev-eval.js';
import { ModelRetriever } from '../../eval/model-retriever.js';
import { gradCacheBackward } from './grad-cache.js';
import { ProgressBar, formatDuration } from '../progress.js';
import { MetricsLog } from '../metrics-log.js';
import { type MetricRecord, renderReport } from '../report.js';
import { RunFolderError } from '../run-folder-error.js';
import { SequenceEncoder } from './sequences.js';

/** Training stopped on a NaN/Inf; the message names the step, batch and the checkpoint kept. */
export class TrainingDiverged extends Error {
  constructor(message: string) { super(message); this.name = 'TrainingDiverged'; }
}

export { RunFolderError };

export interface TrainOptions {
  resume?: boolean;
  /** Progress bar and notes on stderr (default true). */
  progress?: boolean;
  /** Called after each checkpoint is in place (tests use it to kill a run at a known point). */
  onCheckpoint?: (step: number, dir: string) => void;
  /** Called after each optimiser step, once its metrics record is written. */
  onStep?: (step: number, loss: number) => void;
  /** Damage found in the run folder and worked around; shown even without progress (default: stderr). */
  warn?: (line: string) => void;
}

export interface TrainSummary {
  steps: number;
  startStep: number;
  finalLoss: number;
  bestScore: number | null;
  bestStep: number | null;
  seconds: number;
  data: DataStats;
  truncatedTexts: number;
  output: string;
}

interface Setup {
  model: Qwen2Model;
  tokenizer: Tokenizer;
  ref: Qwen2Model | null;
  trainable: Tensor[];
  lora: LoraConfig | null;
}

/** Loads the starting model, adds <|embed_token|> when missing, attaches LoRA or unfreezes every weight. */
async function setupModel(cfg: SftConfig): Promise<Setup> {
  const loaded = await loadModelFolder(cfg.model, { trainable: cfg.lora === null });
  let model = loaded.model;
  const tokenizer = loaded.tokenizer;
  if (tokenizer.tokenToId(EMBED_TOKEN) === undefined) model = addSpecialTokens({ model, tokenizer }, [EMBED_TOKEN]).model;
  const frozenCopy = (): Qwen2Model => new Qwen2Model(model.config, new Map([...model.params].map(([k, v]) => [k, new T.Tensor(Float32Array.from(v.data), v.shape, false, k)])));
  if (cfg.lora) {
    const lora: LoraConfig = { rank: cfg.lora.rank, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targets: cfg.lora.targets as LoraTarget[] };
    attachLora(model, lora, new T.Rng(cfg.seed));
    // the reference is the same base weights without adapters: a second view with none attached
    const ref = cfg.loss.kl > 0 ? new Qwen2Model(model.config, model.params) : null;
    return { model, tokenizer, ref, trainable: loraParameters(model), lora };
  }
  for (const p of model.parameters()) p.requiresGrad = true;
  return { model, tokenizer, ref: cfg.loss.kl > 0 ? frozenCopy() : null, trainable: model.parameters(), lora: null };
}

async function saveModelOutput(dir: string, s: Setup): Promise<void> {
  await writeDirAtomically(dir, async (tmp) => {
    if (s.lora) {
      await saveLoraAdapter(tmp, s.model, s.lora);
      await s.tokenizer.save(tmp);
    } else {
      await saveModelFolder(tmp, { model: s.model, tokenizer: s.tokenizer });
    }
  });
}

export async function trainSft(cfg: SftConfig, opts: TrainOptions = {}): Promise<TrainSummary> {
  const t0 = Date.now();
  const ckptRoot = path.join(cfg.output, 'checkpoints');
  // read and checked before anything in the run folder is written
  const start = await startingCheckpoint(cfg.output, opts.resume ?? false);
  await fsp.mkdir(cfg.output, { recursive: true });
  const progressOn = opts.progress ?? true;
  const note = (msg: string): void => { if (progressOn) process.stderr.write(`${msg}\n`); };
  const warn = opts.warn ?? ((line: string): void => { process.stderr.write(`${line}\n`); });

  const s = await setupModel(cfg);
  const templates: PromptTemplates = { ...DEFAULT_TEMPLATES, ...cfg.templates };
  const encoder = new SequenceEncoder(s.tokenizer, templates, Math.min(cfg.maxLength, s.model.config.maxPositionEmbeddings));
  const { examples, stats } = await loadTrainingData(cfg.data);
  if (examples.length === 0) throw new RunFolderError('no training examples: every query lacked a positive or was empty');
  note(`data: ${stats.examples} examples (${stats.withoutPositive} queries without a positive skipped, ${stats.emptyTexts} empty texts dropped)`);
  const batchesPerEpoch = planEpoch(examples, cfg.seed, 0, cfg.batch.queries, cfg.batch.hardNegatives).length;
  const totalSteps = cfg.steps > 0 ? cfg.steps : Math.max(1, Math.ceil((batchesPerEpoch * cfg.epochs) / cfg.batch.accumulation));

  const o = cfg.optimizer;
  const opt = new T.AdamW(s.trainable, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
  const schedule = T.warmupCosine(o.lr, o.warmupSteps, totalSteps, o.minLr);
  let state: TrainerState = { step: 0, epoch: 0, batchIndex: 0, rng: new T.Rng(cfg.seed + 1).state(), bestScore: null, bestStep: null };
  if (start) {
    const ck = applyCheckpoint(start.contents, s.trainable);
    opt.loadState(ck.optimizer);
    state = ck.state;
    for (const line of skippedCheckpointNotes(start)) warn(line);
    note(`resuming from ${start.contents.dir} (step ${state.step} of ${totalSteps})`);
  }
  await removeStaleTemporaries(ckptRoot);
  const metrics = await MetricsLog.open(path.join(cfg.output, 'metrics.jsonl'), start ? state.step : null);
  if (metrics.note) warn(metrics.note);
  const records = metrics.log.records;
  const log = (r: MetricRecord): void => metrics.log.append(r);
  if (state.step === 0) log({ type: 'data', step: 0, ...stats, batchesPerEpoch, totalSteps, trainableParameters: T.countParameters(s.trainable) });

  const dev: DevSet | null = cfg.eval ? await loadDevSet(cfg.eval.beir, cfg.eval.split, cfg.eval.maxQueries, cfg.eval.maxDocuments) : null;
  const models: TrainModels = { model: s.model, ref: s.ref };
  const rng = new T.Rng(state.rng);
  let plan: PlannedBatch[] = planEpoch(examples, cfg.seed, state.epoch, cfg.batch.queries, cfg.batch.hardNegatives);
  const nextBatch = (): { batch: PlannedBatch; epoch: number; index: number } => {
    if (state.batchIndex >= plan.length) {
      state.epoch++; state.batchIndex = 0;
      plan = planEpoch(examples, cfg.seed, state.epoch, cfg.batch.queries, cfg.batch.hardNegatives);
    }
    return { batch: plan[state.batchIndex], epoch: state.epoch, index: state.batchIndex++ };
  };
  const encode = (b: PlannedBatch): EncodedBatch => {
    const bt = batchTexts(examples, b);
    return { seqs: [...bt.queries.map((q) => encoder.encode(q, 'query')), ...bt.documents.map((d) => encoder.encode(d, 'document'))], numQueries: bt.queries.length, targets: bt.targets };
  };
  const checkpoint = async (): Promise<void> => {
    state.rng = rng.state();
    const dir = await saveCheckpoint(ckptRoot, s.trainable, opt.state(), state, cfg.checkpoint.keep);
    opts.onCheckpoint?.(state.step, dir);
  };
  const evaluate = async (): Promise<void> => {
    if (!dev || !cfg.eval) return;
    const embedder = new Embedder(s.model, s.tokenizer, { templates: cfg.templates, maxLength: encoder.maxLength });
    const r = await scoreDevSet(new ModelRetriever(embedder, 'dev'), dev);
    log({ type: 'eval', step: state.step, ndcg10: r.ndcg10, queries: r.queries, documents: r.documents, seconds: r.seconds });
    bar.note(`step ${state.step}: dev nDCG@10 ${r.ndcg10.toFixed(4)} (${r.queries} queries, ${r.documents} documents, ${r.seconds.toFixed(1)} s)`);
    if (state.bestScore === null || r.ndcg10 > state.bestScore) {
      state.bestScore = r.ndcg10; state.bestStep = state.step;
      await saveModelOutput(path.join(cfg.output, 'best'), s);
    }
  };

  let bar = new ProgressBar(totalSteps, state.step, process.stderr, 5000, progressOn);
  if (state.step === 0 && dev) await evaluate();
  // the ETA counts training steps only, not the evaluation before the first one
  bar = new ProgressBar(totalSteps, state.step, process.stderr, 5000, progressOn);
  const startStep = state.step;
  let lastLoss = NaN, truncatedTexts = 0;
  const runStart = Date.now();
  let tokensSinceStart = 0;
  while (state.step < totalSteps) {
    const stepStart = Date.now();
    const sum: BatchLoss = { loss: 0, sft: 0, kl: 0, infonce: 0, triplet: 0, tokens: 0, truncated: 0 };
    const where: string[] = [];
    for (let a = 0; a < cfg.batch.accumulation; a++) {
      const { batch, epoch, index } = nextBatch();
      where.push(`epoch ${epoch} batch ${index} (first query ${JSON.stringify(examples[batch.examples[0]].query.slice(0, 60))})`);
      let r: BatchLoss;
      try {
        const enc = encode(batch);
        r = cfg.batch.subBatch > 0
          ? gradCacheBackward(models, enc, cfg.loss, 1 / cfg.batch.accumulation, cfg.batch.subBatch, rng)
          : plainBackward(models, enc, cfg.loss, 1 / cfg.batch.accumulation, rng);
      } catch (e) {
        if (e instanceof T.TensorError && /NaN|Inf/.test(e.message)) throw diverged(state.step + 1, where[where.length - 1], e.message, existingAfter(ckptRoot));
        throw e;
      }
      if (!Number.isFinite(r.loss)) throw diverged(state.step + 1, where[where.length - 1], `the loss is ${r.loss}`, existingAfter(ckptRoot));
      for (const k of ['loss', 'sft', 'kl', 'infonce', 'triplet'] as const) sum[k] += r[k] / cfg.batch.accumulation;
      sum.tokens += r.tokens; sum.truncated += r.truncated;
    }
    let gradNorm: number;
    try {
      gradNorm = T.clipGradNorm(s.trainable, o.maxGradNorm > 0 ? o.maxGradNorm : Infinity);
    } catch (e) {
      throw diverged(state.step + 1, where.join('; '), (e as Error).message, existingAfter(ckptRoot));
    }
    const lr = schedule(state.step);
    opt.step(lr);
    opt.zeroGrad();
    state.step++;
    truncatedTexts += sum.truncated;
    tokensSinceStart += sum.tokens;
    const elapsed = (Date.now() - runStart) / 1000;
    const tokensPerSec = tokensSinceStart / Math.max(elapsed, 1e-3);
    lastLoss = sum.loss;
    log({ type: 'train', step: state.step, epoch: state.epoch, loss: sum.loss, sft: sum.sft, kl: sum.kl, infonce: sum.infonce, triplet: sum.triplet, lr, gradNorm, tokens: sum.tokens, truncated: sum.truncated, tokensPerSec, stepSeconds: (Date.now() - stepStart) / 1000 });
    bar.update(state.step, { loss: sum.loss, lr, tokensPerSec });
    opts.onStep?.(state.step, sum.loss);
    if (cfg.eval && state.step % cfg.eval.every === 0) await evaluate();
    if (state.step % cfg.checkpoint.every === 0 || state.step === totalSteps) await checkpoint();
  }
  bar.done();
  if (cfg.eval && state.step % cfg.eval.every !== 0 && state.step > startStep) { await evaluate(); await checkpoint(); }
  await saveModelOutput(path.join(cfg.output, 'final'), s);
  const seconds = (Date.now() - t0) / 1000;
  const reportFile = path.join(cfg.output, 'report.html');
  await writeTextFileAtomically(reportFile, renderReport(`search-r3 stage 1: ${path.basename(cfg.output)}`, records, [
    `model ${cfg.model}; ${stats.examples} training examples; ${totalSteps} steps of ${cfg.batch.queries} queries × (1 positive + ${cfg.batch.hardNegatives} hard negatives)` +
      `${cfg.batch.accumulation > 1 ? ` × ${cfg.batch.accumulation} accumulated` : ''}; ${cfg.lora ? `LoRA rank ${cfg.lora.rank}` : 'full fine-tuning'}.`,
    `losses: ${cfg.loss.sft}·SFT + ${cfg.loss.kl}·KL + ${cfg.loss.infonce}·InfoNCE(τ=${cfg.loss.temperature}) + ${cfg.loss.triplet}·Triplet(θ=${cfg.loss.margin}).`,
    state.bestScore !== null ? `best dev nDCG@10 ${state.bestScore.toFixed(4)} at step ${state.bestStep}.` : 'no dev evaluation.',
    `this session: ${formatDuration(seconds)} wall; ${truncatedTexts} training texts were cut to ${encoder.maxLength} tokens.`,
  ]));
  return { steps: state.step, startStep, finalLoss: lastLoss, bestScore: state.bestScore, bestStep: state.bestStep, seconds, data: stats, truncatedTexts, output: cfg.output };
}

function existingAfter(root: string): string {
  const all = listCheckpoints(root);
  return all.length > 0 ? `the last good checkpoint is ${all[all.length - 1].dir}` : 'no checkpoint had been written yet';
}

function diverged(step: number, where: string, why: string, kept: string): TrainingDiverged {
  return new TrainingDiverged(`training stopped at step ${step}, ${where}: ${why}; no update was applied and ${kept} (resume from it with a lower learning rate, e.g. --resume after editing optimizer.lr)`);
}

export type { TrainExample };
