// Hybrid search latency on a live index after one added document: builds a ~50k-document index from SciFact texts
// (each copied under new ids) with random vectors, then times the first hybrid search and the hybrid search after
// each of a few one-document commits. Usage (after npm run build):
//   node scripts/bench-hybrid-live.mjs [corpus file] [work folder] [n]
//   ("" takes the default: demo/scifact/corpus.jsonl.gz, a temporary folder, 50000)
// The work folder (default: a temporary one) is emptied first and removed at the end.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readDocuments } from '../dist/src/search-index/document-source.js';
import { LocalBackend } from '../dist/src/search-index/embedding-backend.js';
import { SearchIndex } from '../dist/src/search-index/search-index.js';
import { saveModelFolder } from '../dist/src/model/model-folder.js';
import { tinyModel } from '../dist/test/helpers/tiny-model.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const [corpusArg, workArg, nArg] = process.argv.slice(2);
const corpusFile = corpusArg || path.join(root, 'demo', 'scifact', 'corpus.jsonl.gz');
const work = workArg || mkdtempSync(path.join(tmpdir(), 'bench-hybrid-live-'));
const n = Number(nArg || 50000);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const modelDir = path.join(work, 'model');
await saveModelFolder(modelDir, tinyModel(7, { hiddenSize: 32, maxPositionEmbeddings: 256 }));
const backend = await LocalBackend.fromModelDir(modelDir, { maxLength: 128 });
const corpus = await readDocuments(corpusFile);
const docs = Array.from({ length: n }, (_, i) => {
  const d = corpus[i % corpus.length];
  return { id: `${d.id}-${Math.floor(i / corpus.length)}`, title: d.title, text: d.text };
});
const index = await SearchIndex.open(path.join(work, 'index'), { backend, create: {} });
let seed = 1;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
const vector = () => Float32Array.from({ length: index.dimension }, rand);
const commit = async (batch) => {
  await index.stageDocuments(batch);
  for (const chunk of index.pendingChunks(5000)) await index.commitEncoded(chunk, chunk.map(vector));
};
await commit(docs);
const query = 'gene expression in breast cancer cells';
const q = vector();
// HNSW for the dense side (exact search re-reads every vector from docs.sqlite after a commit), so what is timed
// is what a server does; warmHybrid() alone is the BM25 side's catching up.
const time = async () => {
  const t0 = performance.now();
  await index.searchVector(q, { hybrid: true, queryText: query, k: 10, exact: false });
  return performance.now() - t0;
};
const timeBm25 = () => {
  const t0 = performance.now();
  index.warmHybrid();
  return performance.now() - t0;
};
console.log(`documents ${index.stats().documents}`);
console.log(`first hybrid search ${(await time()).toFixed(0)} ms`);
const after = [];
const bm25 = [];
const commits = [];
for (let i = 0; i < 6; i++) {
  const t0 = performance.now();
  await commit([{ id: `added-${i}`, title: 'added', text: corpus[i].text }]);
  commits.push(performance.now() - t0);
  if (i % 2 === 0) after.push(await time());
  else bm25.push(timeBm25());
}
console.log(`hybrid search after one added document: ${after.map((t) => t.toFixed(1)).join(', ')} ms`);
console.log(`one-document commit: ${commits.map((t) => t.toFixed(1)).join(', ')} ms`);
console.log(`BM25 side alone after one added document: ${bm25.map((t) => t.toFixed(1)).join(', ')} ms`);
await index.close();
rmSync(work, { recursive: true, force: true });
