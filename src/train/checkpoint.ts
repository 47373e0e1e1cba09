/**
 * Training checkpoints: one folder per step (step-00000120/) holding the trainable weights, the
 * optimiser's moments, state.json (step, data position, generator state, best dev score) and
 * checksums.sha256 (the SHA-256 of every other file). A folder is written under a temporary name and
 * renamed into place, so a crash at any moment leaves only complete checkpoints; resume takes the
 * newest one that reads back intact, and says which newer ones it skipped as damaged.
 */
import { existsSync, promises as fsp, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { hostKernels, type OptimizerState, type RngState, type Tensor } from '../tensor/index.js';
import { ModelFileError } from '../model/model-file-error.js';
import { loadSafetensors, saveSafetensors, type TensorData } from '../model/safetensors.js';
import { recoverSetAside, writeDirAtomically } from '../io/atomic-file.js';
import { CHECKSUMS_FILE, unlistedFiles, verifyChecksums, writeChecksums } from '../io/checksums.js';
import { RunFolderError } from './run-folder-error.js';
import { isJsonObject } from '../io/json-object.js';

export interface TrainerState {
  /** Optimiser steps done. */
  step: number;
  /** Next batch to train on: epoch and batch index within its plan. */
  epoch: number;
  batchIndex: number;
  /** Dropout generator. */
  rng: RngState;
  bestScore: number | null;
  bestStep: number | null;
}

const STEP_DIR = /^step-(\d{8})$/;

export function checkpointDir(root: string, step: number): string {
  return path.join(root, `step-${String(step).padStart(8, '0')}`);
}

/**
 * Complete checkpoints under root, oldest first. A step folder that a rewrite killed between its two renames
 * left aside (`.step-N.<pid>.<stamp>.tmp.old`, its only copy) is renamed back first, so it is listed.
 */
export function listCheckpoints(root: string): { step: number; dir: string }[] {
  if (!existsSync(root)) return [];
  for (const n of readdirSync(root)) {
    const setAside = /^\.(step-\d{8})\..*\.tmp\.old$/.exec(n);
    if (setAside) recoverSetAside(path.join(root, setAside[1]!));
  }
  return readdirSync(root)
    .flatMap((n) => {
      const m = STEP_DIR.exec(n);
      return m ? [{ step: Number(m[1]), dir: path.join(root, n) }] : [];
    })
    .sort((a, b) => a.step - b.step);
}

/**
 * Removes half-written checkpoint folders a killed run left behind (they never became step-N): temporary
 * siblings of a step folder, as writeDirAtomically names them (`.step-N.<pid>.<stamp>.tmp`, `.tmp.old`),
 * and as checkpoints already on disk may name them (`.step-N.tmp-<pid>-<stamp>`). A step folder set aside
 * as the only copy of its step has been renamed back by listCheckpoints before a run begins.
 */
export async function removeStaleTemporaries(root: string): Promise<void> {
  if (!existsSync(root)) return;
  for (const n of readdirSync(root)) {
    const halfWritten = n.startsWith('.step-') && n.includes('.tmp');
    if (halfWritten) await fsp.rm(path.join(root, n), { recursive: true, force: true });
  }
}

/** state.json as written: the trainer's state, the optimiser's layout, and the manifest's name. */
interface SavedState extends TrainerState {
  optimizer: { kind: string; step: number; buffers: number };
  /** Set by checkpoints written with a manifest, so that a lost manifest is noticed. */
  checksums?: string;
}

/**
 * Writes step `state.step`'s checkpoint folder. `extra` writes more files into it first (a trainer's
 * own state); the SHA-256 manifest of every file goes in last, inside the temporary folder, so it is
 * in place exactly when the checkpoint is. Throws NonFiniteCheckpoint, writing nothing, when a weight or
 * an optimizer moment is NaN or Inf.
 */
export async function saveCheckpoint(
  root: string,
  params: readonly Tensor[],
  opt: OptimizerState,
  state: TrainerState,
  keep: number,
  extra?: (dir: string) => Promise<void>,
): Promise<string> {
  const dir = checkpointDir(root, state.step);
  const weights = params.map((p, i) => [paramName(p, i), { shape: [...p.shape], data: p.read() }] as const);
  const moments = opt.buffers.flatMap((bufs, k) =>
    bufs.map((b, i) => [`buffer${k}.${i}`, { shape: [b.length], data: b }] as const),
  );
  // resume refuses a NaN or Inf as damage, so a checkpoint holding one could never be resumed; checked
  // before anything is written, so the newest checkpoint on disk stays the last one that can be
  const allFinite = (a: Float32Array): boolean => hostKernels().allFinite(a);
  const bad = weights.find(([, t]) => !allFinite(t.data));
  if (bad) throw new NonFiniteCheckpoint(`the weights of "${bad[0]}"`);
  const badMoment = moments.find(([, t]) => !allFinite(t.data));
  if (badMoment) {
    const [k, i] = badMoment[0].slice('buffer'.length).split('.').map(Number) as [number, number];
    throw new NonFiniteCheckpoint(
      `the optimizer's state "${badMoment[0]}" (${opt.kind} buffer ${k} of "${paramName(params[i]!, i)}")`,
    );
  }
  await writeDirAtomically(dir, async (tmp) => {
    await extra?.(tmp);
    await saveSafetensors(path.join(tmp, WEIGHTS_FILE), weights);
    await saveSafetensors(path.join(tmp, MOMENTS_FILE), moments);
    const optimizer = { kind: opt.kind, step: opt.step, buffers: opt.buffers.length };
    const saved: SavedState = { ...state, optimizer, checksums: CHECKSUMS_FILE };
    await fsp.writeFile(path.join(tmp, STATE_FILE), JSON.stringify(saved, null, 1));
    await writeChecksums(tmp);
  });
  // old checkpoints go only after the new one is in place
  const all = listCheckpoints(root);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) await fsp.rm(c.dir, { recursive: true, force: true });
  return dir;
}

/** A checkpoint not written because a tensor it would hold is NaN or Inf (`what` names the tensor). */
export class NonFiniteCheckpoint extends Error {
  constructor(readonly what: string) {
    super(`${what} holds NaN or Inf`);
    this.name = 'NonFiniteCheckpoint';
  }
}

const WEIGHTS_FILE = 'trainable.safetensors';
const MOMENTS_FILE = 'optimizer.safetensors';
const STATE_FILE = 'state.json';

/** A checkpoint file that cannot be used as written: missing, unreadable, or not what was saved. */
export class CheckpointDamage extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'CheckpointDamage';
  }
}

/** The damage of `file`, described in words after its name. */
export function checkpointDamage(file: string, why: string): CheckpointDamage {
  return new CheckpointDamage(file, `${file} ${why}`);
}

/** Reads a trainer's own files of a checkpoint (the RL environment); throws CheckpointDamage. */
export type ExtraReader<X> = (dir: string) => Promise<X>;

/** A checkpoint read into memory and checked, not yet applied to a model. */
export interface CheckpointContents<X> {
  dir: string;
  state: TrainerState;
  optimizer: SavedState['optimizer'];
  weights: Map<string, TensorData>;
  moments: Map<string, TensorData>;
  /** What the trainer's reader made of its own files (null without one). */
  extra: X | null;
  /** Files in the folder its manifest does not list: not read, and not checked. */
  unlisted: string[];
}

/**
 * Reads and checks one checkpoint folder without touching it or any model: its manifest first (a
 * checkpoint from before manifests has none and is read as before), then every file. Throws
 * CheckpointDamage naming the first file that is missing or not what was written.
 */
export async function readCheckpoint<X>(
  dir: string,
  step: number,
  readExtra?: ExtraReader<X>,
): Promise<CheckpointContents<X>> {
  const check = await verifyChecksums(dir);
  if (check) throw checkpointDamage(check.file, check.why);
  const hasManifest = check === null;
  const saved = await readStateFile(dir, step);
  if (!hasManifest && saved.checksums !== undefined) {
    const why = 'is missing, though state.json says the checkpoint was written with it';
    throw checkpointDamage(path.join(dir, saved.checksums), why);
  }
  const weights = await readCheckpointTensors(path.join(dir, WEIGHTS_FILE));
  const moments = await readCheckpointTensors(path.join(dir, MOMENTS_FILE));
  const extra = readExtra ? await readExtra(dir) : null;
  const { optimizer, checksums: _, ...state } = saved;
  const unlisted = hasManifest ? await unlistedFiles(dir) : [];
  return { dir, state, optimizer, weights, moments, extra, unlisted };
}

async function readStateFile(dir: string, step: number): Promise<SavedState> {
  const file = path.join(dir, STATE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    throw checkpointDamage(file, isMissing(e) ? 'is missing' : `is not valid JSON (${(e as Error).message})`);
  }
  const problem = stateProblem(raw, step);
  if (problem) throw checkpointDamage(file, problem);
  return raw as SavedState;
}

const isMissing = (e: unknown): boolean => (e as NodeJS.ErrnoException).code === 'ENOENT';
/** A whole number ≥ 0, as the counts in state files are. */
export const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isU32 = (v: unknown): boolean => isCount(v) && (v as number) < 2 ** 32;
const isScoreOrNull = (v: unknown): boolean => v === null || (typeof v === 'number' && Number.isFinite(v));

/** What is wrong with a parsed state.json of the folder of `step`, in words; null when nothing is. */
function stateProblem(raw: unknown, step: number): string | null {
  if (!isJsonObject(raw)) return 'is not a JSON object';
  if (raw.step !== step) return `says step ${JSON.stringify(raw.step)}, but its folder is step ${step}`;
  if (!isCount(raw.epoch) || !isCount(raw.batchIndex)) return 'needs whole numbers "epoch" and "batchIndex"';
  const rng = raw.rng;
  const rngOk =
    Array.isArray(rng) &&
    (rng.length === 4 || rng.length === 5) &&
    rng.slice(0, 4).every(isU32) &&
    (rng.length === 4 || (typeof rng[4] === 'number' && Number.isFinite(rng[4])));
  if (!rngOk) return 'needs "rng": four 32-bit integers (and a spare normal)';
  if (!isScoreOrNull(raw.bestScore) || !(raw.bestStep === null || isCount(raw.bestStep))) {
    return 'needs "bestScore" and "bestStep" (numbers or null)';
  }
  const o = raw.optimizer;
  if (!isJsonObject(o) || typeof o.kind !== 'string' || !isCount(o.step) || !isCount(o.buffers)) {
    return 'needs "optimizer": {kind, step, buffers}';
  }
  if (raw.checksums !== undefined && raw.checksums !== CHECKSUMS_FILE) {
    return `names "checksums" ${JSON.stringify(raw.checksums)}, not ${CHECKSUMS_FILE}`;
  }
  return null;
}

/** A checkpoint's tensors; a file that does not read back as finite safetensors is damage. */
export async function readCheckpointTensors(file: string): Promise<Map<string, TensorData>> {
  let tensors: Map<string, TensorData>;
  try {
    tensors = await loadSafetensors(file);
  } catch (e) {
    if (e instanceof ModelFileError) throw new CheckpointDamage(file, e.message);
    throw e;
  }
  // training never checkpoints a NaN or Inf (saveCheckpoint refuses to), so one is damage
  for (const [name, t] of tensors) {
    if (!t.data.every(Number.isFinite)) throw checkpointDamage(file, `holds NaN or Inf in "${name}"`);
  }
  return tensors;
}

/** A resumable checkpoint, and the newer ones that were skipped because they are damaged. */
export interface ResumePoint<X> {
  contents: CheckpointContents<X>;
  skipped: CheckpointDamage[];
}

/**
 * The newest checkpoint under root that reads back intact, newest first; damaged ones are skipped
 * (and listed). Nothing under root is changed. Throws RunFolderError when none is intact.
 */
export async function readNewestCheckpoint<X>(root: string, readExtra?: ExtraReader<X>): Promise<ResumePoint<X>> {
  const all = listCheckpoints(root).reverse();
  if (all.length === 0) throw new RunFolderError(`--resume: ${root} has no checkpoint to resume from`);
  const skipped: CheckpointDamage[] = [];
  for (const c of all) {
    try {
      return { contents: await readCheckpoint(c.dir, c.step, readExtra), skipped };
    } catch (e) {
      if (!(e instanceof CheckpointDamage)) throw e;
      skipped.push(e);
    }
  }
  throw new RunFolderError(
    `no checkpoint in ${root} can be resumed: ${skipped.map((e) => e.message).join('; ')}; ` +
      'restore the run folder from a backup, or train again into a new output folder',
  );
}

/** The file in best/ that says which step's model it is and its dev score. */
export const BEST_STAMP = 'best-step.json';

/** best/'s step and dev score, or null when it has no readable stamp (no best/ yet, or one written before it). */
export function readBestStamp(bestDir: string): { step: number; ndcg10: number } | null {
  try {
    const j = JSON.parse(readFileSync(path.join(bestDir, BEST_STAMP), 'utf8')) as { step?: unknown; ndcg10?: unknown };
    return Number.isInteger(j.step) && Number.isFinite(j.ndcg10)
      ? { step: j.step as number, ndcg10: j.ndcg10 as number }
      : null;
  } catch {
    return null;
  }
}

/**
 * Where a run starts: the newest intact checkpoint of its folder on --resume, else null for a fresh run
 * (refused when its folder already has checkpoints, which only --resume continues). A run stopped before its
 * first checkpoint (a kill, a lost machine) has nothing to lose: --resume starts it again from step 0, so that
 * resuming after any stop finishes the run, as a loop of --resume sessions relies on.
 */
export async function startingCheckpoint<X>(
  output: string,
  resume: boolean,
  readExtra?: ExtraReader<X>,
): Promise<ResumePoint<X> | null> {
  const root = path.join(output, 'checkpoints');
  const existing = listCheckpoints(root);
  if (resume && existing.length > 0) return readNewestCheckpoint(root, readExtra);
  if (existing.length > 0) {
    throw new RunFolderError(
      `${output} already has checkpoints (newest step ${existing[existing.length - 1]!.step}); ` +
        'pass --resume to continue it, or choose another output folder',
    );
  }
  // a finished run whose checkpoints were deleted to save space: a fresh run would replace its models and log;
  // but a best/ of step 0 is the model the run starts from, left by a run stopped before its first checkpoint,
  // and starting again loses nothing
  const bestDir = path.join(output, 'best');
  const models = ['final', 'best'].filter(
    (d) => existsSync(path.join(output, d)) && !(d === 'best' && readBestStamp(bestDir)?.step === 0),
  );
  if (models.length > 0) {
    throw new RunFolderError(
      `${output} holds the models of an earlier run (${models.map((d) => `${d}/`).join(', ')}) and no checkpoint ` +
        'to resume from; choose another output folder, or delete that one to train again',
    );
  }
  return null;
}

/** One line per damaged checkpoint that resume skipped, saying where it resumes instead. */
export function skippedCheckpointNotes(p: ResumePoint<unknown>): string[] {
  const from = `${p.contents.dir} (step ${p.contents.state.step})`;
  return p.skipped.map((e) => `warning: ${e.message}; resuming from ${from} instead`);
}

/** A line naming the files of a resumed checkpoint that its manifest does not list; null when there are none. */
export function unlistedFilesNote(c: CheckpointContents<unknown>): string | null {
  if (c.unlisted.length === 0) return null;
  const files = c.unlisted.join(', ');
  return `${c.dir} also holds ${files}, which its ${CHECKSUMS_FILE} does not list: not read, not checked`;
}

/**
 * Puts a checked checkpoint's weights into `params` (all or nothing: every tensor is checked against
 * this run's parameters first) and returns the trainer's and the optimiser's state.
 */
export function applyCheckpoint(c: CheckpointContents<unknown>, params: readonly Tensor[]): LoadedCheckpoint {
  const unfit = (what: string): RunFolderError =>
    new RunFolderError(`${c.dir}: ${what}; resume with the config the run was started with`);
  if (c.weights.size !== params.length) {
    const counts = `the checkpoint has ${c.weights.size} trainable tensors, this run trains ${params.length}`;
    throw unfit(`${counts} (a different model or LoRA setting?)`);
  }
  const weights = params.map((p, i) => {
    const w = c.weights.get(paramName(p, i));
    if (!w || w.shape.join() !== p.shape.join()) {
      throw unfit(`tensor '${paramName(p, i)}' is missing or has another shape`);
    }
    return w.data;
  });
  const buffers: Float32Array[][] = [];
  for (let k = 0; k < c.optimizer.buffers; k++) {
    buffers.push(
      params.map((p, i) => {
        const b = c.moments.get(`buffer${k}.${i}`);
        if (!b || b.data.length !== p.size) throw unfit(`optimizer buffer ${k}.${i} is missing or has another size`);
        return b.data;
      }),
    );
  }
  params.forEach((p, i) => p.write(weights[i]!));
  return { state: c.state, optimizer: { kind: c.optimizer.kind, step: c.optimizer.step, buffers } };
}

export interface LoadedCheckpoint {
  state: TrainerState;
  optimizer: OptimizerState;
}

function paramName(p: Tensor, i: number): string {
  return p.name ?? `param.${i}`;
}
