import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Embedder } from '../../src/embed/index.js';
import { corpusOf, documentText, readBeirDataset } from '../../src/eval/beir.js';
import { EmbeddingRetriever } from '../../src/eval/embedding-retriever.js';
import { ModelRetriever, embedCorpus, type SearchR3Encoder } from '../../src/eval/model-retriever.js';
import { readTrecRun } from '../../src/eval/run.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { runCli } from '../helpers/cli.js';
import { referenceNdcg } from '../helpers/reference-measures.js';
import { repoRoot } from '../helpers/repo.js';
import { tinyModel } from '../helpers/tiny-model.js';

const tiny = join(repoRoot, 'test/eval/fixtures/tiny-beir');

const stack = (vs: Float32Array[]): Float32Array => {
  const out = new Float32Array(vs.length * vs[0].length);
  vs.forEach((v, i) => out.set(v, i * v.length));
  return out;
};

test('a model retriever ranks exactly as its embeddings do through the precomputed-embeddings path', async () => {
  const { model, tokenizer } = tinyModel(5);
  const embedder = new Embedder(model, tokenizer);
  const ds = await readBeirDataset(tiny, 'test');
  const run = await new ModelRetriever(embedder, 'search-r3').retrieve(corpusOf(ds.corpus), ds.queries, 10);
  const qIds = [...ds.queries.keys()];
  const docs = embedder.embedDocuments(ds.corpus.map(documentText)).vectors;
  const qs = embedder.embedQueries(qIds.map((id) => ds.queries.get(id)!)).map((q) => q.vector);
  const dim = embedder.dimension;
  const ref = await new EmbeddingRetriever(
    { ids: qIds, dim, data: stack(qs) },
    { ids: ds.corpus.map((d) => d.id), dim, data: stack(docs) },
  ).retrieve(corpusOf(ds.corpus), ds.queries, 10);
  for (const q of qIds) assert.deepEqual(run.get(q)!.docIds, ref.get(q)!.docIds, q);
});

test('search-r3 eval --retriever <model-dir> evaluates a model, reasoning off and on, and writes runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-eval-model-'));
  try {
    await saveModelFolder(join(dir, 'model'), tinyModel(5));
    for (const reasoning of ['off', 'on']) {
      const out = join(dir, `${reasoning}.trec`);
      const r = runCli([
        'eval',
        '--dataset',
        tiny,
        '--retriever',
        join(dir, 'model'),
        '--reasoning',
        reasoning,
        '--max-reasoning-tokens',
        '4',
        '--run',
        out,
        '--json',
        '--cutoffs',
        '1,3',
      ]);
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout) as { numQueries: number; all: Record<string, number>; retriever: string };
      assert.equal(report.numQueries, 4);
      assert.equal(report.retriever, reasoning === 'on' ? 'search-r3-reasoning' : 'search-r3');
      const written = await readTrecRun(out);
      const { qrels } = await readBeirDataset(tiny, 'test');
      assert.ok(
        Math.abs(report.all['ndcg_cut_3'] - referenceNdcg(written.run, qrels, 3).mean) < 1e-12,
        'nDCG@3 by its definition',
      );
      assert.equal(written.run.get('q1')!.docIds.length, 5, 'every document ranked');
    }
    const bad = runCli(['eval', '--dataset', tiny, '--retriever', join(dir, 'nope')]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /not 'bm25' and not a model folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model retriever embeds the corpus in groups, one progress count, ranking as one call does', async () => {
  const { model, tokenizer } = tinyModel(5);
  const embedder = new Embedder(model, tokenizer);
  // an encoder as eval's --engine llama.cpp is one: its own object behind the SearchR3Encoder protocol, here the
  // real Embedder, so each call's size is seen where the retriever hands it documents
  const calls: number[] = [];
  const encoder: SearchR3Encoder = {
    dimension: embedder.dimension,
    embedDocuments: (texts, onProgress) => {
      calls.push(texts.length);
      return embedder.embedDocuments(texts, onProgress);
    },
    embedQueries: (texts, opts) => embedder.embedQueries(texts, opts),
  };
  const ds = await readBeirDataset(tiny, 'test');
  assert.equal(ds.corpus.length, 5);
  const seen: string[] = [];
  const progress = (stage: string, done: number, total: number): void => {
    if (stage === 'encoding documents') seen.push(`${done}/${total}`);
  };
  const grouped = await new ModelRetriever(encoder, 'grouped', { documentGroup: 2 }).retrieve(
    corpusOf(ds.corpus),
    ds.queries,
    10,
    progress,
  );
  assert.deepEqual(calls, [2, 2, 1], 'at most documentGroup documents per call');
  assert.deepEqual(seen, ['2/5', '4/5', '5/5'], 'one count over the whole corpus');
  calls.length = 0;
  const whole = await new ModelRetriever(encoder, 'whole').retrieve(corpusOf(ds.corpus), ds.queries, 10);
  assert.deepEqual(calls, [5], 'a corpus within one group is one call');
  for (const [q, r] of whole) {
    assert.deepEqual(grouped.get(q)!.docIds, r.docIds, q);
    r.scores.forEach((s, i) => assert.ok(Math.abs(grouped.get(q)!.scores[i] - s) < 1e-6, `${q} score ${i}`));
  }
  // the rows are the whole call's vectors, in corpus order
  const texts = ds.corpus.map(documentText);
  const rows = await embedCorpus(embedder, 5, (a, b) => texts.slice(a, b), undefined, 2);
  embedder.embedDocuments(texts).vectors.forEach((v, i) => {
    const row = rows.subarray(i * v.length, (i + 1) * v.length);
    assert.ok(
      row.every((x, j) => Math.abs(x - v[j]) < 1e-6),
      `document ${i}`,
    );
  });
});
