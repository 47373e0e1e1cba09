/**
 * A profile's configs checked without training: each goes through the parser its command uses (so a
 * key or value the trainer would refuse is found before a GPU session is spent on it), and the recipe's
 * own rules hold: no data source reads an evaluated set (XQuAD, or any test split) as training data, none
 * reads SciFact's train queries without holding out the dev sample the fusion is chosen on, and the
 * reasoning budget is the same in stage 1's analyses, stage 2's rollouts and the evaluation.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { QuerySample } from '../eval/dev-eval.js';
import { parseLmConfig } from '../train/lm/config.js';
import { loadRlConfig, parseRlConfig, type RlConfig } from '../train/rl/config.js';
import { loadSftConfig, parseSftConfig, type SftConfig } from '../train/sft/config.js';
import type { LmConfig } from '../train/lm/config.js';
import { SCIFACT_DEV, type RecipePaths, type RecipeProfile } from './recipe-profiles.js';

/** The configs of the steps that read training queries: mining, stage 1 and stage 2. */
export interface FineTuningConfigs {
  mine: SftConfig;
  stage1: SftConfig;
  stage2: RlConfig;
}

export interface CheckedConfigs extends FineTuningConfigs {
  lm: LmConfig;
}

/** A dev set drawn as a seeded sample of a train split's queries (sampleDevQueries). */
export interface SampledDevSet {
  /** The BEIR folder under the data folder, e.g. "scifact". */
  folder: string;
  split: string;
  sample: QuerySample;
}

/**
 * The first source of `c` that trains on `dev`'s queries: one that reads its split of its folder (under any data
 * folder, so that configs written on another machine are judged too) without a holdOut that keeps the sample out;
 * null when there is none. A holdOut with the sample's seed and at least its n keeps it out: the sample is the
 * first n ids of one seeded shuffle. Stage 1's mined file (its jsonl source) holds the queries mine read, which
 * is why mine's sources are checked for it.
 */
export function devSampleLeak(c: FineTuningConfigs, dev: SampledDevSet = SCIFACT_DEV): string | null {
  const parts = dev.folder.split('/');
  const isDev = (folder: string, split: string): boolean =>
    split === dev.split && folder.split(path.sep).slice(-parts.length).join('/') === dev.folder;
  const keepsOut = (h: QuerySample | null | undefined): boolean =>
    !!h && h.seed === dev.sample.seed && h.n >= dev.sample.n;
  const leak = (where: string, folder: string): string =>
    `${where} reads ${folder} (split ${dev.split}) without holding out the dev sample ` +
    `{n: ${dev.sample.n}, seed: ${dev.sample.seed}}`;
  for (const name of ['mine', 'stage1'] as const)
    for (const [i, src] of c[name].data.entries())
      if (src.type === 'beir' && isDev(src.path, src.split) && !keepsOut(src.holdOut))
        return leak(`${name} config, data[${i}]`, src.path);
  const d = c.stage2.data;
  if (isDev(d.beir, d.split) && !keepsOut(d.holdOut)) return leak('stage2 config, data', d.beir);
  return null;
}

/** The recipe's configs of a model folder's training, from `<dir>/configs/`, read by the parsers the steps use. */
function readFineTuningConfigs(dir: string): FineTuningConfigs {
  const file = (name: string): string => path.join(dir, 'configs', `${name}.json`);
  const missing = ['mine', 'stage1', 'stage2'].filter((n) => !existsSync(file(n)));
  if (missing.length > 0)
    throw new RecipeConfigError(
      `${path.join(dir, 'configs')} has no ${missing.map((n) => `${n}.json`).join(', ')}: the model's training ` +
        'data is not recorded',
    );
  return {
    mine: loadSftConfig(file('mine')),
    stage1: loadSftConfig(file('stage1')),
    stage2: loadRlConfig(file('stage2')),
  };
}

/**
 * Why it is not confirmed that the model in `dir` never trained on `dev`'s sample, judged from its configs/ (the
 * package step writes them); null when they show that every step held the sample out.
 */
export function devSampleNotHeldOut(dir: string, dev: SampledDevSet = SCIFACT_DEV): string | null {
  try {
    const leak = devSampleLeak(readFineTuningConfigs(dir), dev);
    return leak ? `the model may have trained on these queries: ${leak}` : null;
  } catch (e) {
    return `it cannot be confirmed that the model held these queries out of training: ${(e as Error).message}`;
  }
}

/** A profile whose configs a trainer would refuse, or that break the recipe's rules; names the config and why. */
export class RecipeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeConfigError';
  }
}

/** Folders that are evaluated (recipe evaluate) and so never trained on, by their path under the data folder. */
const EVALUATED = [/(^|\/)xquad(\/|$)/];

function parsed<C>(profile: RecipeProfile, name: string, f: () => C): C {
  try {
    return f();
  } catch (e) {
    throw new RecipeConfigError(`profile ${profile.name}, ${name} config: ${(e as Error).message}`);
  }
}

/** Every config of the profile, parsed and checked; the lm config needs the corpus step's shards in place. */
export function checkProfileConfigs(profile: RecipeProfile, p: RecipePaths): CheckedConfigs {
  const lm = parsed(profile, 'lm', () => parseLmConfig(profile.lm(p), p.configs));
  return { lm, ...checkProfileRules(profile, p) };
}

/** The fine-tuning configs parsed and the recipe's rules checked: possible before any step has run. */
export function checkProfileRules(profile: RecipeProfile, p: RecipePaths): Omit<CheckedConfigs, 'lm'> {
  const parse = <C>(name: string, f: () => C): C => parsed(profile, name, f);
  const mine = parse('mine', () => parseSftConfig(profile.mine(p), p.configs));
  const stage1 = parse('stage1', () => parseSftConfig(profile.stage1(p), p.configs));
  const stage2 = parse('stage2', () => parseRlConfig(profile.stage2(p), p.configs));

  const rel = (f: string): string => path.relative(p.data, f).split(path.sep).join('/');
  const refuse = (name: string, f: string, why: string): never => {
    throw new RecipeConfigError(`profile ${profile.name}, ${name} config: ${f} ${why}`);
  };
  for (const [name, cfg] of [
    ['mine', mine],
    ['stage1', stage1],
  ] as const) {
    for (const src of cfg.data) {
      if (EVALUATED.some((r) => r.test(rel(src.path)))) refuse(name, src.path, 'is an evaluated set: never trained on');
    }
  }
  // a test split is refused by the parsers (checkTrainingSplit), before these rules
  if (EVALUATED.some((r) => r.test(rel(stage2.data.beir))))
    refuse('stage2', stage2.data.beir, 'is an evaluated set: never trained on');
  if (stage1.eval && (EVALUATED.some((r) => r.test(rel(stage1.eval!.beir))) || stage1.eval.split === 'test'))
    refuse('stage1', stage1.eval.beir, 'is evaluated: the dev set must be another split');
  const leak = devSampleLeak({ mine, stage1, stage2 });
  if (leak) throw new RecipeConfigError(`profile ${profile.name}, ${leak}: the fusion's dev set would be trained on`);

  const budget = Number(profile.evaluateArgs[profile.evaluateArgs.indexOf('--max-reasoning-tokens') + 1]);
  if (stage2.rollout.maxReasoningTokens !== budget)
    throw new RecipeConfigError(
      `profile ${profile.name}: stage 2 reasons for ${stage2.rollout.maxReasoningTokens} tokens, the evaluation ` +
        `for ${budget}`,
    );
  if (stage1.reasoning && stage1.reasoning.maxTokens !== budget)
    throw new RecipeConfigError(
      `profile ${profile.name}: stage 1 teaches analyses of ${stage1.reasoning.maxTokens} tokens, the evaluation ` +
        `reasons for ${budget}`,
    );
  return { mine, stage1, stage2 };
}
