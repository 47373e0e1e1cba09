/**
 * Strict config parsing shared by every trainer (stage 1, stage 2, pretraining): a user's JSON is
 * merged over typed defaults, and a key the defaults do not have, or a value of another type, is an
 * error naming the key, never silently ignored. The sections every trainer has (optimizer) or the two
 * fine-tuning stages share (lora, templates) are defined here once.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';
import { EMBED_TOKEN, type PromptTemplates } from '../embed/index.js';
import { LORA_TARGETS } from '../model/lora.js';
import { isJsonObject } from '../io/json-object.js';
import { SEED_RANGE, describeRange, inRange } from '../io/option-checks.js';

/** A problem with the config file, naming the key; and the file, once known. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(file === undefined ? message : `${file}: ${message}`);
    this.name = 'ConfigError';
  }
}

/**
 * `e` as said of the config `file`: a ConfigError that names no file yet gets its name, whether raised as the
 * file is read or by a trainer that judges a key against the data or model it read (rollout.queries against
 * the queries there are).
 */
export function ofConfigFile(e: unknown, file: string): unknown {
  return e instanceof ConfigError && e.file === undefined ? new ConfigError(e.message, file) : e;
}

/** Fills `defaults` from `user`, refusing keys the defaults do not have and values of another type. */
export function mergeStrict<V>(defaults: V, user: unknown, at: string): V {
  if (!isJsonObject(user))
    throw new ConfigError(`${at ? `"${at}"` : 'the config'} must be a JSON object, got ${shownJson(user)}`);
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [key, value] of Object.entries(user as Record<string, unknown>)) {
    const where = at ? `${at}.${key}` : key;
    if (!Object.hasOwn(out, key))
      throw new ConfigError(
        `"${where}" is not a config key; known keys${at ? ` of ${at}` : ''}: ${Object.keys(out).join(', ')}`,
      );
    const def = out[key];
    if (typeof def === 'number' || typeof def === 'string' || typeof def === 'boolean') {
      if (typeof value !== typeof def) {
        throw new ConfigError(`"${where}" must be a ${typeof def}, got ${JSON.stringify(value)}`);
      }
      // JSON.parse reads a number beyond ±1.8e308 as ±Infinity, which JSON.stringify would show as null
      if (typeof value === 'number' && !Number.isFinite(value))
        throw new ConfigError(`"${where}" must be a finite number, got ${value} (a number too large for a double)`);
      out[key] = value;
    } else if (Array.isArray(def)) {
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))
        throw new ConfigError(`"${where}" must be an array of strings`);
      out[key] = value;
    } else {
      out[key] = mergeStrict(def, value, where);
    }
  }
  return out as V;
}

/**
 * A config's seed: an integer the generators take as it is. A fraction is cut by some of its uses and not by
 * others (1.5 would be neither run 1 nor its own), and one outside [0, 2^32) is taken modulo 2^32 (-1 would be
 * run 4294967295, 2^32 run 0).
 */
export function checkSeed(v: unknown, key: string): number {
  if (!inRange(v, SEED_RANGE))
    throw new ConfigError(`"${key}" must be ${describeRange(SEED_RANGE)}, got ${shownJson(v)}`);
  return v;
}

/** A JSON value as a message shows what was given instead: an array or object by its kind, not its contents. */
export function shownJson(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  return isJsonObject(v) ? 'an object' : String(JSON.stringify(v));
}

const TEMPLATE_KEYS = ['querySystem', 'documentSystem', 'reasoningSystem', 'directResponse'];

/** The `templates` section: prompt overrides, each a string, keys as in PromptTemplates. */
export function parseTemplates(templates: unknown): Partial<PromptTemplates> {
  const out: Record<string, string> = {};
  if (templates === undefined) return out;
  if (!isJsonObject(templates)) throw new ConfigError(`"templates" must be a JSON object, got ${shownJson(templates)}`);
  for (const [k, v] of Object.entries(templates)) {
    if (!TEMPLATE_KEYS.includes(k))
      throw new ConfigError(
        `"templates.${k}" is not a config key; known keys of templates: ${TEMPLATE_KEYS.join(', ')}`,
      );
    if (typeof v !== 'string') throw new ConfigError(`"templates.${k}" must be a string`);
    // the embedding is the hidden state at this one token, of queries and documents alike
    if (k === 'directResponse' && v.split(EMBED_TOKEN).length !== 2)
      throw new ConfigError(
        `"templates.directResponse" must contain ${EMBED_TOKEN} exactly once, got ${JSON.stringify(v)}: the ` +
          'embedding is the hidden state at that token',
      );
    out[k] = v;
  }
  return out;
}

/** The optimizer section: AdamW's settings, warm-up + cosine decay of the learning rate, gradient clipping. */
export interface OptimizerSettings {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  warmupSteps: number;
  minLr: number;
  /** Largest global gradient norm; 0 = no clipping. */
  maxGradNorm: number;
}

/**
 * Refuses optimizer settings that cannot train: a bad one would otherwise show up steps later as a
 * "divergence" (beta2 of 1 divides by zero) or as a setting silently off (a negative maxGradNorm) or
 * backwards (a minLr above lr).
 */
export function checkOptimizer(o: OptimizerSettings): void {
  const need = (ok: boolean, what: string): void => {
    if (!ok) throw new ConfigError(`"optimizer.${what}`);
  };
  need(o.lr > 0, `lr" must be > 0, got ${o.lr}`);
  need(o.minLr >= 0, `minLr" must be ≥ 0, got ${o.minLr}`);
  // the schedule decays from lr to minLr: a larger minLr would raise the learning rate after warm-up instead
  need(
    o.minLr <= o.lr,
    `minLr" (${o.minLr}) must not exceed "optimizer.lr" (${o.lr}): the schedule decays lr down to minLr; ` +
      'set minLr ≤ lr',
  );
  need(o.weightDecay >= 0, `weightDecay" must be ≥ 0, got ${o.weightDecay}`);
  for (const k of ['beta1', 'beta2'] as const) need(o[k] >= 0 && o[k] < 1, `${k}" must be in [0, 1), got ${o[k]}`);
  need(o.eps > 0, `eps" must be > 0, got ${o.eps}`);
  need(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0, `warmupSteps" must be an integer ≥ 0`);
  need(o.maxGradNorm >= 0, `maxGradNorm" must be ≥ 0 (0: no clipping), got ${o.maxGradNorm}`);
}

/** LoRA adapters (rank, scaling alpha, dropout, the projections they attach to), the base weights frozen. */
export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
}

const LORA_DEFAULTS: LoraSettings = {
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: [...LORA_TARGETS],
};

/** The `lora` section: null (full fine-tuning) when absent or null, else its keys over the defaults. */
export function parseLora(lora: unknown): LoraSettings | null {
  if (lora === undefined || lora === null) return null;
  const cfg = mergeStrict(LORA_DEFAULTS, lora, 'lora');
  const wrong = cfg.targets.find((t) => !(LORA_TARGETS as readonly string[]).includes(t));
  if (wrong !== undefined) {
    throw new ConfigError(
      `"lora.targets": '${wrong}' is not a Qwen2 linear layer; choose from ${LORA_TARGETS.join(', ')}`,
    );
  }
  if (cfg.targets.length === 0)
    throw new ConfigError(`"lora.targets" names no layer: give some of ${LORA_TARGETS.join(', ')}`);
  if (!Number.isInteger(cfg.rank) || cfg.rank < 1) throw new ConfigError('"lora.rank" must be an integer ≥ 1');
  if (!(cfg.alpha > 0)) throw new ConfigError('"lora.alpha" must be a positive number');
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) throw new ConfigError('"lora.dropout" must be in [0, 1)');
  return cfg;
}

/**
 * Reads a JSON config file and parses it with `parse`, which resolves relative paths against the file's
 * folder. Every problem, the file's own or a key's, is a ConfigError that starts with the file's name.
 */
export function readConfigFile<C>(file: string, parse: (raw: unknown, baseDir: string) => C): C {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(missing ? 'no such file' : `cannot be read (${(e as Error).message})`, file);
  }
  let raw: unknown;
  const json = withoutByteOrderMark(text);
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new ConfigError(`not valid JSON (${(e as Error).message})`, file);
  }
  // JSON.parse keeps a repeated key's last value: the first (a section edited in one place, overridden in
  // another) would be dropped without a word
  const twice = repeatedKey(json);
  if (twice !== undefined)
    throw new ConfigError(`"${twice}" is given twice, and only its last value would be read; give each key once`, file);
  try {
    return parse(raw, path.dirname(path.resolve(file)));
  } catch (e) {
    throw ofConfigFile(e, file);
  }
}

/** The dotted path ("batch.queries", "data[1].path") of the first key an object of `json` repeats, if any. */
function repeatedKey(json: string): string | undefined {
  let i = 0;
  const space = (): void => {
    while (i < json.length && ' \t\n\r'.includes(json[i])) i++;
  };
  const string = (): string => {
    const start = i++;
    while (json[i] !== '"') i += json[i] === '\\' ? 2 : 1;
    return JSON.parse(json.slice(start, ++i)) as string;
  };
  // the text is valid JSON (parsed already): after a value comes a comma or the container's end
  const ends = (close: string): boolean => {
    space();
    return json[i++] === close;
  };
  const value = (at: string): string | undefined => {
    space();
    const open = json[i];
    if (open === '{' || open === '[') {
      const close = open === '{' ? '}' : ']';
      i++;
      space();
      if (json[i] === close) {
        i++;
        return undefined;
      }
      const keys = new Set<string>();
      for (let n = 0; ; n++) {
        let where = `${at}[${n}]`;
        if (open === '{') {
          space();
          const key = string();
          where = at ? `${at}.${key}` : key;
          if (keys.has(key)) return where;
          keys.add(key);
          space();
          i++; // the colon
        }
        const inner = value(where);
        if (inner !== undefined) return inner;
        if (ends(close)) return undefined;
      }
    }
    if (open === '"') string();
    else while (i < json.length && !',]} \t\n\r'.includes(json[i])) i++;
    return undefined;
  };
  return value('');
}
