/**
 * The causal-LM pretraining config (`search-r3 train lm`): a JSON file whose every key has a default
 * here; unknown keys and values of the wrong type are errors naming the key (config-merge.ts, as for
 * every trainer). Relative paths are resolved against the config file's folder.
 */
import path from 'node:path';
import {
  ConfigError,
  type OptimizerSettings,
  checkOptimizer,
  checkSeed,
  mergeStrict,
  readConfigFile,
} from '../config-merge.js';

export interface LmModelSettings {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  ropeTheta: number;
  /** Context length written to config.json (≥ seqLength). */
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  rmsNormEps: number;
  /** std of the normal initialisation of every matrix. */
  initStd: number;
}

export interface LmConfig {
  /** Tokenizer folder (tokenizer.json + tokenizer_config.json); the model's vocabulary is its size. */
  tokenizer: string;
  /** Run folder: tokens/, checkpoints/, metrics.jsonl, final/. */
  output: string;
  /**
   * A model folder whose weights start the run instead of a random initialisation ("" = random): a run
   * that continues pretraining from the f16 folder an earlier session brought back. Its shape and
   * vocabulary must be this config's; the optimiser starts afresh.
   */
  init: string;
  seed: number;
  model: LmModelSettings;
  data: {
    /**
     * Files or folders (.jsonl: one document per line with "text" [and "title"]; other files named: one document
     * each; of a folder, its .jsonl and .txt files).
     */
    train: string[];
    valid: string[];
    /** Token placed before every document (so between any two). */
    separator: string;
  };
  /** Tokens per training sequence. */
  seqLength: number;
  /** Sequences per forward pass. */
  batchSize: number;
  /** Forward passes whose gradients add up to one optimiser step. */
  accumulation: number;
  /** Optimiser steps; 0 = one pass over the training sequences. */
  steps: number;
  optimizer: OptimizerSettings;
  /** Validation loss every `every` steps over at most `maxSequences` validation sequences (0 = all). */
  eval: { every: number; maxSequences: number };
  checkpoint: { every: number; keep: number };
  /** Storage dtype of final/ ("F32" or "F16"). */
  saveDtype: string;
}

export const DEFAULT_LM_CONFIG: LmConfig = {
  tokenizer: '',
  output: '',
  init: '',
  seed: 0,
  model: {
    hiddenSize: 256,
    intermediateSize: 768,
    numHiddenLayers: 4,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    ropeTheta: 10000,
    maxPositionEmbeddings: 1024,
    tieWordEmbeddings: true,
    rmsNormEps: 1e-6,
    initStd: 0.02,
  },
  data: { train: [], valid: [], separator: '<|endoftext|>' },
  seqLength: 256,
  batchSize: 8,
  accumulation: 1,
  steps: 0,
  optimizer: {
    lr: 1e-3,
    weightDecay: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    warmupSteps: 100,
    minLr: 1e-4,
    maxGradNorm: 1,
  },
  eval: { every: 200, maxSequences: 64 },
  checkpoint: { every: 200, keep: 2 },
  saveDtype: 'F32',
};

/** Validates a parsed config object; paths are resolved against baseDir. */
export function parseLmConfig(raw: unknown, baseDir: string): LmConfig {
  const c = mergeStrict(DEFAULT_LM_CONFIG, raw, '');
  // left out, the floor follows the learning rate given (a tenth of it, as the defaults are), so that a
  // small lr alone is not refused for falling below a default floor
  const optimizer = (raw as { optimizer?: { minLr?: unknown } } | null)?.optimizer;
  if (optimizer?.minLr === undefined) c.optimizer = { ...c.optimizer, minLr: c.optimizer.lr / 10 };
  const need = (ok: boolean, msg: string): void => {
    if (!ok) throw new ConfigError(msg);
  };
  need(c.tokenizer !== '', '"tokenizer" must name the tokenizer folder (search-r3 tokenizer train)');
  need(c.output !== '', '"output" must name the run folder');
  need(c.data.train.length > 0, '"data.train" must list the training text files or folders');
  // resolved, an empty path would name the config's own folder, and every text file in it
  for (const split of ['train', 'valid'] as const) {
    const i = c.data[split].indexOf('');
    need(i < 0, `"data.${split}[${i}]" is an empty path; name a text file or folder`);
  }
  const posInt = (v: number, key: string): void =>
    need(Number.isInteger(v) && v >= 1, `"${key}" must be a positive integer, got ${v}`);
  const nonNegInt = (v: number, key: string): void =>
    need(Number.isInteger(v) && v >= 0, `"${key}" must be an integer ≥ 0, got ${v}`);
  const m = c.model;
  for (const k of [
    'hiddenSize',
    'intermediateSize',
    'numHiddenLayers',
    'numAttentionHeads',
    'numKeyValueHeads',
    'maxPositionEmbeddings',
  ] as const)
    posInt(m[k], `model.${k}`);
  need(
    m.hiddenSize % m.numAttentionHeads === 0,
    `"model.hiddenSize" ${m.hiddenSize} must be a multiple of model.numAttentionHeads ${m.numAttentionHeads}`,
  );
  need(
    m.numAttentionHeads % m.numKeyValueHeads === 0,
    `"model.numAttentionHeads" ${m.numAttentionHeads} must be a multiple of model.numKeyValueHeads ` +
      `${m.numKeyValueHeads}`,
  );
  for (const k of ['ropeTheta', 'rmsNormEps', 'initStd'] as const)
    need(m[k] > 0, `"model.${k}" must be a positive number, got ${m[k]}`);
  need(
    (m.hiddenSize / m.numAttentionHeads) % 2 === 0,
    '"model.hiddenSize / numAttentionHeads" (the head size) must be even for rotary embeddings',
  );
  checkSeed(c.seed, 'seed');
  posInt(c.seqLength, 'seqLength');
  posInt(c.batchSize, 'batchSize');
  posInt(c.accumulation, 'accumulation');
  nonNegInt(c.steps, 'steps');
  need(
    c.seqLength <= m.maxPositionEmbeddings,
    `"seqLength" ${c.seqLength} exceeds model.maxPositionEmbeddings ${m.maxPositionEmbeddings}`,
  );
  checkOptimizer(c.optimizer);
  posInt(c.eval.every, 'eval.every');
  nonNegInt(c.eval.maxSequences, 'eval.maxSequences');
  posInt(c.checkpoint.every, 'checkpoint.every');
  posInt(c.checkpoint.keep, 'checkpoint.keep');
  need(
    c.saveDtype === 'F32' || c.saveDtype === 'F16',
    `"saveDtype" must be "F32" or "F16", got ${JSON.stringify(c.saveDtype)}`,
  );
  const resolve = (p: string): string => path.resolve(baseDir, p);
  return {
    ...c,
    tokenizer: resolve(c.tokenizer),
    output: resolve(c.output),
    init: c.init === '' ? '' : resolve(c.init),
    data: { ...c.data, train: c.data.train.map(resolve), valid: c.data.valid.map(resolve) },
  };
}

export function loadLmConfig(file: string): LmConfig {
  return readConfigFile(file, parseLmConfig);
}
