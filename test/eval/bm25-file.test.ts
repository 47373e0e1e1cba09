import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createAnalyzer } from '../../src/eval/analyzer.js';
import { Bm25Index, type Bm25Document } from '../../src/eval/bm25.js';
import { readBm25File, writeBm25File, type Bm25FileKey } from '../../src/eval/bm25-file.js';
import { corpus } from '../search-index/fixtures.js';

const analyzer = createAnalyzer();
const QUERIES = ['protein cell', 'cancer vaccine gene gene', 'brain heart virus drug', 'immune', 'zebra', 'same'];

/** A corpus with ties: the 'same' documents have one text under ids whose order only the tie-break decides. */
function documents(n: number, seed: number): Bm25Document[] {
  const docs = corpus(n, seed).map((d) => ({ id: d.id, text: `${d.title} ${d.text}` }));
  for (const id of ['tie-b', 'tie-a', 'tie-10', 'tie-9']) docs.push({ id, text: 'same words here' });
  return docs;
}

function ranked(index: Bm25Index): unknown[] {
  return QUERIES.map((q) => index.search(q, 1000));
}

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-bm25file-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function load(file: string, key: Bm25FileKey): Bm25Index {
  const read = readBm25File(file, key, analyzer);
  assert.ok('index' in read, JSON.stringify(read));
  return read.index;
}

test('an index read back from its file ranks and scores as a fresh build, bit for bit, ties included', () => {
  withDir((dir) => {
    const docs = documents(300, 4);
    const built = Bm25Index.build(docs, analyzer);
    const file = path.join(dir, 'bm25.bin');
    const key = { generation: 7, source: 'x', documents: docs.length };
    writeBm25File(file, built, key, analyzer);
    const loaded = load(file, key);
    assert.deepEqual(ranked(loaded), ranked(Bm25Index.build(docs, analyzer)));
    const tie = loaded.search('same', 10);
    assert.deepEqual(tie.docIds, ['tie-b', 'tie-a', 'tie-9', 'tie-10']); // trec_eval's order: ties by id, descending
    assert.equal(new Set(tie.scores).size, 1);
    assert.equal(loaded.size, docs.length);
  });
});

test('after adds and removals, the saved index reads back as a fresh build of the live documents', () => {
  withDir((dir) => {
    const docs = documents(200, 2);
    const index = Bm25Index.build(docs, analyzer);
    const extra = corpus(40, 9).map((d) => ({ id: `new-${d.id}`, text: `${d.title} ${d.text}` }));
    for (const d of extra) index.add(d);
    const gone = new Set([docs[3]!.id, docs[50]!.id, extra[5]!.id, 'tie-a']);
    const all = [...docs, ...extra];
    for (const d of all) if (gone.has(d.id)) index.remove(d.id, d.text);
    index.add({ id: 'tie-a', text: 'same words here again' }); // a replacement, at a new position
    const live = [...all.filter((d) => !gone.has(d.id)), { id: 'tie-a', text: 'same words here again' }];
    const file = path.join(dir, 'bm25.bin');
    const key = { generation: 3, source: 'x', documents: live.length };
    writeBm25File(file, index, key, analyzer);
    const loaded = load(file, key);
    const fresh = Bm25Index.build(live, analyzer);
    assert.deepEqual(ranked(loaded), ranked(fresh));
    assert.deepEqual(ranked(index), ranked(fresh));
    // the loaded index follows further changes as the built one does
    loaded.remove('tie-b', 'same words here');
    fresh.remove('tie-b', 'same words here');
    assert.deepEqual(ranked(loaded), ranked(fresh));
  });
});

test('a file of another generation, index, analyzer or BM25 parameters is stale; a damaged one is never read', () => {
  withDir((dir) => {
    const docs = documents(120, 5);
    const file = path.join(dir, 'bm25.bin');
    const key = { generation: 4, source: 'x', documents: docs.length };
    writeBm25File(file, Bm25Index.build(docs, analyzer), key, analyzer);
    const kind = (r: object): string => Object.keys(r)[0]!;
    assert.equal(kind(readBm25File(file, { ...key, generation: 5 }, analyzer)), 'stale');
    assert.equal(kind(readBm25File(file, { ...key, source: 'y' }, analyzer)), 'stale');
    assert.equal(kind(readBm25File(file, { ...key, documents: 1 }, analyzer)), 'stale');
    assert.equal(kind(readBm25File(file, key, createAnalyzer({ stem: false }))), 'stale');
    assert.equal(kind(readBm25File(file, key, createAnalyzer({ language: 'de' }))), 'stale');
    assert.equal(kind(readBm25File(file, key, analyzer, { k1: 1.2 })), 'stale');
    assert.equal(kind(readBm25File(path.join(dir, 'none'), key, analyzer)), 'missing');
    const bytes = readFileSync(file);
    const damaged = (b: Uint8Array): string => {
      writeFileSync(file, b);
      return kind(readBm25File(file, key, analyzer));
    };
    assert.equal(damaged(bytes.subarray(0, bytes.length - 1)), 'damaged');
    assert.equal(damaged(bytes.subarray(0, bytes.length >> 1)), 'damaged');
    assert.equal(damaged(new Uint8Array(0)), 'damaged');
    assert.equal(damaged(Buffer.from('{"not":"a BM25 file"}')), 'damaged');
    for (const at of [bytes.length - 40, bytes.length >> 1, 400]) {
      const flipped = Buffer.from(bytes);
      flipped[at] ^= 4;
      assert.equal(damaged(flipped), 'damaged', `byte ${at}`);
    }
    assert.equal(damaged(bytes), 'index');
  });
});

test('a state no index could give is refused before it is used', () => {
  const docs = documents(30, 1);
  const state = Bm25Index.build(docs, analyzer).state();
  const broken = (change: (s: typeof state) => void): void => {
    const s = structuredClone(state);
    change(s);
    assert.throws(() => Bm25Index.restore(s, analyzer), RangeError);
  };
  broken((s) => (s.postingDocs[0] = docs.length));
  broken((s) => (s.postingTfs[0] = 0));
  broken((s) => (s.lengths[0] = s.lengths[0]! + 1));
  broken((s) => ([s.idRank[0], s.idRank[1]] = [s.idRank[1]!, s.idRank[0]!]));
  broken((s) => (s.terms[1] = s.terms[0]!));
  assert.deepEqual(
    ranked(Bm25Index.restore(structuredClone(state), analyzer)),
    ranked(Bm25Index.build(docs, analyzer)),
  );
});
