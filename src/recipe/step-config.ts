/**
 * A training step's config in <work>/configs/. The recipe writes its profile's config there each time the step
 * runs (the work folder may have moved, the step may be redone), so an edit made there would be lost without a
 * word. The settings that only decide how much memory a step takes are the user's to change, as a trainer's
 * out-of-memory advice says: they train the same steps, and a resume takes them. An edited value of one is kept
 * by every later write (recipe.json records it). Any other edit would train what the profile does not describe:
 * it is refused before anything is written, naming the keys. The recipe tells its own file from an edited one by
 * the SHA-256 of the text it last wrote.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';
import { isJsonObject, valueAtKey } from '../io/json-object.js';
import { oneLine } from '../io/one-line.js';
import { productOf } from '../train/run-record.js';
import { RecipeError } from './recipe-error.js';

/** What recipe.json keeps of a step's config file. */
export interface ConfigRecord {
  /** SHA-256 of the text the recipe last wrote. */
  sha256: string;
  /** The memory settings edited in the file (dotted key → value), which every later write keeps. */
  kept: Record<string, unknown>;
}

interface MemorySettings {
  keys: readonly string[];
  /** What they decide, for the notes. */
  what: string;
  /** Kept only together, while their product is the profile's (train lm's sequences per optimiser step). */
  sameProduct?: boolean;
}

/** By config name: the settings of each training step that trade memory for time and nothing else. */
const MEMORY_SETTINGS: Partial<Record<string, MemorySettings>> = {
  lm: {
    keys: ['batchSize', 'accumulation'],
    what: "sequences per forward pass, at the profile's batchSize × accumulation",
    sameProduct: true,
  },
  stage1: { keys: ['batch.subBatch'], what: 'sequences per forward pass' },
  stage2: { keys: ['environment.maxTableBytes'], what: "the memory of the environment's document table" },
};

/** The memory settings an edit of config `name` may change, as the refusals and the recipe's advice list them. */
export function memorySettingsSaid(name: string, profile: Record<string, unknown>): string | undefined {
  const m = MEMORY_SETTINGS[name];
  if (!m) return undefined;
  if (!m.sameProduct) return m.keys.join(', ');
  return `${m.keys.join(' and ')} while ${m.keys.join(' × ')} stays ${productOf(profile, {}, m.keys)}`;
}

export interface StepConfig {
  /** The profile's config with the kept memory settings. */
  config: Record<string, unknown>;
  /** What to write to the file. */
  text: string;
  /** What recipe.json is to record once the text is written. */
  record: ConfigRecord;
  /** Lines for the recipe's log: each memory setting kept from an edit. */
  notes: string[];
}

/**
 * The config to write to `file` for config `name`: the profile's, with the memory settings edited there kept.
 * `earlier` is what recipe.json records of the file; without it (a record from before it kept one) the file may
 * be the recipe's own older text, so its other differences are replaced, and said, rather than refused.
 */
export function stepConfig(
  file: string,
  name: string,
  profile: Record<string, unknown>,
  earlier: ConfigRecord | undefined,
): StepConfig {
  const memory = MEMORY_SETTINGS[name];
  const text = existsSync(file) ? readFileSync(file, 'utf8') : null;
  // a file removed takes its edits with it: the recipe writes the profile's config
  const kept: Record<string, unknown> = text === null ? {} : { ...earlier?.kept };
  const notes: string[] = [];
  if (text !== null && sha256(text) !== earlier?.sha256) {
    const edited = earlier !== undefined;
    const found = parsedObject(text);
    if (typeof found === 'string') {
      if (edited)
        throw new RecipeError(
          `${file} was edited since the recipe wrote it and ${found}: fix it, or remove it for the recipe to ` +
            'write its own',
        );
      notes.push(`  ${file} ${found}: written anew`);
    } else {
      const taken = memory !== undefined && takeEdited(found, profile, memory, kept);
      const others = differences(found, withSettings(profile, kept), '').filter(
        (d) => !(taken && memory.keys.includes(d.key)),
      );
      if (edited && others.length > 0) throw editRefused(file, name, profile, others);
      if (others.length > 0)
        notes.push(
          `  ${file} differed from the profile's config (${listed(others.map((d) => d.key))}): written anew, as ` +
            "recipe.json records no earlier text of the recipe's to tell an edit by",
        );
    }
  }
  for (const [key, value] of Object.entries(kept))
    notes.push(`  keeps ${key} = ${JSON.stringify(value)} from ${file} (${memory?.what ?? 'a memory setting'})`);
  const config = withSettings(profile, kept);
  const out = JSON.stringify(config, null, 2) + '\n';
  return { config, text: out, record: { sha256: sha256(out), kept }, notes };
}

/** The file's text as a JSON object, or why it is none. */
function parsedObject(text: string): Record<string, unknown> | string {
  let v: unknown;
  try {
    v = JSON.parse(withoutByteOrderMark(text));
  } catch (e) {
    return `is not JSON (${(e as Error).message})`;
  }
  return isJsonObject(v) ? v : 'is not a JSON object';
}

/**
 * Into `kept`: the memory settings whose value in the edited file is not the profile's (one put back goes).
 * False, and nothing taken, when the edit of them is another run (a product that is not the profile's).
 */
function takeEdited(
  found: Record<string, unknown>,
  profile: Record<string, unknown>,
  m: MemorySettings,
  kept: Record<string, unknown>,
): boolean {
  const edit: Record<string, unknown> = {};
  for (const key of m.keys) {
    const v = valueAtKey(found, key);
    if (v !== undefined && JSON.stringify(v) !== JSON.stringify(valueAtKey(profile, key))) edit[key] = v;
  }
  // another product is other sequences in each optimiser step: an edit, not a memory setting
  if (m.sameProduct && productOf(withSettings(profile, edit), {}, m.keys) !== productOf(profile, {}, m.keys))
    return false;
  for (const key of m.keys) delete kept[key];
  Object.assign(kept, edit);
  return true;
}

function editRefused(
  file: string,
  name: string,
  profile: Record<string, unknown>,
  found: readonly Difference[],
): RecipeError {
  const shown = (v: unknown): string => (v === undefined ? '(none)' : oneLine(JSON.stringify(v), 80));
  const changes = found.map((d) => `${d.key} is ${shown(d.there)} there, the profile's ${shown(d.profile)}`);
  const memory = memorySettingsSaid(name, profile);
  const keeps = memory
    ? `only the settings that decide how much memory a step takes (${memory})`
    : 'nothing (this step has no setting of memory alone)';
  return new RecipeError(
    `${file} was edited since the recipe wrote it: ${listed(changes, '; ')}; the recipe trains its profile's ` +
      `settings and keeps of an edit ${keeps}: to train with this edit, copy the config, give it an "output" of ` +
      `its own and run the step's command by hand; or remove ${file} for the recipe to write its own`,
  );
}

/** A copy of `config` with each dotted key of `settings` set. */
function withSettings(config: Record<string, unknown>, settings: Record<string, unknown>): Record<string, unknown> {
  const out = structuredClone(config);
  for (const [key, value] of Object.entries(settings)) {
    const parts = key.split('.');
    let at: Record<string, unknown> = out;
    for (const part of parts.slice(0, -1)) {
      if (!isJsonObject(at[part])) at[part] = {};
      at = at[part] as Record<string, unknown>;
    }
    at[parts[parts.length - 1]!] = value;
  }
  return out;
}

interface Difference {
  /** Dotted, with array indices: "optimizer.lr", "sources[0].path". */
  key: string;
  there: unknown;
  profile: unknown;
}

/** Where the file's JSON differs from the profile's, a key either lacks included. */
function differences(there: unknown, profile: unknown, at: string): Difference[] {
  const key = (k: string): string => (at ? `${at}.${k}` : k);
  if (isJsonObject(there) && isJsonObject(profile))
    return [...new Set([...Object.keys(profile), ...Object.keys(there)])].flatMap((k) =>
      differences(there[k], profile[k], key(k)),
    );
  if (Array.isArray(there) && Array.isArray(profile) && there.length === profile.length)
    return there.flatMap((v, i) => differences(v, profile[i], `${at}[${i}]`));
  return JSON.stringify(there) === JSON.stringify(profile) ? [] : [{ key: at, there, profile }];
}

/** The first five of a list, and an ellipsis for the rest. */
const listed = (items: readonly string[], separator = ', '): string =>
  items.slice(0, 5).join(separator) + (items.length > 5 ? `${separator}…` : '');

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** recipe.json's record of a config file, if it is one (a record edited by hand into another shape is none). */
export function configRecord(v: unknown): ConfigRecord | undefined {
  return isJsonObject(v) && typeof v.sha256 === 'string' && isJsonObject(v.kept)
    ? (v as unknown as ConfigRecord)
    : undefined;
}
