/**
 * What defines a training run, recorded in its folder (run-config.json) and checked on --resume: the
 * stage, the resolved config, the fingerprint of each model or tokenizer folder it starts from, and the
 * content of each data file it reads (data-stamps.ts). Its checkpoints, metrics.jsonl and final/ are one
 * trajectory only if what shaped it stays the same: a resume on another model, other data, seed or batch
 * shape, or into another stage's folder, would mix two runs under one name. The settings the docs ask
 * users to change on a resume (RESUMABLE), and those that only say how a step is computed (a GradCache chunk,
 * train lm's batch split into forward passes), may differ; each resume's changes are kept in the record's
 * "resumes", so the folder says under which settings every step ran. The dashboard shows the record's
 * "config": the latest session's.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { modelFingerprint } from '../model/model-fingerprint.js';
import {
  type DataChange,
  type DataRead,
  type DataStamps,
  describeDataChange,
  recordedStamps,
  stampData,
} from './data-stamps.js';
import { RunFolderError } from './run-folder-error.js';
import { RUN_CONFIG_FILE } from './run-watch.js';
import { isJsonObject, valueAtKey } from '../io/json-object.js';

export type Stage = 'lm' | 'sft' | 'rl';

/** A run as its trainer describes it, before anything is loaded. */
export interface RunDescription {
  stage: Stage;
  /** The resolved config; its "output" is the folder itself and not compared. */
  config: object;
  /** The stage's defaults: a key a record lacks (it came with a later search-r3) counts as its default. */
  defaults: object;
  /** Config keys naming a model or tokenizer folder, compared by fingerprint: the folder may move. */
  folders: readonly string[];
  /** The data files the run reads, under the config keys that name them, compared by content. */
  data: readonly DataRead[];
  /** Config sections this run may change beyond RESUMABLE: an audit's environment, the section it measures. */
  mayChange?: readonly string[];
  /**
   * Config keys a resume may trade against each other while their product stays: train lm's batchSize and
   * accumulation, whose product is the sequences of one optimiser step however many forward passes take them
   * (the trainer reads a step's sequences, and normalises its loss, the same way for every split).
   */
  sameProduct?: readonly string[];
}

/**
 * Settings a resume may change, each recorded: a longer or shorter run ("150 steps, then resumed with
 * steps 450"), the learning rate and clipping after a divergence ("edit optimizer.lr, then --resume"),
 * what only says when to checkpoint, evaluate or how to store the result, and what only says how much of a
 * step one forward pass holds: train sft's batch.subBatch (GradCache gives plain backprop's gradients chunk
 * by chunk, docs/stage1.md), the setting to lower after running out of memory. Anything else changes what
 * the remaining steps train on, or how, and needs a run of its own.
 */
const RESUMABLE = [
  'steps',
  'epochs',
  'optimizer.lr',
  'optimizer.minLr',
  'optimizer.warmupSteps',
  'optimizer.maxGradNorm',
  'checkpoint.every',
  'checkpoint.keep',
  'eval.every',
  'saveDtype',
  'environment.maxTableBytes',
  'batch.subBatch',
];

/** One setting that differs from the record, by its config key ("batch.queries", "data[0].path"). */
export interface SettingChange {
  key: string;
  from: unknown;
  to: unknown;
  /** A model or tokenizer folder with the same fingerprint under another path. */
  moved?: boolean;
}

interface ResumeEntry {
  step: number;
  at: string;
  /** The settings this resume changed; null: the folder had no record to check against. */
  changed: Record<string, { from: unknown; to: unknown }> | null;
}

/** run-config.json as this version writes it. */
interface RunRecord {
  stage: Stage;
  config: Record<string, unknown>;
  fingerprints: Record<string, string | null>;
  /** Absent in records written before data was recorded by content. */
  data?: DataStamps;
  resumes: ResumeEntry[];
}

/** The command that continues a run from its checkpoint, as a refusal of it names it and what else to do. */
export interface Continuation {
  /** "--resume". */
  name: string;
  /** "resume". */
  verb: string;
  /** How this command starts another run instead, if it can. */
  anotherRun?: string;
}

export const TRAIN_RESUME: Continuation = {
  name: '--resume',
  verb: 'resume',
  anotherRun: 'give this config a new "output" folder',
};

/** What the run folder's record says about a run about to start or resume there; written by `write`. */
export class RunCheck {
  /** This resume's changes; null for a fresh run, or a resume with no record to check them against. */
  private changed: SettingChange[] | null = null;
  /** The data's stamps as checkResume found them (so write hashes nothing twice); null until then. */
  private stamps: DataStamps | null = null;

  private constructor(
    private readonly file: string,
    private readonly run: RunDescription,
    private readonly fingerprints: Record<string, string | null>,
    /** The record as the run's last session left it; null when the folder has none with the settings. */
    private readonly earlier: RunRecord | null,
  ) {}

  /** Reads the record of `output`; a folder of another stage is refused in one RunFolderError sentence. */
  static async read(output: string, run: RunDescription): Promise<RunCheck> {
    const file = path.join(output, RUN_CONFIG_FILE);
    const recorded = readRecord(file);
    const stage = recorded?.stage;
    if (typeof stage === 'string' && stage !== run.stage)
      throw new RunFolderError(
        `${output} is the run folder of a train ${stage} run (${file} says so), not of train ${run.stage}; give ` +
          `train ${run.stage} an "output" folder of its own`,
      );
    const complete = isRecord(recorded) && isJsonObject(recorded.config) && isJsonObject(recorded.fingerprints);
    return new RunCheck(file, run, await folderFingerprints(run), complete ? (recorded as RunRecord) : null);
  }

  /**
   * Refuses, in one RunFolderError sentence, a resume whose settings differ from the record's beyond RESUMABLE,
   * or whose data files hold other content than the record's (data-stamps.ts).
   */
  async checkResume(by: Continuation = TRAIN_RESUME): Promise<void> {
    if (this.earlier === null) return;
    const changes = settingChanges(this.earlier, this.run, this.fingerprints);
    const also = this.run.mayChange ?? [];
    const traded = sameProduct(this.earlier, this.run);
    const fixed = changes.filter((c) => !resumable(c, also) && !(traded && this.run.sameProduct?.includes(c.key)));
    if (fixed.length > 0) {
      const output = path.dirname(this.file);
      const may = [
        ...RESUMABLE.filter((k) => has(this.run.config, k)),
        ...also.map((k) => `${k}.*`),
        ...productNote(this.earlier, this.run),
      ].join(', ');
      throw new RunFolderError(
        `${output} holds a train ${this.run.stage} run started with other settings than this config's: ` +
          `${fixed.map(describeChange).join('; ')}; ${by.name} continues a run only with the settings it started ` +
          `with (it may change ${may}): ${by.verb} with the earlier config (recorded in ${this.file})` +
          (by.anotherRun ? `, or ${by.anotherRun}` : ''),
      );
    }
    const { stamps, changes: dataChanges } = await stampData(this.run.data, recordedStamps(this.earlier.data));
    if (dataChanges.length > 0) throw this.dataChanged(dataChanges, by);
    this.changed = changes;
    this.stamps = stamps;
  }

  private dataChanged(changes: readonly DataChange[], by: Continuation): RunFolderError {
    return new RunFolderError(
      `${path.dirname(this.file)} holds a train ${this.run.stage} run whose data is not what it trained on: ` +
        `${changes.map(describeDataChange).join('; ')}; ${by.name} continues a run only on the data it started ` +
        `with: put back the data as it was (${this.file} records each file's size and SHA-256)` +
        (by.anotherRun ? `, or ${by.anotherRun} to train on the data as it is now` : ''),
    );
  }

  /**
   * The lines said on resume: the changes it makes, or that the folder had nothing to check them against;
   * and when the record is from before data was recorded by content, that the data could not be checked.
   */
  resumeNotes(): string[] {
    if (this.changed === null)
      return [
        `${path.dirname(this.file)} has no record of the settings its checkpoints were trained with (no ` +
          `${RUN_CONFIG_FILE} with them), so this resume cannot be checked against them; this run's are recorded ` +
          'from here on',
      ];
    const notes: string[] = [];
    if (this.changed.length > 0)
      notes.push(
        `resuming with changed settings (recorded in ${this.file}): ${this.changed.map(describeChange).join('; ')}`,
      );
    if (recordedStamps(this.earlier?.data) === null)
      notes.push(
        `${this.file} does not record its data files' content (an earlier search-r3 wrote it), so this resume ` +
          'cannot check that they are unchanged; they are recorded from here on',
      );
    return notes;
  }

  /** Writes the record: this session's config, and on a resume (from `step`) an entry of what it changed. */
  async write(write: (file: string, text: string) => Promise<void>, resumedAt: number | null): Promise<void> {
    // a fresh run starts its own record, whatever an earlier run that wrote no checkpoint left
    const resumes = resumedAt !== null && Array.isArray(this.earlier?.resumes) ? [...this.earlier.resumes] : [];
    if (resumedAt !== null) {
      const changed =
        this.changed && Object.fromEntries(this.changed.map((c) => [c.key, { from: c.from, to: c.to }] as const));
      resumes.push({ step: resumedAt, at: new Date().toISOString(), changed });
    }
    // a file touched or copied since is recorded with its mtime now, so the next resume trusts it unread
    const data = this.stamps ?? (await stampData(this.run.data, null)).stamps;
    const record: RunRecord = {
      stage: this.run.stage,
      config: this.run.config as Record<string, unknown>,
      fingerprints: this.fingerprints,
      data,
      resumes,
    };
    await write(this.file, JSON.stringify(record, null, 2) + '\n');
  }
}

const isRecord = (v: unknown): v is Partial<RunRecord> => isJsonObject(v);
const resumable = (c: SettingChange, also: readonly string[]): boolean =>
  c.moved === true || RESUMABLE.includes(c.key) || also.some((k) => c.key === k || c.key.startsWith(`${k}.`));

/** The stage a run folder's record names (lm, sft, rl); null when it has no readable record. */
export function recordedStage(output: string): string | null {
  const stage = readRecord(path.join(output, RUN_CONFIG_FILE))?.stage;
  return typeof stage === 'string' ? stage : null;
}

/** The record as parsed; null when there is none or it is not JSON (nothing then to check against). */
function readRecord(file: string): Partial<RunRecord> | null {
  if (!existsSync(file)) return null;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return isRecord(v) ? v : null;
  } catch {
    return null;
  }
}

/** The fingerprint of each folder the run starts from; null for none or an unreadable one (its loader says why). */
async function folderFingerprints(run: RunDescription): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const key of run.folders) {
    const dir = (run.config as Record<string, unknown>)[key];
    out[key] = typeof dir === 'string' && dir !== '' ? await modelFingerprint(dir).catch(() => null) : null;
  }
  return out;
}

/** How this run's settings differ from the record's, a folder by its fingerprint (its path may change). */
function settingChanges(
  earlier: RunRecord,
  run: RunDescription,
  fingerprints: Record<string, string | null>,
): SettingChange[] {
  const now = { ...(run.config as Record<string, unknown>) };
  const before = { ...earlier.config };
  // a path that stands where it stood beside the run folder moved with it (the work folder copied to another
  // machine, or renamed): the same file, found where the run now is
  const wasOutput = before.output,
    isOutput = now.output;
  const movedAlong = (from: unknown, to: unknown): boolean =>
    typeof from === 'string' &&
    typeof to === 'string' &&
    typeof wasOutput === 'string' &&
    typeof isOutput === 'string' &&
    path.isAbsolute(from) &&
    path.isAbsolute(to) &&
    path.relative(wasOutput, from) === path.relative(isOutput, to);
  delete now.output;
  delete before.output;
  const out: SettingChange[] = [];
  for (const key of run.folders) {
    const was = earlier.fingerprints[key] ?? null,
      is = fingerprints[key] ?? null;
    const from = before[key],
      to = now[key];
    // the same model found under another path: a move, not a change of what trains
    if (was !== null && was === is) {
      if (from !== to) out.push({ key, from, to, moved: true });
    } else if (was !== null && is !== null)
      out.push({ key, from: `${String(from)} (${was})`, to: `${String(to)} (${is})` });
    else if (from !== to) out.push({ key, from, to });
    delete now[key];
    delete before[key];
  }
  differences(before, now, run.defaults, '', out);
  return out.map((c) => (c.moved !== true && movedAlong(c.from, c.to) ? { ...c, moved: true } : c));
}

function differences(before: unknown, now: unknown, defaults: unknown, at: string, out: SettingChange[]): void {
  const key = (k: string): string => (at ? `${at}.${k}` : k);
  if (isJsonObject(before) && isJsonObject(now)) {
    const d = isJsonObject(defaults) ? defaults : {};
    // a key this search-r3 no longer has cannot change how it trains; one the record lacks came with a
    // later search-r3, and the run ran with its default
    for (const k of Object.keys(now)) {
      const was = k in before ? before[k] : k in d ? d[k] : undefined;
      differences(was, now[k], d[k], key(k), out);
    }
  } else if (Array.isArray(before) && Array.isArray(now) && before.length === now.length) {
    before.forEach((v, i) => differences(v, now[i], undefined, `${at}[${i}]`, out));
  } else if (JSON.stringify(before) !== JSON.stringify(now)) {
    out.push({ key: at, from: before, to: now });
  }
}

/** The product of `keys` in a config, each value a record lacks taken from `defaults`; null if one is no number. */
export function productOf(config: object, defaults: object, keys: readonly string[]): number | null {
  let product = 1;
  for (const key of keys) {
    const v = valueAtKey(config, key) ?? valueAtKey(defaults, key);
    if (typeof v !== 'number') return null;
    product *= v;
  }
  return product;
}

/** Whether the run's sameProduct keys multiply to what the record's did (true when it has none). */
function sameProduct(earlier: RunRecord, run: RunDescription): boolean {
  const keys = run.sameProduct ?? [];
  const was = productOf(earlier.config, run.defaults, keys);
  return was !== null && was === productOf(run.config, run.defaults, keys);
}

/** The refusal's words for the sameProduct keys: which of their combinations a resume may take. */
function productNote(earlier: RunRecord, run: RunDescription): string[] {
  const keys = run.sameProduct ?? [];
  const was = productOf(earlier.config, run.defaults, keys);
  if (keys.length === 0 || was === null) return [];
  return [`${keys.join(' and ')} while ${keys.join(' × ')} stays ${was}`];
}

/** Whether the config has the key ("optimizer.lr"). */
function has(config: object, key: string): boolean {
  let v: unknown = config;
  for (const part of key.split('.')) {
    if (!isJsonObject(v) || !(part in v)) return false;
    v = v[part];
  }
  return true;
}

function shown(v: unknown): string {
  if (v === undefined) return '(none)';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

function describeChange(c: SettingChange): string {
  return `${c.key}${c.moved ? ' (moved)' : ''} ${shown(c.from)} → ${shown(c.to)}`;
}
