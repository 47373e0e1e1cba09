/**
 * Causal language-model pretraining of a Qwen2 model from scratch: packed sequences of the token
 * stream, next-token cross-entropy, AdamW with warm-up + cosine, gradient clipping and accumulation.
 *
 * The run folder, resume, checkpoints, metrics.jsonl and the loop are every trainer's (training-run.ts);
 * what is pretraining's own is here: the packed token streams, the model drawn from random weights, the
 * next-token loss and the validation loss. In a checkpoint's state `batchIndex` is the next sequence of
 * the epoch's order, a seeded shuffle, so a resumed run continues exactly as one never interrupted.
 * A step takes the next batchSize × accumulation sequences of one epoch, and its loss is their mean,
 * whatever forward passes they are split into: a run resumed with a smaller batchSize and a larger
 * accumulation at the same product (for less memory) trains the steps the run would have trained.
 * metrics.jsonl gets one record per step and per validation.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../tensor/index.js';
import { loadModelFolder, saveModelFolder } from '../../model/model-folder.js';
import { parseQwen2Config, qwen2Parameters, type Qwen2Config } from '../../model/qwen2-config.js';
import { availableMemoryBytes, formatBytes } from '../../model/memory.js';
import { Qwen2Model } from '../../model/qwen2-model.js';
import { Tokenizer } from '../../model/tokenizer.js';
import { listInputFiles } from '../../model/bpe-trainer.js';
import type { SafetensorsDtype } from '../../model/safetensors.js';
import { writeDirAtomically } from '../../io/atomic-file.js';
import type { DataRead } from '../data-stamps.js';
import { formatDuration } from '../progress.js';
import { RunFolderError } from '../run-folder-error.js';
import { ConfigError } from '../config-merge.js';
import { isBeirQueriesFile } from '../../eval/beir.js';
import { type RunOptions, RunFolder, checkRunFolderApart, type StepResult, adamWOptions } from '../training-run.js';
import { DEFAULT_LM_CONFIG, type LmConfig } from './config.js';
import { type CachedTokenStream, PackedSequences, cachedTokenStream, checkSplitsApart, sequenceOrder } from './data.js';

export interface LmTrainOptions extends RunOptions {
  /** Stop (after writing a checkpoint) once this many steps are done; the run can be resumed. */
  stopAtStep?: number;
  onStep?: (step: number, loss: number) => void;
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
  return parseQwen2Config(
    {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      vocab_size: tokenizer.vocabSize,
      hidden_size: m.hiddenSize,
      intermediate_size: m.intermediateSize,
      num_hidden_layers: m.numHiddenLayers,
      num_attention_heads: m.numAttentionHeads,
      num_key_value_heads: m.numKeyValueHeads,
      hidden_act: 'silu',
      max_position_embeddings: m.maxPositionEmbeddings,
      rope_theta: m.ropeTheta,
      rms_norm_eps: m.rmsNormEps,
      tie_word_embeddings: m.tieWordEmbeddings,
      bos_token_id: sep,
      eos_token_id: tokenizer.eosTokenId ?? sep,
    },
    'config.json',
  );
}

/** Bytes a float32 parameter takes in training: the weight, its gradient and AdamW's two moments. */
const TRAINING_BYTES_PER_PARAMETER = 16;

/**
 * Refuses a model this machine cannot train, before its weights are made: a width or depth mistyped by a few
 * zeros would otherwise fail in an allocation (a stack trace) or fill memory until the system kills the run. The
 * bound is a floor (activations come on top), so a model it lets through may still be too large for its batch.
 */
export function checkTrainingFits(shape: Qwen2Config, available = availableMemoryBytes()): void {
  const parameters = qwen2Parameters(shape, shape.vocabSize, shape.tieWordEmbeddings);
  // the rotary tables, cos and sin for half the head at every position, in float32
  const rope = shape.maxPositionEmbeddings * shape.headDim * 4;
  const need = parameters * TRAINING_BYTES_PER_PARAMETER + rope;
  if (need <= available) return;
  const ropeNote = rope > need / 2 ? `, and ${formatBytes(rope)} of rotary tables for its positions` : '';
  throw new ConfigError(
    `"model" has ${parameters.toLocaleString('en-US')} parameters (vocabulary ${shape.vocabSize})${ropeNote}: ` +
      `training it needs at least ${formatBytes(need)} (weights, gradients and AdamW's two moments, 16 bytes a ` +
      `parameter), more than the ${formatBytes(available)} available on this machine; shrink model.hiddenSize, ` +
      'model.intermediateSize, model.numHiddenLayers or model.maxPositionEmbeddings',
  );
}

/** The model folder named by "init", in float32 and trainable, refused unless it has the config's shape. */
async function initialModel(dir: string, want: Qwen2Config): Promise<Qwen2Model> {
  const { model } = await loadModelFolder(dir, { trainable: true });
  const keys = [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numHiddenLayers',
    'numAttentionHeads',
    'numKeyValueHeads',
    'tieWordEmbeddings',
    'ropeTheta',
    'rmsNormEps',
  ] as const;
  const differ = keys.filter((k) => model.config[k] !== want[k]);
  if (differ.length > 0) {
    const what = differ.map((k) => `${k} ${model.config[k]} (config: ${want[k]})`).join(', ');
    throw new RunFolderError(`"init" ${dir} is not the model this config trains: ${what}`);
  }
  return model;
}

/** Mean next-token loss (token-weighted) over the first `max` sequences (0 = all), without gradients. */
export function validationLoss(
  model: Qwen2Model,
  seqs: PackedSequences,
  batchSize: number,
  max: number,
): { loss: number; tokens: number } {
  const n = max > 0 ? Math.min(max, seqs.count) : seqs.count;
  let sum = 0,
    tokens = 0;
  T.noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
      const { ids, targets } = seqs.batch(idx);
      const h = model.forward(ids, idx.length, seqs.seqLength);
      const l = model.lmLoss(h, targets, { reduction: 'sum' });
      sum += l.item();
      tokens += targets.length;
    }
  });
  return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
}

export async function trainLm(cfg: LmConfig, opts: LmTrainOptions = {}): Promise<LmTrainSummary> {
  const t0 = Date.now();
  await checkSplitsApart(cfg.data.train, cfg.data.valid);
  // a text folder is read whole, so a run folder in it would read its own metrics.jsonl as text, and refuse to
  // resume for the data it wrote there
  const texts = (['train', 'valid'] as const).flatMap((split) =>
    cfg.data[split].map((p, i) => [`data.${split}[${i}]`, p]),
  );
  checkRunFolderApart(cfg.output, { tokenizer: cfg.tokenizer, init: cfg.init, ...Object.fromEntries(texts) });
  const tokenizer = await Tokenizer.fromFolder(cfg.tokenizer);
  // before the run folder is made: a model too large for this machine leaves nothing behind
  checkTrainingFits(lmModelConfig(cfg, tokenizer));
  const folder = await RunFolder.open(cfg.output, opts, {
    run: {
      stage: 'lm',
      config: cfg,
      defaults: DEFAULT_LM_CONFIG,
      folders: ['tokenizer', 'init'],
      data: await lmDataReads(cfg),
      sameProduct: ['batchSize', 'accumulation'],
    },
  });
  try {
    return await trainInFolder(folder, cfg, tokenizer, opts, t0);
  } finally {
    folder.close();
  }
}

/**
 * The files pretraining reads: each file named in data.train and data.valid, and the text files of each folder.
 * A file given twice in a split (named twice, or named and in a folder named) is refused: it would be read twice
 * an epoch, weighing double without a word.
 */
async function lmDataReads(cfg: LmConfig): Promise<DataRead[]> {
  const reads: DataRead[] = [];
  for (const split of ['train', 'valid'] as const) {
    const givenBy = new Map<string, string>();
    for (const [i, p] of cfg.data[split].entries()) {
      const files = await listInputFiles([p]);
      // a folder of .md or .tsv files would add no text: no validation at all, or a "too little text" refusal
      if (files.length === 0)
        throw new ConfigError(
          `"data.${split}[${i}]" ${p} holds no .jsonl or .txt file (of a folder, only those are ` +
            'read): name its text files one by one, or give them one of those extensions',
        );
      const queries = split === 'train' ? files.find(isBeirQueriesFile) : undefined;
      if (queries !== undefined)
        throw new ConfigError(
          `"data.${split}[${i}]" ${p} gives ${queries}, a BEIR folder's queries (its test queries among them), which ` +
            'no model is trained on: name its corpus.jsonl, or a folder of search-r3 corpus build',
        );
      const key = `data.${split}[${i}]`;
      for (const f of files) {
        const real = realpathSync(f);
        const earlier = givenBy.get(real);
        if (earlier !== undefined)
          throw new ConfigError(
            `"${key}" ${p} gives ${f}, which "${earlier}" gives too, so it would be read twice an epoch: give each ` +
              'file once (a folder, or the files in it)',
          );
        givenBy.set(real, key);
      }
      reads.push({ key, path: p, files });
    }
  }
  return reads;
}

/** Pretraining in its run folder, opened and locked. */
async function trainInFolder(
  folder: RunFolder,
  cfg: LmConfig,
  tokenizer: Tokenizer,
  opts: LmTrainOptions,
  t0: number,
): Promise<LmTrainSummary> {
  // before the text is tokenized (minutes, for a large corpus): an "init" of another shape is refused at once
  const shape = lmModelConfig(cfg, tokenizer);
  const model = cfg.init
    ? await initialModel(cfg.init, shape)
    : Qwen2Model.random(shape, new T.Rng(cfg.seed), cfg.model.initStd);
  const { train, valid, stats } = await loadLmData(cfg, tokenizer, folder);
  const perStep = cfg.batchSize * cfg.accumulation;
  const totalSteps = cfg.steps > 0 ? cfg.steps : Math.max(1, Math.floor(train.count / perStep));

  // matrices first, then norms and biases: the order of the checkpoint's tensors and moments
  const all = model.parameters();
  const params = [...all.filter((p) => p.shape.length >= 2), ...all.filter((p) => p.shape.length < 2)];
  const o = cfg.optimizer;
  const optimizer = new DecayGroupsAdamW(params, adamWOptions(o));
  const run = await folder.begin({
    params,
    optimizer,
    settings: o,
    totalSteps,
    seed: cfg.seed,
    checkpoint: cfg.checkpoint,
  });
  const state = run.state;
  const parameters = T.countParameters(params);
  if (state.step === 0) {
    run.log({ type: 'data', step: 0, ...stats, totalSteps, tokensPerStep: perStep * cfg.seqLength, parameters });
  }

  let order = sequenceOrder(train.count, cfg.seed, state.epoch);
  // a step's sequences come from one epoch, its last train.count mod perStep left out, so where an epoch
  // ends depends on the step's size alone, not on how its forward passes split it
  const stepSequences = (): number[] => {
    if (state.batchIndex + perStep > order.length) {
      state.epoch++;
      state.batchIndex = 0;
      order = sequenceOrder(train.count, cfg.seed, state.epoch);
    }
    const idx = order.slice(state.batchIndex, state.batchIndex + perStep);
    state.batchIndex += perStep;
    return idx;
  };
  let lastValid: number | null = null;
  const validate = (): void => {
    if (!valid || valid.count === 0) return;
    const started = Date.now();
    const v = validationLoss(model, valid, cfg.batchSize, cfg.eval.maxSequences);
    lastValid = v.loss;
    const perplexity = Math.exp(v.loss);
    const seconds = (Date.now() - started) / 1000;
    run.log({ type: 'valid', step: state.step, loss: v.loss, perplexity, tokens: v.tokens, seconds });
    const measured = `perplexity ${perplexity.toFixed(2)}, ${v.tokens} tokens`;
    run.note(`step ${state.step}: valid loss ${v.loss.toFixed(4)} (${measured})`);
  };

  let tokensSinceStart = 0,
    lastLoss = NaN;
  const step = async (): Promise<StepResult> => {
    let loss = 0;
    const sequences = stepSequences();
    for (let a = 0; a < cfg.accumulation; a++) {
      // every sequence has seqLength targets, so the mean of the passes' means is the step's mean
      const { ids, targets } = train.batch(sequences.slice(a * cfg.batchSize, (a + 1) * cfg.batchSize));
      const h = model.forward(ids, cfg.batchSize, cfg.seqLength, { rng: run.rng });
      const l = model.lmLoss(h, targets);
      const v = run.checkLoss(l.item());
      l.backward(new Float32Array([1 / cfg.accumulation]));
      loss += v / cfg.accumulation;
      // a pass's graph is garbage now: on a GPU its buffers must come back before the next pass builds its own
      await T.releaseUnusedMemory();
    }
    const { gradNorm, lr } = run.update();
    const tokens = perStep * cfg.seqLength;
    tokensSinceStart += tokens;
    const tokensPerSec = run.rate(tokensSinceStart);
    lastLoss = loss;
    const progress = { loss, lr, tokensPerSec, extra: `epoch ${state.epoch}` };
    return { record: { loss, lr, gradNorm, tokens, tokensPerSec }, progress };
  };
  await run.loop({
    step,
    stopAt: opts.stopAtStep,
    onStep: (s) => opts.onStep?.(s, lastLoss),
    evaluate: valid ? { every: cfg.eval.every, run: validate } : undefined,
  });
  // also a checkpoint past a `steps` lowered since: its model is the run's last
  if (run.finished) {
    const dtype = cfg.saveDtype as SafetensorsDtype;
    const final = path.join(cfg.output, 'final');
    await writeDirAtomically(final, (tmp) => saveModelFolder(tmp, { model, tokenizer }, { dtype }));
  }
  const seconds = (Date.now() - t0) / 1000;
  folder.note(`steps ${run.startStep}→${state.step} of ${totalSteps} in ${formatDuration(seconds)}`);
  return {
    startStep: run.startStep,
    steps: state.step,
    totalSteps,
    finalLoss: lastLoss,
    validLoss: lastValid,
    trainTokens: stats.trainTokens,
    validTokens: stats.validTokens,
    parameters,
    tokensPerSec: run.rate(tokensSinceStart),
    seconds,
    output: cfg.output,
  };
}

/** The training and validation sequences (token streams cached in the run folder) and their counts. */
async function loadLmData(
  cfg: LmConfig,
  tokenizer: Tokenizer,
  folder: RunFolder,
): Promise<{
  train: PackedSequences;
  valid: PackedSequences | null;
  stats: LmDataStats;
}> {
  const separator = tokenizer.tokenToId(cfg.data.separator);
  if (separator === undefined) {
    throw new RunFolderError(`data.separator ${JSON.stringify(cfg.data.separator)} is not a token of ${cfg.tokenizer}`);
  }
  const tokDir = path.join(cfg.output, 'tokens');
  const tokenStream = async (split: 'train' | 'valid', inputs: string[]): Promise<CachedTokenStream> => {
    const stream = await cachedTokenStream(split, inputs, tokenizer, separator, tokDir);
    if (stream.damage) folder.warn(`warning: ${stream.damage}; the ${split} text was tokenized again`);
    const on = `${stream.threads} thread${stream.threads === 1 ? '' : 's'}`;
    const cached = stream.cached ? ' (cached)' : ` (tokenized in ${stream.seconds.toFixed(1)} s on ${on})`;
    // a file left out of the text is said, as tokenizer train and index say it: the model would never see it
    for (const line of stream.skipped) folder.note(`${split}: ${line}`);
    folder.note(`${split}: ${stream.documents} documents, ${stream.tokens.length} tokens${cached}`);
    return stream;
  };
  const trainStream = await tokenStream('train', cfg.data.train);
  const validStream = cfg.data.valid.length > 0 ? await tokenStream('valid', cfg.data.valid) : null;
  const train = new PackedSequences(trainStream.tokens, cfg.seqLength);
  const valid = validStream ? new PackedSequences(validStream.tokens, cfg.seqLength) : null;
  const perStep = cfg.batchSize * cfg.accumulation;
  if (train.count < perStep) {
    const made = `the training text makes ${train.count} sequences of ${cfg.seqLength} tokens`;
    const step = cfg.accumulation > 1 ? ` (batchSize ${cfg.batchSize} × accumulation ${cfg.accumulation})` : '';
    throw new RunFolderError(
      `${made}, fewer than one step's ${perStep}${step}: give it more text, or lower seqLength, batchSize or ` +
        'accumulation',
    );
  }
  const stats: LmDataStats = {
    trainDocuments: trainStream.documents,
    trainTokens: trainStream.tokens.length,
    trainSequences: train.count,
    validDocuments: validStream?.documents ?? 0,
    validTokens: validStream?.tokens.length ?? 0,
    validSequences: valid?.count ?? 0,
  };
  return { train, valid, stats };
}

interface LmDataStats {
  trainDocuments: number;
  trainTokens: number;
  trainSequences: number;
  validDocuments: number;
  validTokens: number;
  validSequences: number;
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
    if (params.slice(this.split).some((p) => p.shape.length >= 2)) {
      throw new Error('DecayGroupsAdamW: pass the matrices first, then the vectors');
    }
    this.decay = new T.AdamW(params.slice(0, this.split), opts);
    this.plain = new T.AdamW(params.slice(this.split), { ...opts, weightDecay: 0 });
  }

  step(lr: number): void {
    this.decay.step(lr);
    this.plain.step(lr);
  }
  zeroGrad(): void {
    this.decay.zeroGrad();
    this.plain.zeroGrad();
  }

  state(): T.OptimizerState {
    const a = this.decay.state(),
      b = this.plain.state();
    const paramSteps = [...(a.paramSteps ?? []), ...(b.paramSteps ?? [])];
    return { kind: 'adamw', step: a.step, paramSteps, buffers: a.buffers.map((m, k) => [...m, ...b.buffers[k]!]) };
  }

  loadState(s: T.OptimizerState): void {
    const part = (from: number, to: number): T.OptimizerState => ({
      kind: s.kind,
      step: s.step,
      ...(s.paramSteps ? { paramSteps: s.paramSteps.slice(from, to) } : {}),
      buffers: s.buffers.map((m) => m.slice(from, to)),
    });
    const n = s.buffers[0]?.length ?? 0;
    this.decay.loadState(part(0, this.split));
    this.plain.loadState(part(this.split, n));
  }
}
