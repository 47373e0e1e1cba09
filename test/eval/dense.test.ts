import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { denseSearch, type EmbeddingMatrix } from '../../src/eval/dense-search.js';
import { readEmbeddings, writeNpyEmbeddings } from '../../src/eval/embeddings-file.js';
import { compareRanked } from '../../src/eval/trec-order.js';
import { packKey, unpackRank, unpackScore } from '../../src/eval/top-k.js';
import { dotKernelModuleBytes } from '../../src/eval/wasm-dot-kernel.js';

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5;
}

function matrix(prefix: string, rows: number, dim: number, rand: () => number): EmbeddingMatrix {
  return {
    ids: Array.from({ length: rows }, (_, i) => `${prefix}${i}`),
    dim,
    data: Float32Array.from({ length: rows * dim }, rand),
  };
}

/** Reference: cosine in double precision, full trec_eval sort, first k. */
function bruteForce(
  q: EmbeddingMatrix,
  d: EmbeddingMatrix,
  k: number,
): Map<string, { ids: string[]; scores: number[] }> {
  const norm = (m: EmbeddingMatrix, r: number) => {
    let s = 0;
    for (let i = 0; i < m.dim; i++) s += m.data[r * m.dim + i]! ** 2;
    return Math.sqrt(s);
  };
  const out = new Map<string, { ids: string[]; scores: number[] }>();
  for (let a = 0; a < q.ids.length; a++) {
    const scored = d.ids.map((id, b) => {
      let dot = 0;
      for (let i = 0; i < q.dim; i++) dot += q.data[a * q.dim + i]! * d.data[b * d.dim + i]!;
      const n = norm(q, a) * norm(d, b);
      return { id, s: n > 0 ? dot / n : 0 };
    });
    scored.sort((x, y) => compareRanked(x.s, x.id, y.s, y.id));
    out.set(q.ids[a]!, { ids: scored.slice(0, k).map((x) => x.id), scores: scored.slice(0, k).map((x) => x.s) });
  }
  return out;
}

test('the WebAssembly SIMD kernel validates on this engine', () => {
  assert.ok(WebAssembly.validate(dotKernelModuleBytes()));
});

test('exact dense search equals brute-force cosine: both kernels, odd sizes, several chunks, k > corpus', async () => {
  const rand = random(3);
  // 2,101 documents span three 1,024-row chunks; 9 queries and 7 dims exercise every padding path.
  const q = matrix('q', 9, 7, rand);
  const d = matrix('d', 2101, 7, rand);
  d.data.fill(0, 5 * 7, 6 * 7); // a zero vector scores 0, not NaN
  const want = bruteForce(q, d, 50);
  for (const kernel of ['wasm', 'js'] as const) {
    const { run, kernel: used } = await denseSearch(q, d, { k: 50, kernel, threads: 1 });
    assert.equal(used, kernel);
    for (const [qid, w] of want) {
      const got = run.get(qid)!;
      assert.deepEqual(got.docIds, w.ids, `${kernel} ${qid}`);
      got.scores.forEach((s, i) => assert.ok(Math.abs(s - w.scores[i]!) < 1e-5));
    }
  }
  const all = await denseSearch(q, matrix('e', 5, 7, rand), { k: 1000 });
  assert.equal(all.run.get('q0')!.docIds.length, 5);
});

test('worker threads give the same run as the calling thread', async () => {
  const rand = random(11);
  const q = matrix('q', 37, 64, rand);
  const d = matrix('d', 700, 64, rand);
  const seen: number[] = [];
  const one = await denseSearch(q, d, { k: 20, threads: 1, onProgress: (_s, done) => seen.push(done) });
  assert.equal(seen.at(-1), 37); // progress ends with every query searched
  const seen2: number[] = [];
  const two = await denseSearch(q, d, { k: 20, threads: 2, onProgress: (_s, done) => seen2.push(done) });
  assert.equal(seen2.at(-1), 37);
  assert.ok(seen2.every((x, i) => i === 0 || x >= seen2[i - 1]!));
  assert.equal(two.threads, 2);
  assert.deepEqual(two.run, one.run);
});

test('equal scores are ordered as trec_eval orders them (larger document id first)', async () => {
  const q: EmbeddingMatrix = { ids: ['q'], dim: 4, data: Float32Array.from([1, 0, 0, 0]) };
  const d: EmbeddingMatrix = {
    ids: ['a', 'c', 'b', 'z'],
    dim: 4,
    data: Float32Array.from([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 1, 0, 0]),
  };
  const { run } = await denseSearch(q, d, { k: 2, threads: 1 });
  assert.deepEqual(run.get('q')!.docIds, ['c', 'b']);
});

test('packed keys order as (score desc, id rank desc) for positive, negative and zero scores', () => {
  const rand = random(5);
  const items = Array.from({ length: 2000 }, (_, i) => ({ s: Math.fround(Math.round(rand() * 8) / 4), r: i }));
  items.push({ s: -0, r: 2000 }, { s: 0, r: 2001 });
  const keys = items.map((x) => packKey(x.s, x.r)).sort((a, b) => b - a);
  const ref = [...items].sort((x, y) => y.s - x.s || y.r - x.r);
  assert.deepEqual(
    keys.map(unpackRank),
    ref.map((x) => x.r),
  );
  assert.deepEqual(
    keys.map(unpackScore),
    ref.map((x) => x.s + 0),
  );
});

test('embeddings read from .npy (+ ids sidecar) and .jsonl; malformed input names file and line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-emb-'));
  try {
    const m = matrix('x', 3, 5, random(9));
    writeNpyEmbeddings(join(dir, 'm.npy'), m);
    const back = await readEmbeddings(join(dir, 'm.npy'));
    assert.deepEqual(back.ids, m.ids);
    assert.deepEqual(back.data, m.data);
    writeFileSync(join(dir, 'e.jsonl'), '{"id":"a","vector":[1,2]}\n{"id":"b","vector":[3,4]}\n');
    const j = await readEmbeddings(join(dir, 'e.jsonl'));
    assert.equal(j.dim, 2);
    assert.deepEqual(Array.from(j.data), [1, 2, 3, 4]);
    // blank lines and \r\n breaks: the rows as written, in a matrix sized to them
    const lines = m.ids.map((id, i) => JSON.stringify({ id, vector: Array.from(m.data.subarray(i * 5, i * 5 + 5)) }));
    writeFileSync(join(dir, 'm.jsonl'), `\r\n${lines[0]}\r\n\r\n${lines[1]}\n\n\n${lines[2]}`);
    const fromJsonl = await readEmbeddings(join(dir, 'm.jsonl'));
    assert.deepEqual(fromJsonl.ids, m.ids);
    assert.deepEqual(fromJsonl.data, m.data);
    assert.equal(fromJsonl.data.buffer.byteLength, 3 * 5 * 4);
    writeFileSync(join(dir, 'bad.jsonl'), '{"id":"a","vector":[1,2]}\n{"id":"b","vector":[3]}\n');
    await assert.rejects(readEmbeddings(join(dir, 'bad.jsonl')), /bad\.jsonl:2: vector has 1 numbers/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
