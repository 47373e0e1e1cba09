import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalProgress } from '../../src/cli/eval-progress.js';
import { Embedder } from '../../src/embed/index.js';
import {
  beirCorpusSource,
  corpusOf,
  readBeirDataset,
  readBeirSplit,
  type BeirDocument,
  type CorpusSource,
} from '../../src/eval/beir.js';
import { Bm25Retriever } from '../../src/eval/bm25-retriever.js';
import { EmbeddingRetriever } from '../../src/eval/embedding-retriever.js';
import { ModelRetriever } from '../../src/eval/model-retriever.js';
import type { Run } from '../../src/eval/run.js';
import { repoRoot } from '../helpers/repo.js';
import { tinyModel } from '../helpers/tiny-model.js';

const tiny = join(repoRoot, 'test/eval/fixtures/tiny-beir');

/**
 * `docs` as a corpus that may be read `reads` times, each read yielding one document object that is overwritten
 * before each next document and once more when the read ends, as a reader that reuses its buffer would: a
 * retriever that keeps documents to use after asking for the next one sees other documents' fields in them.
 */
function reusedSlotCorpus(docs: readonly BeirDocument[], reads: number): CorpusSource & { readsTaken: number } {
  const source = {
    readsTaken: 0,
    size: undefined,
    async *documents(): AsyncGenerator<BeirDocument> {
      if (source.readsTaken === reads) throw new Error(`read ${reads + 1} of a corpus that may be read ${reads}`);
      source.readsTaken++;
      const slot: BeirDocument = { id: '', title: '', text: '' };
      for (const d of docs) {
        Object.assign(slot, d);
        yield slot;
      }
      Object.assign(slot, { id: 'gone', title: '', text: 'gone' });
    },
  };
  return source;
}

const sameRun = (got: Run, want: Run): void => {
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [q, list] of want) assert.deepEqual(got.get(q), list, q);
};

test('BM25 builds its index from one streamed read of the corpus, using each document before the next', async () => {
  const ds = await readBeirDataset(tiny, 'test');
  const want = await new Bm25Retriever().retrieve(corpusOf(ds.corpus), ds.queries, 10);
  const corpus = reusedSlotCorpus(ds.corpus, 1);
  const stages: string[] = [];
  const got = await new Bm25Retriever().retrieve(corpus, ds.queries, 10, (s, done, total) =>
    stages.push(`${s} ${done}/${total}`),
  );
  assert.equal(corpus.readsTaken, 1);
  sameRun(got, want);
  assert.deepEqual(
    stages.filter((s) => s.startsWith('indexing')),
    ['indexing 5/5'],
  );

  // a stream of unknown length counts against Infinity until its end; one of known size against its size
  const many = Array.from({ length: 2500 }, (_, i) => ({ id: `d${i}`, title: '', text: `word${i % 7}` }));
  const indexing = async (corpus: CorpusSource): Promise<string[]> => {
    const seen: string[] = [];
    await new Bm25Retriever().retrieve(corpus, new Map(), 1, (s, done, total) => seen.push(`${s} ${done}/${total}`));
    return seen;
  };
  assert.deepEqual(await indexing(reusedSlotCorpus(many, 1)), [
    'indexing 1000/Infinity',
    'indexing 2000/Infinity',
    'indexing 2500/2500',
  ]);
  assert.deepEqual(await indexing(corpusOf(many)), ['indexing 1000/2500', 'indexing 2000/2500', 'indexing 2500/2500']);
  const lines: string[] = [];
  const stderr = { isTTY: false, write: (t: string) => lines.push(t) } as unknown as NodeJS.WriteStream;
  const progress = evalProgress(stderr, 0);
  progress('indexing', 1000, Infinity);
  progress('indexing', 2500, 2500);
  assert.deepEqual(
    lines.map((l) => l.replace(/ [\d.]+s\n$/, '')),
    ['indexing: 1000 so far', 'indexing: 2500/2500 (100%)'],
  );
});

test('a model retriever reads the corpus twice (ids, then texts a group at a time), as from memory', async () => {
  const { model, tokenizer } = tinyModel(5);
  const embedder = new Embedder(model, tokenizer);
  const ds = await readBeirDataset(tiny, 'test');
  const want = await new ModelRetriever(embedder, 'm', { documentGroup: 2 }).retrieve(
    corpusOf(ds.corpus),
    ds.queries,
    10,
  );
  const corpus = reusedSlotCorpus(ds.corpus, 2);
  sameRun(await new ModelRetriever(embedder, 'm', { documentGroup: 2 }).retrieve(corpus, ds.queries, 10), want);
  assert.equal(corpus.readsTaken, 2);

  // vectors filed under the first read's ids must be the second read's documents
  let read = 0;
  const shrinking: CorpusSource = {
    size: undefined,
    async *documents() {
      yield* read++ === 0 ? ds.corpus : ds.corpus.slice(0, 4);
    },
  };
  await assert.rejects(
    new ModelRetriever(embedder, 'm').retrieve(shrinking, ds.queries, 10),
    new RegExp(
      `^EvalInputError: the corpus changed while it was read twice \\(document 5 was '${ds.corpus[4]!.id}', ` +
        'then the end\\); evaluate a corpus file that nothing writes meanwhile$',
    ),
  );
});

test('precomputed embeddings take the ids from one read of the corpus', async () => {
  const ds = await readBeirDataset(tiny, 'test');
  const ids = ds.corpus.map((d) => d.id);
  const dim = 2;
  const docs = { ids, dim, data: new Float32Array(ids.flatMap((_, i) => [1, i])) };
  const queries = { ids: [...ds.queries.keys()], dim, data: new Float32Array(ds.queries.size * dim).fill(1) };
  const want = await new EmbeddingRetriever(queries, docs).retrieve(corpusOf(ds.corpus), ds.queries, 10);
  const corpus = reusedSlotCorpus(ds.corpus, 1);
  sameRun(await new EmbeddingRetriever(queries, docs).retrieve(corpus, ds.queries, 10), want);
});

test('a BEIR split is read without its corpus, whose file is streamed on each read, refused empty', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-corpus-source-'));
  try {
    const split = await readBeirSplit(tiny, 'test');
    assert.equal(split.corpusFile, join(tiny, 'corpus.jsonl'));
    const source = beirCorpusSource(split.corpusFile);
    assert.equal(source.size, undefined, 'not known before a whole read');
    const docs: BeirDocument[] = [];
    for await (const d of source.documents()) docs.push({ ...d });
    assert.equal(source.size, 5);
    assert.deepEqual(docs, (await readBeirDataset(tiny, 'test')).corpus);

    mkdirSync(join(dir, 'qrels'));
    writeFileSync(join(dir, 'queries.jsonl'), '{"_id":"q1","text":"a"}\n');
    writeFileSync(join(dir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\n');
    // a missing corpus is refused with the split, before any retriever (or model) starts
    await assert.rejects(readBeirSplit(dir, 'test'), /corpus\.jsonl: file not found; check the path$/);
    writeFileSync(join(dir, 'corpus.jsonl'), '\n');
    const empty = beirCorpusSource((await readBeirSplit(dir, 'test')).corpusFile);
    await assert.rejects(new Bm25Retriever().retrieve(empty, new Map(), 10), /corpus\.jsonl: no documents found$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
