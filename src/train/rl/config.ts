/**
 * The stage-2 (GRPO) training config: JSON whose every key has a default here; unknown keys and values
 * of the wrong type are errors naming the key (config-merge.ts). Relative paths resolve against the config
 * file's folder.
 */
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
} from '../config-merge.js';
import type { QuerySample } from '../../eval/dev-eval.js';
import { checkTrainingSplit, parseHoldOut } from '../hold-out.js';
import { isJsonObject } from '../../io/json-object.js';

export interface RlConfig {
  /** Starting policy: a model folder, such as stage 1's final/ or best/ (a LoRA adapter folder merges as it loads). */
  model: string;
  output: string;
  seed: number;
  /** Optimiser steps. */
  steps: number;
  /** Longest prompt / document in tokens. */
  maxLength: number;
  /**
   * BEIR folder: queries of `split` with their judged positives, less the dev sample `holdOut` draws from the
   * split (hold-out.ts) when set; the environment's corpus is its corpus.jsonl.
   */
  data: { beir: string; split: string; holdOut: QuerySample | null; maxQueries: number; maxDocuments: number };
  rollout: {
    queries: number;
    group: number;
    temperature: number;
    topP: number;
    topK: number;
    maxReasoningTokens: number;
  };
  reward: { kind: string; k: number; formatPenalty: number; lengthPenalty: number };
  loss: { clipEps: number; beta: number; innerEpochs: number; infonce: number; temperature: number };
  optimizer: OptimizerSettings;
  lora: LoraSettings | null;
  environment: {
    mode: string;
    budget: number;
    candidates: number;
    neighbours: number;
    rolling: number;
    fullEvery: number;
    /** Candidates per response for the contrastive term. */
    returnCandidates: number;
    /** Memory allowed for the table in bytes (0 = half the machine's memory). */
    maxTableBytes: number;
    connectivity: number;
    expansionAdd: number;
    expansionSearch: number;
    /** Shift stale rows' scores by the estimated corpus drift since their version (rlenv environment.ts). */
    driftCorrection: boolean;
  };
  checkpoint: { every: number; keep: number };
  templates: { querySystem?: string; documentSystem?: string; reasoningSystem?: string; directResponse?: string };
}

export const DEFAULT_RL_CONFIG: RlConfig = {
  model: '',
  output: '',
  seed: 0,
  steps: 100,
  maxLength: 256,
  data: { beir: '', split: 'train', holdOut: null, maxQueries: 0, maxDocuments: 0 },
  rollout: { queries: 4, group: 4, temperature: 1, topP: 1, topK: 0, maxReasoningTokens: 32 },
  reward: { kind: 'dcg', k: 10, formatPenalty: 0.5, lengthPenalty: 0 },
  loss: { clipEps: 0.2, beta: 0.04, innerEpochs: 1, infonce: 0, temperature: 0.05 },
  optimizer: {
    lr: 1e-5,
    weightDecay: 0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    warmupSteps: 0,
    minLr: 0,
    maxGradNorm: 1,
  },
  lora: null,
  environment: {
    mode: 'local',
    budget: 200,
    candidates: 8,
    neighbours: 4,
    rolling: 32,
    fullEvery: 0,
    returnCandidates: 16,
    maxTableBytes: 0,
    connectivity: 16,
    expansionAdd: 128,
    expansionSearch: 64,
    driftCorrection: true,
  },
  checkpoint: { every: 50, keep: 2 },
  templates: {},
};

export function parseRlConfig(raw: unknown, baseDir: string): RlConfig {
  if (!isJsonObject(raw)) throw new ConfigError('the config must be a JSON object');
  const { lora, templates, data, ...rest } = raw;
  // data.holdOut is an optional section (null by default), parsed on its own as lora is
  const { holdOut, ...dataKeys } = isJsonObject(data) ? data : { holdOut: undefined };
  const user = data === undefined ? rest : { ...rest, data: isJsonObject(data) ? dataKeys : data };
  const cfg: RlConfig = {
    ...mergeStrict({ ...DEFAULT_RL_CONFIG, lora: undefined, templates: undefined }, user, ''),
    lora: null,
    templates: {},
  };
  cfg.data = { ...cfg.data, holdOut: parseHoldOut(holdOut, 'data.holdOut') };
  cfg.lora = parseLora(lora);
  cfg.templates = parseTemplates(templates);
  if (cfg.model === '') throw new ConfigError('"model" is required: the starting model folder (stage-1 output)');
  if (cfg.output === '') throw new ConfigError('"output" is required: the run folder');
  if (cfg.data.beir === '')
    throw new ConfigError('"data.beir" is required: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)');
  cfg.model = path.resolve(baseDir, cfg.model);
  cfg.output = path.resolve(baseDir, cfg.output);
  cfg.data.beir = path.resolve(baseDir, cfg.data.beir);
  check(cfg);
  return cfg;
}

function check(c: RlConfig): void {
  // reward.k: the cutoff (rr: 0 = none)
  const pos = (v: number, name: string): void => {
    if (!(Number.isInteger(v) && v >= 1)) throw new ConfigError(`"${name}" must be a positive integer, got ${v}`);
  };
  const nonneg = (v: number, name: string): void => {
    if (!(v >= 0)) throw new ConfigError(`"${name}" must be ≥ 0, got ${v}`);
  };
  // counts: sizes of tensors, tables and loops, where a fraction fails deep inside (a shape of 95.5 rows)
  const count = (v: number, name: string): void => {
    if (!(Number.isInteger(v) && v >= 0)) throw new ConfigError(`"${name}" must be an integer ≥ 0, got ${v}`);
  };
  checkSeed(c.seed, 'seed');
  pos(c.steps, 'steps');
  pos(c.maxLength, 'maxLength');
  checkOptimizer(c.optimizer);
  pos(c.rollout.queries, 'rollout.queries');
  pos(c.rollout.group, 'rollout.group');
  // GRPO's advantage is a response's reward less its group's mean: with one response, or responses all alike
  // (greedy decoding), every advantage is 0 and the policy never learns
  if (c.rollout.group < 2)
    throw new ConfigError(
      `"rollout.group" must be at least 2, got ${c.rollout.group}: GRPO scores each response against the others ` +
        'of its group, so a group of one has every advantage 0 and never updates the policy',
    );
  pos(c.loss.innerEpochs, 'loss.innerEpochs');
  if (c.reward.kind === 'rr') nonneg(c.reward.k, 'reward.k');
  else pos(c.reward.k, 'reward.k');
  pos(c.checkpoint.every, 'checkpoint.every');
  pos(c.checkpoint.keep, 'checkpoint.keep');
  if (!(c.rollout.temperature > 0))
    throw new ConfigError(
      `"rollout.temperature" must be > 0, got ${c.rollout.temperature}: the responses of a group are sampled, ` +
        'and at 0 (greedy) they are all the same, so every advantage is 0 and GRPO never updates the policy',
    );
  // both are subtracted from the reward (rlenv reward.ts): a negative one would reward what it is meant to punish
  if (!(c.reward.formatPenalty >= 0))
    throw new ConfigError(
      `"reward.formatPenalty" must be ≥ 0, got ${c.reward.formatPenalty}: it is taken from the reward of a ` +
        'response that never emitted the embed token, so a negative one would reward leaving it out',
    );
  if (!(c.reward.lengthPenalty >= 0))
    throw new ConfigError(
      `"reward.lengthPenalty" must be ≥ 0, got ${c.reward.lengthPenalty}: it is taken from the reward in ` +
        'proportion to the reasoning tokens used, so a negative one would reward longer reasoning',
    );
  nonneg(c.loss.beta, 'loss.beta');
  nonneg(c.loss.infonce, 'loss.infonce');
  count(c.rollout.maxReasoningTokens, 'rollout.maxReasoningTokens');
  count(c.rollout.topK, 'rollout.topK');
  if (!(c.rollout.topP > 0 && c.rollout.topP <= 1))
    throw new ConfigError(`"rollout.topP" must be in (0, 1], got ${c.rollout.topP}`);
  checkTrainingSplit(c.data.split, 'data.split');
  count(c.data.maxQueries, 'data.maxQueries');
  count(c.data.maxDocuments, 'data.maxDocuments');
  const counts = [
    'budget',
    'candidates',
    'neighbours',
    'rolling',
    'fullEvery',
    'returnCandidates',
    'maxTableBytes',
  ] as const;
  for (const k of counts) count(c.environment[k], `environment.${k}`);
  for (const k of ['connectivity', 'expansionAdd', 'expansionSearch'] as const)
    pos(c.environment[k], `environment.${k}`);
  if (!(c.loss.clipEps > 0 && c.loss.clipEps < 1))
    throw new ConfigError(`"loss.clipEps" must be in (0, 1), got ${c.loss.clipEps}`);
  if (!(c.loss.temperature > 0)) throw new ConfigError(`"loss.temperature" must be > 0, got ${c.loss.temperature}`);
  if (!['dcg', 'ndcg', 'rr'].includes(c.reward.kind))
    throw new ConfigError(`"reward.kind" must be one of dcg, ndcg, rr, got ${JSON.stringify(c.reward.kind)}`);
  if (!['local', 'exact'].includes(c.environment.mode))
    throw new ConfigError(`"environment.mode" must be local or exact, got ${JSON.stringify(c.environment.mode)}`);
  // with no sampled token the policy-gradient term is empty: only the contrastive term could train anything
  if (c.rollout.maxReasoningTokens === 0 && c.loss.infonce === 0)
    throw new ConfigError(
      '"rollout.maxReasoningTokens" 0 samples no token, so with "loss.infonce" 0 nothing is trained: set ' +
        'rollout.maxReasoningTokens ≥ 1, or loss.infonce > 0 to train the embeddings alone',
    );
  // the drift is sampled from the rolling rows alone (rlenv environment.ts): without them the correction never applies
  if (c.environment.mode === 'local' && c.environment.driftCorrection && c.environment.rolling === 0)
    throw new ConfigError(
      '"environment.driftCorrection" estimates the corpus drift from the rolling rows, and "environment.rolling" is ' +
        '0: set rolling ≥ 1, or driftCorrection false to score stale rows uncorrected',
    );
  if (c.loss.infonce > 0 && c.environment.returnCandidates < 1)
    throw new ConfigError(
      '"loss.infonce" > 0 needs "environment.returnCandidates" ≥ 1 (the contrastive term\'s negatives)',
    );
}

export function loadRlConfig(file: string): RlConfig {
  return readConfigFile(file, parseRlConfig);
}
