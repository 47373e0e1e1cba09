/**
 * Document vectors saved beside a model, so that an index of the same documents by the same model is
 * filled without a forward pass: the default model ships its vectors of the demo corpus, and the demo's
 * first run loads them instead of encoding 5,183 abstracts on the CPU.
 *
 * One safetensors file: `vectors` (F32, documents × dimension, exactly the index's f32 vectors) and, in its
 * metadata, everything that produced them: the model's fingerprint, the prompt templates, the cut length,
 * the rule that joins title and text, and each document's id and content hash. A vector is used only where
 * all of these match the index being filled and the document's content; anything else is encoded as usual.
 */
import { contentHash } from './document-source.js';
import { IndexError } from './index-error.js';
import type { IndexManifest } from './manifest.js';
import { DOCUMENTS_PER_COMMIT } from './commit-chunk.js';
import type { SearchIndex } from './search-index.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../model/safetensors.js';

export const SEED_FORMAT = 'search-r3-seed-vectors';

/**
 * Where a model folder keeps its vectors of the demo corpus. A subfolder, because a model's fingerprint
 * covers the files at its top level: the vectors are made by the model and must not change its identity.
 */
export const DEMO_VECTORS_FILE = 'demo-index/vectors.safetensors';

/** What in an index's manifest decides its vectors: two indexes that agree here store the same vectors. */
function encoding(m: Readonly<IndexManifest>): Record<string, string> {
  return {
    model: m.model.id,
    templates: JSON.stringify(m.templates),
    maxLength: String(m.maxLength),
    documentText: m.documentText,
  };
}

/** Each encoding key as a message names it. */
const WHAT: Record<string, string> = {
  model: 'model',
  templates: 'prompt template',
  maxLength: 'cut length (maxLength)',
  documentText: 'rule joining title and text',
};

/** Writes the indexed documents' vectors of `index` to `file` (temp file, then rename). Returns their count. */
export async function saveSeedVectors(file: string, index: SearchIndex): Promise<number> {
  const { ids, dim, data } = index.indexedVectors();
  const hashes = ids.map((id) => contentHash(index.getDocument(id)!));
  await saveSafetensors(file, [['vectors', { shape: [ids.length, dim], data }]], {
    metadata: {
      format: SEED_FORMAT,
      ...encoding(index.info),
      ids: JSON.stringify(ids),
      hashes: JSON.stringify(hashes),
    },
  });
  return ids.length;
}

export interface SeedVectorsInfo {
  /** The fingerprint of the model that made them. */
  model: string;
  documents: number;
  dimension: number;
}

/** What a seed file holds, from its header alone (to tell a stale file without loading its vectors). */
export async function seedVectorsInfo(file: string): Promise<SeedVectorsInfo | undefined> {
  const { metadata, entries } = await readSafetensorsHeader(file);
  const shape = entries.find((e) => e.name === 'vectors')?.shape;
  if (metadata.format !== SEED_FORMAT || metadata.model === undefined || shape?.length !== 2) return undefined;
  return { model: metadata.model, documents: shape[0]!, dimension: shape[1]! };
}

export interface SeedResult {
  /** Pending documents whose vectors came from the file. */
  seeded: number;
  /** Why the file was not used at all (another model, other prompts, …); absent when it was. */
  unusable?: string;
}

/**
 * Commits from `file` the vectors of every pending chunk whose documents the file holds with the same
 * content. Chunks are those encodePending would encode, so a fully seeded index stores exactly what a
 * run that encoded everything would have (same keys, same graph). What is left stays pending.
 */
export async function seedIndex(
  index: SearchIndex,
  file: string,
  documentsPerCommit = DOCUMENTS_PER_COMMIT,
): Promise<SeedResult> {
  const { metadata, entries } = await readSafetensorsHeader(file);
  const entry = entries.find((e) => e.name === 'vectors');
  if (metadata.format !== SEED_FORMAT || !entry || entry.shape.length !== 2)
    throw new IndexError(`${file} is not a file of seed vectors (format ${metadata.format ?? 'missing'})`);
  const want = encoding(index.info);
  const differs = Object.keys(want).find((k) => metadata[k] !== want[k]);
  if (differs) return { seeded: 0, unusable: `${file} was made with another ${WHAT[differs]}` };
  const [n, dim] = entry.shape as [number, number];
  const ids = JSON.parse(metadata.ids ?? '[]') as string[];
  const hashes = JSON.parse(metadata.hashes ?? '[]') as string[];
  if (dim !== index.dimension || ids.length !== n || hashes.length !== n)
    throw new IndexError(`${file} is damaged: ${n} vectors of dimension ${dim} for ${ids.length} ids`);
  const data = (await loadSafetensors(file)).get('vectors')!.data as Float32Array;
  const row = new Map(ids.map((id, i) => [id, i]));
  let seeded = 0;
  for (const chunk of index.pendingChunks(documentsPerCommit)) {
    const rows = chunk.map((d) => row.get(d.id));
    if (rows.some((r, i) => r === undefined || hashes[r] !== contentHash(chunk[i]!))) continue;
    const vectors = rows.map((r) => data.slice(r! * dim, (r! + 1) * dim));
    await index.commitEncoded(chunk, vectors);
    seeded += chunk.length;
  }
  return { seeded };
}
