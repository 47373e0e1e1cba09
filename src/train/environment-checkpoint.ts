/**
 * The RL environment inside a training checkpoint: environment.safetensors holds the table's vectors
 * (F32, exact), environment.json the rest of its snapshot (row versions, drift means, counters). JSON
 * keeps the versions as integers and the Float64 means exactly (a double's shortest decimal form
 * parses back to the same double), which bit-identical resume needs.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

import { loadSafetensors, saveSafetensors } from '../model/safetensors.js';
import type { EnvironmentSnapshot } from '../rlenv/environment.js';

const TABLE_FILE = 'environment.safetensors';
const STATE_FILE = 'environment.json';

interface SavedState {
  version: number;
  steps: number;
  rows: number;
  dim: number;
  versions: number[];
  means: { version: number; mean: number[] }[];
}

/** Writes the snapshot into a (temporary) checkpoint folder. */
export async function saveEnvironment(dir: string, s: EnvironmentSnapshot): Promise<void> {
  await saveSafetensors(path.join(dir, TABLE_FILE), [['vectors', { shape: [s.rows, s.dim], data: s.vectors }]]);
  const state: SavedState = {
    version: s.version, steps: s.steps, rows: s.rows, dim: s.dim,
    versions: Array.from(s.versions), means: s.means.map((m) => ({ version: m.version, mean: Array.from(m.mean) })),
  };
  await fsp.writeFile(path.join(dir, STATE_FILE), JSON.stringify(state));
}

/** Whether a checkpoint folder holds an environment (checkpoints written before they did, do not). */
export function hasEnvironment(dir: string): boolean {
  return existsSync(path.join(dir, STATE_FILE));
}

/** The snapshot saved in a checkpoint folder, or null for a checkpoint written without one. */
export async function loadEnvironment(dir: string): Promise<EnvironmentSnapshot | null> {
  if (!hasEnvironment(dir)) return null;
  const st = JSON.parse(await fsp.readFile(path.join(dir, STATE_FILE), 'utf8')) as SavedState;
  const vectors = (await loadSafetensors(path.join(dir, TABLE_FILE))).get('vectors');
  if (!vectors) throw new Error(`${path.join(dir, TABLE_FILE)} has no "vectors" tensor`);
  return {
    version: st.version, steps: st.steps, rows: st.rows, dim: st.dim,
    vectors: vectors.data, versions: Int32Array.from(st.versions),
    means: st.means.map((m) => ({ version: m.version, mean: Float64Array.from(m.mean) })),
  };
}
