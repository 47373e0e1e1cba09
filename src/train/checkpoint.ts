/**
 * Training checkpoints: one folder per step (step-00000120/) holding the trainable weights, the
 * optimiser's moments, and state.json (step, data position, generator state, best dev score). A folder
 * is written under a temporary name and renamed into place, so a crash at any moment leaves only
 * complete checkpoints; resume takes the newest one.
 */
import { existsSync, promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';

import type { OptimizerState, RngState, Tensor } from '../tensor/index.js';
import { loadSafetensors, saveSafetensors } from '../model/safetensors.js';

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

/** Complete checkpoints under root, oldest first. */
export function listCheckpoints(root: string): { step: number; dir: string }[] {
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((n) => {
    const m = STEP_DIR.exec(n);
    return m ? [{ step: Number(m[1]), dir: path.join(root, n) }] : [];
  }).sort((a, b) => a.step - b.step);
}

/**
 * Writes a folder atomically: `write` fills a temporary sibling, which is then renamed to `dir`
 * (replacing an older folder of that name: the old one is moved aside first and removed after).
 */
export async function writeDirAtomically(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(dir);
  await fsp.mkdir(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(dir)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp);
  try {
    await write(tmp);
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = existsSync(dir) ? `${tmp}.old` : null;
  if (old) await fsp.rename(dir, old);
  await fsp.rename(tmp, dir);
  if (old) await fsp.rm(old, { recursive: true, force: true });
}

/** Removes half-written checkpoint folders a killed run left behind (they never became step-N). */
export async function removeStaleTemporaries(root: string): Promise<void> {
  if (!existsSync(root)) return;
  for (const n of readdirSync(root)) if (n.startsWith('.step-') && n.includes('.tmp-')) await fsp.rm(path.join(root, n), { recursive: true, force: true });
}

/** `extra` writes more files into the folder before it is renamed into place (a trainer's own state). */
export async function saveCheckpoint(root: string, params: readonly Tensor[], opt: OptimizerState, state: TrainerState, keep: number, extra?: (dir: string) => Promise<void>): Promise<string> {
  const dir = checkpointDir(root, state.step);
  await writeDirAtomically(dir, async (tmp) => {
    await extra?.(tmp);
    await saveSafetensors(path.join(tmp, 'trainable.safetensors'), params.map((p, i) => [paramName(p, i), { shape: [...p.shape], data: p.data }] as const));
    const moments = opt.buffers.flatMap((bufs, k) => bufs.map((b, i) => [`buffer${k}.${i}`, { shape: [b.length], data: b }] as const));
    await saveSafetensors(path.join(tmp, 'optimizer.safetensors'), moments);
    await fsp.writeFile(path.join(tmp, 'state.json'), JSON.stringify({ ...state, optimizer: { kind: opt.kind, step: opt.step, buffers: opt.buffers.length } }, null, 1));
  });
  // old checkpoints go only after the new one is in place
  const all = listCheckpoints(root);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) await fsp.rm(c.dir, { recursive: true, force: true });
  return dir;
}

export interface LoadedCheckpoint { state: TrainerState; optimizer: OptimizerState }

/** Restores parameters in place from a checkpoint folder; returns the trainer and optimiser state. */
export async function loadCheckpoint(dir: string, params: readonly Tensor[]): Promise<LoadedCheckpoint> {
  const raw = JSON.parse(await fsp.readFile(path.join(dir, 'state.json'), 'utf8')) as TrainerState & { optimizer: { kind: string; step: number; buffers: number } };
  const weights = await loadSafetensors(path.join(dir, 'trainable.safetensors'));
  if (weights.size !== params.length) throw new Error(`${dir}: the checkpoint has ${weights.size} trainable tensors, this run trains ${params.length} (a different model or LoRA setting?)`);
  params.forEach((p, i) => {
    const w = weights.get(paramName(p, i));
    if (!w || w.shape.join() !== p.shape.join()) throw new Error(`${dir}: tensor '${paramName(p, i)}' is missing or has another shape`);
    p.data.set(w.data);
  });
  const moments = await loadSafetensors(path.join(dir, 'optimizer.safetensors'));
  const buffers: Float32Array[][] = [];
  for (let k = 0; k < raw.optimizer.buffers; k++) {
    buffers.push(params.map((_, i) => {
      const b = moments.get(`buffer${k}.${i}`);
      if (!b) throw new Error(`${dir}: optimizer buffer ${k}.${i} is missing`);
      return b.data;
    }));
  }
  const { optimizer, ...state } = raw;
  return { state, optimizer: { kind: optimizer.kind, step: optimizer.step, buffers } };
}

function paramName(p: Tensor, i: number): string {
  return p.name ?? `param.${i}`;
}

