/**
 * index.json: what an index is made of and by what. It is rewritten (atomically) after every committed
 * chunk; opening an index with another model, other prompts or another cut length is refused, because
 * vectors from different encoders live in different spaces and would silently rank nonsense.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PromptTemplates } from '../embed/index.js';
import { IndexError } from './index-error.js';

export const MANIFEST_FILE = 'index.json';
export const FORMAT = 'search-r3-index';
export const FORMAT_VERSION = 1;

export type VectorDtype = 'f32' | 'f16' | 'i8';
export type StoreKind = 'local' | 'lancedb';

export interface HnswParams {
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

export interface IndexManifest {
  format: typeof FORMAT;
  version: number;
  model: { id: string; source: string };
  templates: PromptTemplates;
  maxLength: number;
  dimension: number;
  /** Storage type of the HNSW vectors (sqlite always keeps the exact f32 vectors). */
  dtype: VectorDtype;
  metric: 'cos';
  /** How a document's title and text become the embedded text. */
  documentText: 'title-newline-text';
  store: StoreKind;
  /** LanceDB URI (local path or object storage) when store is 'lancedb'. */
  storeUri?: string;
  hnsw: HnswParams;
  counts: { documents: number; pending: number };
  createdAt: string;
  updatedAt: string;
}

export function readManifest(dir: string): IndexManifest {
  const file = path.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) throw new IndexError(`${file} is missing; this is not a search-r3 index (build one with 'search-r3 index').`);
  let m: IndexManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as IndexManifest;
  } catch (e) {
    throw new IndexError(`${file} is not valid JSON (${(e as Error).message}).`);
  }
  if (m.format !== FORMAT) throw new IndexError(`${file}: field 'format' is '${String(m.format)}', expected '${FORMAT}'.`);
  if (m.version !== FORMAT_VERSION) throw new IndexError(`${file}: index format version ${m.version} is not supported (this build reads ${FORMAT_VERSION}).`);
  for (const k of ['dimension', 'maxLength'] as const) {
    if (!Number.isInteger(m[k]) || m[k] <= 0) throw new IndexError(`${file}: field '${k}' must be a positive integer.`);
  }
  return m;
}

export function writeManifest(dir: string, m: IndexManifest): void {
  const file = path.join(dir, MANIFEST_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
  renameSync(tmp, file);
}

/** Why vectors from `backend` may not join an index built by `m`, or null when they may. */
export function incompatibility(m: IndexManifest, backend: { modelId: string; dimension: number; templates: PromptTemplates; maxLength: number }): string | null {
  if (m.model.id !== backend.modelId) return `the index was built with model ${m.model.id} (${m.model.source}) but this model is ${backend.modelId}`;
  if (m.dimension !== backend.dimension) return `the index holds ${m.dimension}-d vectors but the model gives ${backend.dimension}-d`;
  for (const k of Object.keys(m.templates) as (keyof PromptTemplates)[]) {
    if (m.templates[k] !== backend.templates[k]) return `prompt template '${k}' differs from the one the index was built with`;
  }
  if (m.maxLength !== backend.maxLength) return `the index cut texts at ${m.maxLength} tokens but this model setup cuts at ${backend.maxLength}`;
  return null;
}
