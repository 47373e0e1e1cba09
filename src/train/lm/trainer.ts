/**
 * Causal language-model pretraining of a Qwen2 model from scratch: packed sequences of the token
 * stream, next-token cross-entropy, AdamW with warm-up + cosine, gradient clipping and accumulation.
 *
 * Reuses stage 1's run-folder machinery: checkpoints (checkpoint.ts: weights, AdamW moments, state.json
 * with step, epoch and position — `batchIndex` is the next sequence of the epoch's order — and the
 * generator state), atomic folders, and the progress line. The data order is a seeded shuffle per
 * epoch, so a resumed run continues exactly as one never interrupted. metrics.jsonl gets one record per
 * step and per validation.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as T from '../../tensor/index.js';
import { saveModelFolder } from '../../model/model-folder.js';
import { parseQwen2Config, type Qwen2Config } from '../../model/qwen2-config.js';
import { Qwen2Model } from '../../model/qwen2-model.js';
import { Tokenizer } from '../../model/tokenizer.js';
import type { SafetensorsDtype } from '../../model/safetensors.js';
import {
  type TrainerState, applyCheckpoint, listCheckpoints, removeStaleTemporaries, saveCheckpoint, skippedCheckpointNotes,
  startingCheckpoint,
} from '../checkpoint.js';
import { writeDirAtomically } from '../../model/atomic-file.js';
import type { LmConfig } from './config.js';
import { type CachedTokenStream, PackedSequences, cachedTokenStream, epochOrder } from './data.js';
import { MetricsLog } from '../metrics-log.js';
import { ProgressBar, formatDuration } from '../progress.js';
import type { MetricRecord } from '../report.js';
import { RunFolderError } from '../run-folder-error.js';
import { TrainingDiverged } from '../sft/trainer.js';

export interface LmTrainOptions {
  resume?: boolean;
  progress?: boolean;
  /** Stop (after writing a checkpoint) once this many steps are done; the run can be resumed. */
  stopAtStep?: number;
  onStep?: (step: number, loss: number) => void;
  /** Damage found in the run folder and worked around; shown even without progress (default: stderr). */
  warn?: (line: string) => void;
}

export interface LmTrainSummary {
  startStep: number;
  steps: number;
  totalSteps: number;
  finalLoss: number;
  validLoss: number | null;
  trainTokens: number;
  validTokens: number;
  parameters: number;
  tokensPerSec: number;
  seconds: number;
  output: string;
}

/** The Qwen2 config of the model to pretrain (vocabulary = the tokenizer's ids). */
export function lmModelConfig(cfg: LmConfig, tokenizer: Tokenizer): Qwen2Config {
  const m = cfg.model;
  const sep = tokenizer.tokenToId(cfg.data.separator) ?? null;
  return parseQwen2Config({
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: tokenizer.vocabSize,
    hidden_size: m.hiddenSize, intermediate_size: m.intermediateSize, num_hidden_layers: m.numHiddenLayers,
    num_attention_heads: m.numAttentionHeads, num_key_value_heads: m.numKeyValueHeads, hidden_act: 'silu',
    max_position_embeddings: m.maxPositionEmbeddings, rope_theta: m.ropeTheta, rms_norm_eps: m.rmsNormEps,
    tie_word_embeddings: m.tieWordEmbeddings, bos_token_id: sep, eos_token_id: tokenizer.eosTokenId ?? sep,
  }, 'config.json');
}

/** Mean next-token loss (token-weighted) over the first `max` sequences (0 = all), without gradients. */
export function validationLoss(model: Qwen2Model, seqs: PackedSequences, batchSize: number, max: number): { loss: number; tokens: number } {
  const n = max > 0 ? Math.min(max, seqs.count) : seqs.count;
  let sum = 0, tokens = 0;
  T.noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
      const { ids, targets } = seqs.batch(idx);
      const h = model.forward(ids, idx.length, seqs.seqLength);
      const l = T.crossEntropy(model.logits(h), targets, { reduction: 'sum' });
      sum += l.data[0]!; tokens += targets.length;
    }
  });
  return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
}

export async function trainLm(cfg: LmConfig, opts: LmTrainOptions = {}): Promise<LmTrainSummary> {
  const t0 = Date.now();
  const ckptRoot = path.join(cfg.output, 'checkpoints');
  // read and checked before anything in the run folder is written
  const start = await startingCheckpoint(cfg.output, opts.resume ?? false);
  await fsp.mkdir(cfg.output, { recursive: true });
  const progressOn = opts.progress ?? true;
  const note = (msg: string): void => { if (progressOn) process.stderr.write(`${msg}\n`); };
  const warn = opts.warn ?? ((line: string): void => { process.stderr.write(`${line}\n`); });

  const tokenizer = await Tokenizer.fromFolder(cfg.tokenizer);
  const separator = tokenizer.tokenToId(cfg.data.separator);
  if (separator === undefined) throw new RunFolderError(`data.separator ${JSON.stringify(cfg.data.separator)} is not a token of ${cfg.tokenizer}`);
  const tokDir = path.join(cfg.output, 'tokens');
  const tokenStream = async (split: 'train' | 'valid', inputs: string[]): Promise<CachedTokenStream> => {
    const stream = await cachedTokenStream(split, inputs, tokenizer, separator, tokDir);
    if (stream.damage) warn(`warning: ${stream.damage}; the ${split} text was tokenized again`);
    return stream;
  };
  const trainStream = await tokenStream('train', cfg.data.train);
  note(`train: ${trainStream.documents} documents, ${trainStream.tokens.length} tokens${trainStream.cached ? ' (cached)' : ''}`);
  const validStream = cfg.data.valid.length > 0 ? await tokenStream('valid', cfg.data.valid) : null;
  if (validStream) note(`valid: ${validStream.documents} documents, ${validStream.tokens.length} tokens${validStream.cached ? ' (cached)' : ''}`);
  const train = new PackedSequences(trainStream.tokens, cfg.seqLength);
  const valid = validStream ? new PackedSequences(validStream.tokens, cfg.seqLength) : null;
  const perStep = cfg.batchSize * cfg.accumulation;
  if (train.count < cfg.batchSize) throw new RunFolderError(`the training text makes ${train.count} sequences of ${cfg.seqLength} tokens, fewer than one batch of ${cfg.batchSize}`);
  const totalSteps = cfg.steps > 0 ? cfg.steps : Math.max(1, Math.floor(train.count / perStep));

  const config = lmModelConfig(cfg, tokenizer);
  const model = Qwen2Model.random(config, new T.Rng(cfg.seed), cfg.model.initStd);
  // matrices first, then norms and biases: the order of the checkpoint's tensors and moments
  const all = model.parameters();
  const params = [...all.filter((p) => p.shape.length >= 2), ...all.filter((p) => p.shape.length < 2)];
  const o = cfg.optimizer;
  const opt = new DecayGroupsAdamW(params, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
  const schedule = T.warmupCosine(o.lr, o.warmupSteps, totalSteps, o.minLr);
  let state: TrainerState = { step: 0, epoch: 0, batchIndex: 0, rng: new T.Rng(cfg.seed + 1).state(), bestScore: null, bestStep: null };
  if (start) {
    const ck = applyCheckpoint(start.contents, params);
    opt.loadState(ck.optimizer);
    state = ck.state;
    for (const line of skippedCheckpointNotes(start)) warn(line);
    note(`resuming from ${start.contents.dir} (step ${state.step} of ${totalSteps})`);
  }
  await removeStaleTemporaries(ckptRoot);
  const metrics = await MetricsLog.open(path.join(cfg.output, 'metrics.jsonl'), start ? state.step : null);
  if (metrics.note) warn(metrics.note);
  const log = (r: MetricRecord): void => metrics.log.append(r);
  const parameters = T.countParameters(params);
  if (state.step === 0) {
    log({ type: 'data', step: 0, trainDocuments: trainStream.documents, trainTokens: trainStream.tokens.length, trainSequences: train.count,
      validDocuments: validStream?.documents ?? 0, validTokens: validStream?.tokens.length ?? 0, validSequences: valid?.count ?? 0,
      totalSteps, tokensPerStep: perStep * cfg.seqLength, parameters });
  }

  const rng = new T.Rng(state.rng);
  let order = epochOrder(train.count, cfg.seed, state.epoch);
  const nextBatch = (): number[] => {
    if (state.batchIndex + cfg.batchSize > order.length) {
      state.epoch++; state.batchIndex = 0;
      order = epochOrder(train.count, cfg.seed, state.epoch);
    }
    const idx = Array.from(order.subarray(state.batchIndex, state.batchIndex + cfg.batchSize));
    state.batchIndex += cfg.batchSize;
    return idx;
  };
  let lastValid: number | null = null;
  const validate = (): void => {
    if (!valid || valid.count === 0) return;
    const started = Date.now();
    const v = validationLoss(model, valid, cfg.batchSize, cfg.eval.maxSequences);
    lastValid = v.loss;
    log({ type: 'valid', step: state.step, loss: v.loss, perplexity: Math.exp(v.loss), tokens: v.tokens, seconds: (Date.now() - started) / 1000 });
    bar.note(`step ${state.step}: valid loss ${v.loss.toFixed(4)} (perplexity ${Math.exp(v.loss).toFixed(2)}, ${v.tokens} tokens)`);
  };
  const checkpoint = async (): Promise<void> => {
    state.rng = rng.state();
    await saveCheckpoint(ckptRoot, params, opt.state(), state, cfg.checkpoint.keep);
  };

  const bar = new ProgressBar(totalSteps, state.step, process.stderr, 5000, progressOn);
  if (state.step === 0) validate();
  const startStep = state.step;
  const runStart = Date.now();
  let tokensSinceStart = 0, lastLoss = NaN;
  const stopAt = Math.min(totalSteps, opts.stopAtStep ?? totalSteps);
  while (state.step < stopAt) {
    const stepStart = Date.now();
    let loss = 0;
    for (let a = 0; a < cfg.accumulation; a++) {
      const { ids, targets } = train.batch(nextBatch());
      const h = model.forward(ids, cfg.batchSize, cfg.seqLength, { rng });
      const l = T.crossEntropy(model.logits(h), targets);
      const v = l.data[0]!;
      if (!Number.isFinite(v)) throw diverged(state.step + 1, `the loss is ${v}`, ckptRoot);
      l.backward(new Float32Array([1 / cfg.accumulation]));
      loss += v / cfg.accumulation;
    }
    let gradNorm: number;
    try {
      gradNorm = T.clipGradNorm(params, o.maxGradNorm > 0 ? o.maxGradNorm : Infinity);
    } catch (e) {
      throw diverged(state.step + 1, (e as Error).message, ckptRoot);
    }
    const lr = schedule(state.step);
    opt.step(lr);
    opt.zeroGrad();
    state.step++;
    const tokens = perStep * cfg.seqLength;
    tokensSinceStart += tokens;
    const tokensPerSec = tokensSinceStart / Math.max((Date.now() - runStart) / 1000, 1e-3);
    lastLoss = loss;
    log({ type: 'train', step: state.step, epoch: state.epoch, loss, lr, gradNorm, tokens, tokensPerSec, stepSeconds: (Date.now() - stepStart) / 1000 });
    bar.update(state.step, { loss, lr, tokensPerSec, extra: `epoch ${state.epoch}` });
    opts.onStep?.(state.step, loss);
    if (state.step % cfg.eval.every === 0 || state.step === totalSteps) validate();
    if (state.step % cfg.checkpoint.every === 0 || state.step === stopAt) await checkpoint();
  }
  bar.done();
  if (state.step === totalSteps) {
    await writeDirAtomically(path.join(cfg.output, 'final'), (tmp) => saveModelFolder(tmp, { model, tokenizer }, { dtype: cfg.saveDtype as SafetensorsDtype }));
  }
  const seconds = (Date.now() - t0) / 1000;
  note(`steps ${startStep}→${state.step} of ${totalSteps} in ${formatDuration(seconds)}`);
  return {
    startStep, steps: state.step, totalSteps, finalLoss: lastLoss, validLoss: lastValid,
    trainTokens: trainStream.tokens.length, validTokens: validStream?.tokens.length ?? 0, parameters,
    tokensPerSec: tokensSinceStart / Math.max((Date.now() - runStart) / 1000, 1e-3), seconds, output: cfg.output,
  };
}

function diverged(step: number, why: string, root: string): TrainingDiverged {
  const all = listCheckpoints(root);
  const kept = all.length > 0 ? `the last good checkpoint is ${all[all.length - 1]!.dir}` : 'no checkpoint had been written yet';
  return new TrainingDiverged(`training stopped at step ${step}: ${why}; no update was applied and ${kept} (resume from it with a lower optimizer.lr)`);
}

/**
 * AdamW with weight decay on matrices only (embeddings and projections), none on RMSNorm weights and
 * biases, as GPT-style pretraining does: decay would pull the norms' gains towards 0. Two AdamW
 * instances behind the Optimizer interface, whose state is one AdamW state over `params` (matrices
 * first, as the caller orders them), so stage 1's checkpoint code saves and restores it unchanged.
 */
export class DecayGroupsAdamW implements T.Optimizer {
  private readonly decay: T.AdamW;
  private readonly plain: T.AdamW;
  private readonly split: number;

  constructor(params: T.Tensor[], opts: T.AdamWOptions) {
    this.split = params.findIndex((p) => p.shape.length < 2);
    if (this.split < 0) this.split = params.length;
    if (params.slice(this.split).some((p) => p.shape.length >= 2)) throw new Error('DecayGroupsAdamW: pass the matrices first, then the vectors');
    this.decay = new T.AdamW(params.slice(0, this.split), opts);
    this.plain = new T.AdamW(params.slice(this.split), { ...opts, weightDecay: 0 });
  }

  step(lr: number): void { this.decay.step(lr); this.plain.step(lr); }
  zeroGrad(): void { this.decay.zeroGrad(); this.plain.zeroGrad(); }

  state(): T.OptimizerState {
    const a = this.decay.state(), b = this.plain.state();
    return { kind: 'adamw', step: a.step, paramSteps: [...(a.paramSteps ?? []), ...(b.paramSteps ?? [])], buffers: a.buffers.map((m, k) => [...m, ...b.buffers[k]!]) };
  }

  loadState(s: T.OptimizerState): void {
    const part = (from: number, to: number): T.OptimizerState => ({
      kind: s.kind, step: s.step, ...(s.paramSteps ? { paramSteps: s.paramSteps.slice(from, to) } : {}), buffers: s.buffers.map((m) => m.slice(from, to)),
    });
    const n = s.buffers[0]?.length ?? 0;
    this.decay.loadState(part(0, this.split));
    this.plain.loadState(part(this.split, n));
  }
}
