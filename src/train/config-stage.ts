/**
 * A config of one training stage given to another (`train sft --config stage2.json`) fails on the first key the
 * stage lacks or reads otherwise (lm's "model" is an architecture, sft's a folder), and the refusal lists keys
 * the user never meant to write. When every top-level key of the file is one of another stage's, and not every
 * one is this stage's, the refusal says which stage the config is for.
 */
import { readFileSync } from 'node:fs';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';
import { isJsonObject } from '../io/json-object.js';
import { ConfigError } from './config-merge.js';
import { DEFAULT_LM_CONFIG } from './lm/config.js';
import { DEFAULT_RL_CONFIG } from './rl/config.js';
import type { Stage } from './run-record.js';
import { DEFAULT_SFT_CONFIG } from './sft/config.js';

const STAGE_KEYS: Record<Stage, readonly string[]> = {
  lm: Object.keys(DEFAULT_LM_CONFIG),
  sft: Object.keys(DEFAULT_SFT_CONFIG),
  rl: Object.keys(DEFAULT_RL_CONFIG),
};

/** `e`, or where it refuses the config file of another stage, a refusal naming that stage. */
export function otherStageSaid(e: unknown, stage: Stage): unknown {
  if (!(e instanceof ConfigError) || e.file === undefined) return e;
  const keys = topLevelKeys(e.file);
  const stray = keys?.find((k) => !STAGE_KEYS[stage].includes(k));
  if (keys === undefined || stray === undefined) return e;
  const other = (Object.keys(STAGE_KEYS) as Stage[]).find((s) => keys.every((k) => STAGE_KEYS[s].includes(k)));
  if (other === undefined) return e;
  return new ConfigError(
    `"${stray}" is not a key of a train ${stage} config, and every key of this one is one of train ${other}'s: ` +
      `it is a train ${other} config`,
    e.file,
  );
}

/** The keys of the JSON object in `file`; undefined when it cannot be read as one (its refusal says why). */
function topLevelKeys(file: string): string[] | undefined {
  try {
    const v = JSON.parse(withoutByteOrderMark(readFileSync(file, 'utf8'))) as unknown;
    return isJsonObject(v) ? Object.keys(v) : undefined;
  } catch {
    return undefined;
  }
}
