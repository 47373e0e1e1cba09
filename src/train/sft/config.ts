/**
 * The stage-1 training config: a JSON file whose every key has a default here. Unknown keys are an
 * error naming the key (a typo must not silently train with a default), as are values of the wrong type.
 * Relative paths are resolved against the config file's folder.
 */
import { resolvedPath } from '../../io/path-relation.js';
import path from 'node:path';
import {
  checkOptimizer,
  checkSeed,
  ConfigError,
  type LoraSettings,
  type OptimizerSettings,
  mergeStrict,
  parseLora,
  parseTemplates,
  readConfigFile,
  shownJson,
} from '../config-merge.js';
import type { QuerySample } from '../../eval/dev-eval.js';
import { checkTrainingSplit, parseHoldOut } from '../hold-out.js';
import type { PseudoQueryKind } from './pseudo-queries.js';
import { isJsonObject } from '../../io/json-object.js';

export type DataSourceConfig =
  /**
   * BEIR folder: queries judged relevant (grade ≥ 1) in qrels/<split>.tsv, positives from the corpus;
   * sameTitleNegatives > 0 adds that many hard negatives from the paragraphs of the positive's own article;
   * holdOut leaves out the queries of a dev sample drawn from this split (hold-out.ts).
   */
  | { type: 'beir'; path: string; split: string; sameTitleNegatives?: number; holdOut?: QuerySample }
  /** JSONL {query, pos, neg} (FlagEmbedding) or {query, positive_passages, negative_passages} (Tevatron). */
  | { type: 'jsonl'; path: string }
  /** TSV text pairs: query<TAB>positive per line. */
  | { type: 'pairs'; path: string }
  /** Climate-FEVER claims: SUPPORTS/REFUTES evidence are positives, NOT_ENOUGH_INFO hard negatives. */
  | { type: 'climate-fever'; path: string }
  /** Pseudo-queries from a corpus.jsonl (or BEIR folder): a title asks for its body, a sentence for the rest. */
  | { type: 'pseudo-queries'; path: string; queries: PseudoQueryKind; seed: number; maxDocuments: number };

export interface EvalSettings {
  beir: string;
  split: string;
  every: number;
  /** The first maxQueries queries (0 = all), over their judged documents plus the first maxDocuments others. */
  maxQueries: number;
  maxDocuments: number;
}

export interface SftConfig {
  /** Starting model folder (Hugging Face layout); <|embed_token|> is added when missing. */
  model: string;
  /** Run folder: checkpoints/, metrics.jsonl, best/, final/, report.html. */
  output: string;
  seed: number;
  data: DataSourceConfig[];
  /** Longest training sequence in tokens; longer texts are cut (and counted). */
  maxLength: number;
  /** Optimiser steps; 0 = as many as `epochs` passes over the data need. */
  steps: number;
  epochs: number;
  batch: {
    /** Queries per contrastive batch (each brings its positive: the in-batch negatives). */
    queries: number;
    /** Hard negatives per query (from the data or `search-r3 mine`), when it has that many. */
    hardNegatives: number;
    /** Sequences per forward pass (GradCache chunks); 0 = the whole batch in one pass with plain backprop. */
    subBatch: number;
    /** Contrastive batches whose gradients add up to one optimiser step (each keeps all its negatives). */
    accumulation: number;
  };
  loss: { sft: number; kl: number; infonce: number; triplet: number; temperature: number; margin: number };
  optimizer: OptimizerSettings;
  /** LoRA adapters (base frozen), or null for full fine-tuning. */
  lora: LoraSettings | null;
  checkpoint: { every: number; keep: number };
  /** Dev evaluation (nDCG@10 through the eval harness), or null. */
  eval: EvalSettings | null;
  /** Prompt templates (src/embed/prompts.ts); unset fields keep the published defaults. */
  templates: { querySystem?: string; documentSystem?: string; reasoningSystem?: string; directResponse?: string };
  /**
   * Queries that learn to reason: a share of them is trained in the reasoning form (the reasoning system
   * prompt, a short analysis of key concepts, then the direct response with the embed token), the
   * analysis learnt by L_SFT and the embedding taken at the token after it, as inference with reasoning
   * on takes it; null = every query in the direct form.
   */
  reasoning: ReasoningSettings | null;
}

export interface ReasoningSettings {
  /** Share of each source's queries in the reasoning form. */
  fraction: number;
  /** Key concepts named at most. */
  concepts: number;
  /** Related terms named at most. */
  related: number;
  /** Tokens for the analysis and the words before the embed token: the reasoning budget of inference and stage 2. */
  maxTokens: number;
}

export const REASONING_DEFAULTS: ReasoningSettings = { fraction: 0.5, concepts: 3, related: 3, maxTokens: 24 };

export const DEFAULT_SFT_CONFIG: SftConfig = {
  model: '',
  output: '',
  seed: 0,
  data: [],
  maxLength: 512,
  steps: 0,
  epochs: 1,
  batch: { queries: 16, hardNegatives: 1, subBatch: 0, accumulation: 1 },
  loss: { sft: 1, kl: 1, infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2 },
  optimizer: {
    lr: 1e-4,
    weightDecay: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    warmupSteps: 10,
    minLr: 0,
    maxGradNorm: 1,
  },
  lora: null,
  checkpoint: { every: 100, keep: 2 },
  eval: null,
  templates: {},
  reasoning: null,
};

const EVAL_DEFAULTS: EvalSettings = { beir: '', split: 'dev', every: 100, maxQueries: 0, maxDocuments: 0 };
const SOURCE_KEYS: Record<string, string[]> = {
  beir: ['type', 'path', 'split', 'sameTitleNegatives', 'holdOut'],
  jsonl: ['type', 'path'],
  pairs: ['type', 'path'],
  'climate-fever': ['type', 'path'],
  'pseudo-queries': ['type', 'path', 'queries', 'seed', 'maxDocuments'],
};

type Json = unknown;

/** Validates a parsed config object; paths are resolved against baseDir. */
export function parseSftConfig(raw: Json, baseDir: string): SftConfig {
  if (!isJsonObject(raw)) throw new ConfigError('the config must be a JSON object');
  const { data, lora, eval: ev, templates, reasoning, ...rest } = raw;
  const defaults = {
    ...DEFAULT_SFT_CONFIG,
    data: undefined,
    lora: undefined,
    eval: undefined,
    templates: undefined,
    reasoning: undefined,
  };
  const simple = mergeStrict(defaults, rest, '');
  const cfg: SftConfig = { ...simple, data: [], lora: null, eval: null, templates: {}, reasoning: null };
  if (reasoning !== undefined && reasoning !== null)
    cfg.reasoning = mergeStrict(REASONING_DEFAULTS, reasoning, 'reasoning');
  cfg.lora = parseLora(lora);
  if (ev !== undefined && ev !== null) cfg.eval = mergeStrict(EVAL_DEFAULTS, ev, 'eval');
  cfg.templates = parseTemplates(templates);
  if (!Array.isArray(data) || data.length === 0)
    throw new ConfigError(
      '"data" must be a non-empty array of sources such as {"type": "beir", "path": "...", "split": "train"}',
    );
  cfg.data = data.map((s, i) => parseSource(s, `data[${i}]`, baseDir));
  const resolve = (p: string): string => (p === '' ? p : path.resolve(baseDir, p));
  cfg.model = resolve(cfg.model);
  cfg.output = resolve(cfg.output);
  if (cfg.eval) cfg.eval.beir = resolve(cfg.eval.beir);
  check(cfg);
  return cfg;
}

function parseSource(o: Json, at: string, baseDir: string): DataSourceConfig {
  if (!isJsonObject(o)) throw new ConfigError(`"${at}" must be a JSON object, got ${shownJson(o)}`);
  const keys = SOURCE_KEYS[String(o.type)];
  if (!keys)
    throw new ConfigError(
      `"${at}.type" must be one of ${Object.keys(SOURCE_KEYS).join(', ')}, ` +
        (o.type === undefined ? 'and is missing' : `got ${shownJson(o.type)}`),
    );
  for (const k of Object.keys(o))
    if (!keys.includes(k))
      throw new ConfigError(`"${at}.${k}" is not a config key; known keys of a ${o.type} source: ${keys.join(', ')}`);
  if (typeof o.path !== 'string' || o.path === '') throw new ConfigError(`"${at}.path" must be a non-empty string`);
  const p = path.resolve(baseDir, o.path);
  const int = (v: unknown, key: string, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      throw new ConfigError(`"${at}.${key}" must be an integer ≥ 0, got ${JSON.stringify(v)}`);
    return v;
  };
  if (o.type === 'beir') {
    if (o.split !== undefined && typeof o.split !== 'string') throw new ConfigError(`"${at}.split" must be a string`);
    const split = (o.split as string | undefined) ?? 'train';
    checkTrainingSplit(split, `${at}.split`);
    const sameTitleNegatives = int(o.sameTitleNegatives, 'sameTitleNegatives', 0);
    const holdOut = parseHoldOut(o.holdOut, `${at}.holdOut`);
    return {
      type: 'beir',
      path: p,
      split,
      ...(sameTitleNegatives > 0 ? { sameTitleNegatives } : {}),
      ...(holdOut ? { holdOut } : {}),
    };
  }
  if (o.type === 'pseudo-queries') {
    if (o.queries !== 'title' && o.queries !== 'sentence')
      throw new ConfigError(`"${at}.queries" must be "title" or "sentence", got ${JSON.stringify(o.queries)}`);
    return {
      type: 'pseudo-queries',
      path: p,
      queries: o.queries,
      seed: o.seed === undefined ? 0 : checkSeed(o.seed, `${at}.seed`),
      maxDocuments: int(o.maxDocuments, 'maxDocuments', 0),
    };
  }
  return { type: o.type as 'jsonl' | 'pairs' | 'climate-fever', path: p };
}

function check(c: SftConfig): void {
  const need = (ok: boolean, msg: string): void => {
    if (!ok) throw new ConfigError(msg);
  };
  need(c.model !== '', '"model" must name the starting model folder');
  need(c.output !== '', '"output" must name the run folder');
  const posInt = (v: number, key: string): void =>
    need(Number.isInteger(v) && v >= 1, `"${key}" must be a positive integer, got ${v}`);
  const nonNegInt = (v: number, key: string): void =>
    need(Number.isInteger(v) && v >= 0, `"${key}" must be an integer ≥ 0, got ${v}`);
  posInt(c.batch.queries, 'batch.queries');
  need(c.batch.queries >= 2 || c.loss.infonce === 0, '"batch.queries" must be at least 2 for in-batch negatives');
  nonNegInt(c.batch.hardNegatives, 'batch.hardNegatives');
  nonNegInt(c.batch.subBatch, 'batch.subBatch');
  posInt(c.batch.accumulation, 'batch.accumulation');
  nonNegInt(c.steps, 'steps');
  posInt(c.epochs, 'epochs');
  posInt(c.maxLength, 'maxLength');
  posInt(c.checkpoint.every, 'checkpoint.every');
  posInt(c.checkpoint.keep, 'checkpoint.keep');
  need(c.loss.temperature > 0, `"loss.temperature" must be > 0, got ${c.loss.temperature}`);
  for (const k of ['sft', 'kl', 'infonce', 'triplet'] as const) need(c.loss[k] >= 0, `"loss.${k}" must be ≥ 0`);
  // KL(π‖π_ref) is 0, and so is its gradient, where the model starts: alone it never moves it
  need(
    c.loss.sft > 0 || c.loss.infonce > 0 || c.loss.triplet > 0,
    '"loss.sft", "loss.infonce" and "loss.triplet" are all 0, so nothing is trained (the KL term alone keeps the ' +
      'model where it starts): give at least one of them a weight > 0',
  );
  checkOptimizer(c.optimizer);
  checkSeed(c.seed, 'seed');
  if (c.eval) {
    need(c.eval.beir !== '', '"eval.beir" must name a BEIR folder');
    posInt(c.eval.every, 'eval.every');
    nonNegInt(c.eval.maxQueries, 'eval.maxQueries');
    nonNegInt(c.eval.maxDocuments, 'eval.maxDocuments');
    // best/ is the model chosen on this split: choosing it on the test queries would report a test figure
    // that the test set itself picked
    need(c.eval.split !== 'test', '"eval.split" must not be "test": best/ would be chosen on the test queries');
    const evalFolder = resolvedPath(c.eval.beir);
    const trained = c.data.findIndex(
      (d) => d.type === 'beir' && d.split === c.eval!.split && resolvedPath(d.path) === evalFolder,
    );
    // a dev score on training queries rewards memorising them, and best/ would be the model that did most
    need(
      trained < 0,
      `"eval" reads split "${c.eval.split}" of ${c.eval.beir}, which data[${trained}] trains on: dev nDCG@10 would ` +
        'be measured on training queries and choose best/ on them; evaluate on another split (dev) or folder',
    );
  }
  if (c.reasoning) {
    const r = c.reasoning;
    need(r.fraction >= 0 && r.fraction <= 1, `"reasoning.fraction" must be in [0, 1], got ${r.fraction}`);
    nonNegInt(r.concepts, 'reasoning.concepts');
    nonNegInt(r.related, 'reasoning.related');
    posInt(r.maxTokens, 'reasoning.maxTokens');
    need(c.loss.sft > 0, '"reasoning" needs "loss.sft" > 0: the analysis is learnt by L_SFT');
  }
}

/** Reads and validates a stage-1 config file. */
export function loadSftConfig(file: string): SftConfig {
  return readConfigFile(file, parseSftConfig);
}
