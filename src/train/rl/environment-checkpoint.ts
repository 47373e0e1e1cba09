/**
 * The RL environment inside a training checkpoint: environment.safetensors holds the table's vectors
 * (F32, exact) and the vectors of the graph's edits since it was built from the table (none at a scheduled
 * checkpoint), environment.json the rest of its snapshot (row versions, drift means, counters, the rows of
 * the graph's edits). JSON
 * keeps the versions as integers and the Float64 means exactly (a double's shortest decimal form
 * parses back to the same double), which bit-identical resume needs.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

import { saveSafetensors } from '../../model/safetensors.js';
import { type EnvironmentSnapshot, type GraphEdits, NO_GRAPH_EDITS } from '../../rlenv/environment.js';
import { checkpointDamage, isCount, readCheckpointTensors } from '../checkpoint.js';

const TABLE_FILE = 'environment.safetensors';
const STATE_FILE = 'environment.json';
const GRAPH_BASE = 'graphBaseVectors';
const GRAPH_VECTORS = 'graphVectors';

interface SavedState {
  version: number;
  steps: number;
  rows: number;
  dim: number;
  versions: number[];
  means: SavedMean[];
  /** Absent in checkpoints written before the graph's edits were saved: the graph is rebuilt from the table. */
  graphChunk?: number;
  graphBaseRows?: number[];
  graphBatches?: number[][];
}

interface SavedMean {
  version: number;
  mean: number[];
}

/** Writes the snapshot into a (temporary) checkpoint folder. */
export async function saveEnvironment(dir: string, s: EnvironmentSnapshot): Promise<void> {
  const e = s.graphEdits;
  const edits = (name: string, data: Float32Array): [string, { shape: number[]; data: Float32Array }][] =>
    data.length > 0 ? [[name, { shape: [data.length / s.dim, s.dim], data }]] : [];
  await saveSafetensors(path.join(dir, TABLE_FILE), [
    ['vectors', { shape: [s.rows, s.dim], data: s.vectors }],
    ...edits(GRAPH_BASE, e.baseVectors),
    ...edits(GRAPH_VECTORS, e.vectors),
  ]);
  const state: SavedState = {
    version: s.version,
    steps: s.steps,
    rows: s.rows,
    dim: s.dim,
    versions: Array.from(s.versions),
    means: s.means.map((m) => ({ version: m.version, mean: Array.from(m.mean) })),
    graphChunk: e.chunk,
    graphBaseRows: e.baseRows,
    graphBatches: e.batches,
  };
  await fsp.writeFile(path.join(dir, STATE_FILE), JSON.stringify(state));
}

/** Whether a checkpoint folder holds an environment (checkpoints written before they did, do not). */
function hasEnvironment(dir: string): boolean {
  return existsSync(path.join(dir, STATE_FILE));
}

/**
 * The snapshot saved in a checkpoint folder, or null for a checkpoint written without one. A file
 * that is missing, unreadable or inconsistent with the other is CheckpointDamage naming it.
 */
export async function loadEnvironment(dir: string): Promise<EnvironmentSnapshot | null> {
  const stateFile = path.join(dir, STATE_FILE),
    tableFile = path.join(dir, TABLE_FILE);
  if (!hasEnvironment(dir)) {
    if (existsSync(tableFile)) throw checkpointDamage(stateFile, `is missing, though ${TABLE_FILE} is there`);
    return null;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(stateFile, 'utf8'));
  } catch (e) {
    throw checkpointDamage(stateFile, `is not valid JSON (${(e as Error).message})`);
  }
  const problem = savedStateProblem(raw);
  if (problem) throw checkpointDamage(stateFile, problem);
  const st = raw as SavedState;
  if (!existsSync(tableFile)) throw checkpointDamage(tableFile, `is missing, though ${STATE_FILE} is there`);
  const tensors = await readCheckpointTensors(tableFile);
  const vectors = tensors.get('vectors');
  if (!vectors || vectors.shape.join() !== `${st.rows},${st.dim}`) {
    throw checkpointDamage(tableFile, `needs a "vectors" tensor of ${st.rows} × ${st.dim} (as ${STATE_FILE} says)`);
  }
  // the vectors of the graph's edits: one per row environment.json's graph edits name
  const editVectors = (name: string, rows: number): Float32Array => {
    const t = tensors.get(name);
    if (rows === 0 && !t) return new Float32Array(0);
    if (!t || t.shape.join() !== `${rows},${st.dim}`)
      throw checkpointDamage(tableFile, `needs a "${name}" tensor of ${rows} × ${st.dim} (as ${STATE_FILE} says)`);
    return t.data;
  };
  const baseRows = st.graphBaseRows ?? [],
    batches = st.graphBatches ?? [];
  const graphEdits: GraphEdits =
    st.graphChunk === undefined
      ? NO_GRAPH_EDITS
      : {
          chunk: st.graphChunk,
          baseRows,
          baseVectors: editVectors(GRAPH_BASE, baseRows.length),
          batches,
          vectors: editVectors(GRAPH_VECTORS, batches.flat().length),
        };
  return {
    version: st.version,
    steps: st.steps,
    rows: st.rows,
    dim: st.dim,
    vectors: vectors.data,
    versions: Int32Array.from(st.versions),
    means: st.means.map((m) => ({ version: m.version, mean: Float64Array.from(m.mean) })),
    graphEdits,
  };
}

/** What is wrong with a parsed environment.json, in words; null when it is consistent. */
function savedStateProblem(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'is not a JSON object';
  const s = raw as Record<string, unknown>;
  if (![s.version, s.steps, s.rows, s.dim].every(isCount)) {
    return 'needs whole numbers "version", "steps", "rows" and "dim"';
  }
  const version = s.version as number;
  const atVersion = (v: unknown): boolean => isCount(v) && v <= version;
  if (!Array.isArray(s.versions) || s.versions.length !== s.rows || !s.versions.every(atVersion)) {
    return `needs "versions": ${String(s.rows)} row versions, none above version ${version}`;
  }
  const meanOk = (m: unknown): boolean =>
    typeof m === 'object' &&
    m !== null &&
    atVersion((m as SavedMean).version) &&
    Array.isArray((m as SavedMean).mean) &&
    (m as SavedMean).mean.length === s.dim &&
    (m as SavedMean).mean.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!Array.isArray(s.means) || !s.means.every(meanOk)) {
    return `needs "means": {version, mean of ${String(s.dim)} numbers} each`;
  }
  if (s.graphChunk !== undefined && !(isCount(s.graphChunk) && s.graphChunk >= 1)) {
    return 'needs "graphChunk" (rows a graph build inserted at a time) to be a whole number ≥ 1';
  }
  const row = (r: unknown): boolean => isCount(r) && r < (s.rows as number);
  const rows = (v: unknown): boolean => Array.isArray(v) && v.every(row);
  if (
    (s.graphBaseRows !== undefined && !rows(s.graphBaseRows)) ||
    (s.graphBatches !== undefined && !(Array.isArray(s.graphBatches) && s.graphBatches.every(rows)))
  ) {
    return `needs "graphBaseRows" (rows) and "graphBatches" (lists of rows), each row below ${String(s.rows)}`;
  }
  return null;
}
