/** Shared by the index and serve tests: a tiny random model saved as a model folder, and small corpora. */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import assert from 'node:assert/strict';
import path from 'node:path';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import type { SourceDocument } from '../../src/search-index/document-source.js';
import { type CreateIndexOptions, SearchIndex } from '../../src/search-index/search-index.js';
import { tinyModel } from '../helpers/tiny-model.js';

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `sr3-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A tiny random model written to `<dir>/model` (seed picks the weights: different seeds, different models). */
export async function tinyModelDir(dir: string, seed = 7): Promise<string> {
  const modelDir = path.join(dir, `model-${seed}`);
  await saveModelFolder(modelDir, tinyModel(seed, { hiddenSize: 32, maxPositionEmbeddings: 256 }));
  return modelDir;
}

export async function tinyBackend(modelDir: string): Promise<LocalBackend> {
  return LocalBackend.fromModelDir(modelDir, { maxLength: 128 });
}

const WORDS = [
  'protein',
  'cell',
  'cancer',
  'vaccine',
  'gene',
  'brain',
  'heart',
  'virus',
  'drug',
  'trial',
  'mouse',
  'dose',
  'risk',
  'blood',
  'immune',
  'tumor',
  'signal',
  'receptor',
  'enzyme',
  'therapy',
];

/** n small documents with varied lengths and vocabulary, deterministic. */
export function corpus(n: number, seed = 1): SourceDocument[] {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return Array.from({ length: n }, (_, i) => {
    const len = 3 + Math.floor(rnd() * 20);
    const text = Array.from({ length: len }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ');
    return {
      id: `d${String(i).padStart(3, '0')}`,
      title: `${WORDS[i % WORDS.length]} study ${i}`,
      text,
      metadata: { n: i },
    };
  });
}

/**
 * Equal up to float rounding. The native kernels' blocking depends on the batch shape (how many texts and
 * how long the longest is), so a text embedded in another batch may differ in the last bits (measured
 * ≤ 2e-7; the pure-TS backend is batch-invariant). A different model or prompt differs by ~1e-1.
 */
export function assertSameVectors(got: readonly Float32Array[], want: readonly Float32Array[], tol = 1e-5): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    assert.equal(g.length, want[i].length);
    const diff = Math.max(...Array.from(g, (x, j) => Math.abs(x - want[i][j])));
    assert.ok(diff <= tol, `vector ${i} differs by ${diff}`);
  });
}

/**
 * An index in `<dir>/index` whose docs.sqlite was replaced by a copy of another index's: both were built alike
 * (`create`, 12 documents in chunks of 4) from different documents, so they reached the same generation, and the
 * index's vector store holds its own documents under the keys that now name the other's. Returns the folder and
 * the documents its docs.sqlite holds now.
 */
export async function indexWithCopiedTable(
  dir: string,
  backend: LocalBackend,
  create: CreateIndexOptions,
): Promise<{ indexDir: string; docs: SourceDocument[] }> {
  const build = async (name: string, docs: SourceDocument[]): Promise<number> => {
    const index = await SearchIndex.open(path.join(dir, name), { backend, create });
    await index.addDocuments(docs, { chunkSize: 4 });
    const generation = index.docs.generation();
    await index.close();
    return generation;
  };
  const docs = corpus(12, 2).map((d) => ({ ...d, id: `other-${d.id}` }));
  assert.equal(await build('index', corpus(12)), await build('other', docs), 'both at the same generation');
  copyFileSync(path.join(dir, 'other', 'docs.sqlite'), path.join(dir, 'index', 'docs.sqlite'));
  return { indexDir: path.join(dir, 'index'), docs };
}

/** Writes documents as JSON lines (`_id`, title, text, and `extra` fields on every line). */
export function writeJsonl(
  file: string,
  docs: readonly { id: string; title: string; text: string }[],
  extra: Record<string, unknown> = {},
): void {
  writeFileSync(
    file,
    docs.map((d) => JSON.stringify({ _id: d.id, title: d.title, text: d.text, ...extra })).join('\n'),
  );
}
