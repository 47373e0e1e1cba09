/**
 * index.json: what an index is made of and by what. It is rewritten (atomically) after every committed
 * chunk; opening an index with another model, other prompts or another cut length is refused, because
 * vectors from different encoders live in different spaces and would silently rank nonsense.
 *
 * The file carries a SHA-256 of its own content, so a damaged manifest (a flipped digit in `dimension`
 * parses as valid JSON) is told apart from a real one. Its fixed part (everything but the counts) is
 * also kept in docs.sqlite, from which a lost or damaged index.json is recovered.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { PromptTemplates } from '../embed/index.js';
import { writeFileAtomicallySync } from '../io/atomic-file.js';
import { POSITIVE_INTEGER, describeRange, inRange, listChoices } from '../io/option-checks.js';
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

export const VECTOR_DTYPES: readonly VectorDtype[] = ['f32', 'f16', 'i8'];
export const STORE_KINDS: readonly StoreKind[] = ['local', 'lancedb'];
export const HNSW_FIELDS: readonly (keyof HnswParams)[] = ['connectivity', 'expansionAdd', 'expansionSearch'];
export const DEFAULT_HNSW: HnswParams = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

/** The fields of a manifest its creator chooses, as given (a create option) or read (index.json). */
export interface ChosenFields {
  dtype: unknown;
  store: unknown;
  storeUri?: unknown;
  hnsw: unknown;
}

/**
 * The first chosen field the index cannot use ('hnsw.connectivity' for one HNSW parameter) and what it must be,
 * or undefined when all can be used. The reader of a manifest and the creator of an index both ask this, so no
 * index is created that could not be opened again.
 */
export function chosenFieldProblem(m: ChosenFields): { field: string; want: string } | undefined {
  if (!(VECTOR_DTYPES as readonly unknown[]).includes(m.dtype))
    return { field: 'dtype', want: listChoices(VECTOR_DTYPES) };
  if (!(STORE_KINDS as readonly unknown[]).includes(m.store)) return { field: 'store', want: listChoices(STORE_KINDS) };
  if (m.storeUri !== undefined && (typeof m.storeUri !== 'string' || m.storeUri.trim() === ''))
    return { field: 'storeUri', want: 'a LanceDB location (a path or a URI)' };
  const hnsw = m.hnsw as Record<string, unknown> | null;
  if (typeof hnsw !== 'object' || hnsw === null || Array.isArray(hnsw))
    return { field: 'hnsw', want: `an object of ${HNSW_FIELDS.join(', ')}` };
  const bad = HNSW_FIELDS.find((k) => !inRange(hnsw[k], POSITIVE_INTEGER));
  return bad === undefined ? undefined : { field: `hnsw.${bad}`, want: describeRange(POSITIVE_INTEGER) };
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

/** The result of reading index.json: the manifest, or why there is none to use. */
export type ManifestRead = { manifest: IndexManifest } | { problem: 'missing' | 'damaged'; message: string };

function digest(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** The manifest as stored: its JSON with a checksum of everything before it appended as the last field. */
export function sealManifest(m: IndexManifest): string {
  const body = JSON.stringify(m, null, 2);
  return JSON.stringify({ ...m, checksum: digest(body) }, null, 2) + '\n';
}

/**
 * Parses a sealed manifest, checking its checksum and the fields the index relies on. A manifest without
 * a checksum (written by an older search-r3) is accepted on its fields alone. Throws IndexError naming `file`.
 */
export function unsealManifest(text: string, file: string): IndexManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new IndexError(`${file} is damaged: not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new IndexError(`${file} is damaged: not a JSON object`);
  const { checksum, ...m } = parsed as Record<string, unknown>;
  if (checksum !== undefined && checksum !== digest(JSON.stringify(m, null, 2))) {
    throw new IndexError(`${file} is damaged: its content does not match its checksum`);
  }
  return checkFields(m, file);
}

function checkFields(m: Record<string, unknown>, file: string): IndexManifest {
  const bad = (field: string, want: string): never => {
    throw new IndexError(`${file}: field '${field}' must be ${want}`);
  };
  if (m.format !== FORMAT)
    throw new IndexError(`${file}: field 'format' is '${String(m.format)}', expected '${FORMAT}'`);
  if (m.version !== FORMAT_VERSION)
    throw new IndexError(
      `${file}: index format version ${String(m.version)} is not supported (this build reads ${FORMAT_VERSION})`,
    );
  for (const k of ['dimension', 'maxLength'] as const)
    if (!Number.isInteger(m[k]) || (m[k] as number) <= 0) bad(k, 'a positive integer');
  const model = m.model as Record<string, unknown> | undefined;
  if (typeof model?.id !== 'string' || typeof model.source !== 'string')
    bad('model', 'an object with string id and source');
  const templates = m.templates as Record<string, unknown> | undefined;
  if (
    typeof templates !== 'object' ||
    templates === null ||
    !Object.values(templates).every((t) => typeof t === 'string')
  )
    bad('templates', 'an object of strings');
  const chosen = chosenFieldProblem(m as unknown as ChosenFields);
  if (chosen) bad(chosen.field, chosen.want);
  return m as unknown as IndexManifest;
}

/** Reads index.json without throwing for a missing or damaged file (the caller may recover it from docs.sqlite). */
export function tryReadManifest(dir: string): ManifestRead {
  const file = path.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return { problem: 'missing', message: `${file} is missing` };
  try {
    return { manifest: unsealManifest(readFileSync(file, 'utf8'), file) };
  } catch (e) {
    if (!(e instanceof IndexError)) throw new IndexError(`${file} cannot be read (${(e as Error).message})`);
    return { problem: 'damaged', message: e.message };
  }
}

/** Fields every manifest has had, since the first format; damage that leaves JSON (flipped bits) takes one. */
const OWN_FIELDS = [
  'format',
  'version',
  'model',
  'templates',
  'maxLength',
  'dimension',
  'dtype',
  'metric',
  'hnsw',
  'counts',
  'createdAt',
  'updatedAt',
];

/**
 * Whether index.json in `dir` is another program's file (a web project's index.json): a JSON object with at most
 * two of a manifest's fields ('version' and 'model' are common words). A writer rewrites a damaged manifest, so
 * such a file would be lost.
 */
export function foreignManifest(dir: string): boolean {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch {
    return false;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) && OWN_FIELDS.filter((k) => k in v).length <= 2;
}

export function writeManifest(dir: string, m: IndexManifest): void {
  writeFileAtomicallySync(path.join(dir, MANIFEST_FILE), sealManifest(m));
}

/** Why vectors from `backend` may not join an index built by `m`, or null when they may. */
export function incompatibility(
  m: IndexManifest,
  backend: { modelId: string; dimension: number; templates: PromptTemplates; maxLength: number },
): string | null {
  if (m.model.id !== backend.modelId)
    return `the index was built with model ${m.model.id} (${m.model.source}) but this model is ${backend.modelId}`;
  if (m.dimension !== backend.dimension)
    return `the index holds ${m.dimension}-d vectors but the model gives ${backend.dimension}-d`;
  for (const k of Object.keys(m.templates) as (keyof PromptTemplates)[]) {
    if (m.templates[k] !== backend.templates[k])
      return `prompt template '${k}' differs from the one the index was built with`;
  }
  if (m.maxLength !== backend.maxLength)
    return `the index cut texts at ${m.maxLength} tokens but this model setup cuts at ${backend.maxLength}`;
  return null;
}
