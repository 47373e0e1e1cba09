/**
 * `search-r3 fusion`: the hybrid's dense weight and k chosen on dev queries and stored with the model. Its choice
 * is checked against a reference computed here without the command's search, fusion or measure code: the model's
 * vectors ranked by a plain cosine loop, BM25's ranking, weighted RRF by its definition over the whole grid, and
 * nDCG@10 by the reference measures. And `eval --hybrid`, which reports that fusion on a test split: its run is
 * the BM25 and model runs fused by the same definition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { referenceFusion, referenceNdcg } from '../helpers/reference-measures.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';
import { corpusOf, documentText } from '../../src/eval/beir.js';
import { Bm25Retriever } from '../../src/eval/bm25-retriever.js';
import { type Run, readTrecRun } from '../../src/eval/run.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { readModelFusion, writeModelFusion } from '../../src/search-index/model-fusion.js';

const env = { SEARCH_R3_THREADS: '1' };
const BUDGET = 4;

/** A BEIR folder with a dev split: 40 documents, 8 queries made of words of the documents they judge. */
function devFolder(dir: string): {
  folder: string;
  qrels: Map<string, Map<string, number>>;
  queries: Map<string, string>;
} {
  const folder = path.join(dir, 'dev-set');
  mkdirSync(path.join(folder, 'qrels'), { recursive: true });
  const docs = corpus(40, 3);
  writeJsonl(path.join(folder, 'corpus.jsonl'), docs);
  const queries = new Map<string, string>();
  const qrels = new Map<string, Map<string, number>>();
  for (let i = 0; i < 8; i++) {
    const d = docs[i * 5]!;
    queries.set(`q${i}`, d.text.split(' ').slice(0, 3).join(' '));
    qrels.set(
      `q${i}`,
      new Map([
        [d.id, 2],
        [docs[i * 5 + 1]!.id, 1],
      ]),
    );
  }
  writeFileSync(
    path.join(folder, 'queries.jsonl'),
    [...queries].map(([id, text]) => JSON.stringify({ _id: id, text })).join('\n'),
  );
  const lines = [...qrels].flatMap(([q, m]) => [...m].map(([d, g]) => `${q}\t${d}\t${g}`));
  writeFileSync(path.join(folder, 'qrels', 'dev.tsv'), ['query-id\tcorpus-id\tscore', ...lines].join('\n') + '\n');
  return { folder, qrels, queries };
}

/** The hybrid's fusion as hybrid search computes it: BM25's weight is 1 − the dense weight. */
const fused = (dense: Run, bm25: Run, w: number, k: number): Run => referenceFusion(dense, bm25, w, 1 - w, k);

test('fusion: chooses the grid point with the best dev nDCG@10 over reasoning off and on, and stores it', async () => {
  const { dir, cleanup } = tempDir('fusion');
  try {
    const model = await tinyModelDir(dir);
    const { folder, qrels, queries } = devFolder(dir);

    const dry = runCli(
      ['fusion', '--model', model, '--dev', folder, '--max-reasoning-tokens', `${BUDGET}`, '--dry-run'],
      env,
    );
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^.*dev-set \(dev, 8 queries\): nDCG@10 BM25 \d\.\d{4}, reasoning off \d\.\d{4}, reasoning on \d\.\d{4}$/m,
    );
    assert.match(
      dry.stdout,
      /^fusion: dense weight (0|1|0\.\d), k \d+: dev nDCG@10 \d\.\d{4} \(plain RRF \d\.\d{4}\)$/m,
    );
    assert.match(dry.stdout, /^not written \(--dry-run\)/m);
    assert.match(dry.stderr, /encoding documents/, 'progress on stderr');
    assert.equal(existsSync(path.join(model, 'search-r3.json')), false);

    const r = runCli(
      ['fusion', '--model', model, '--dev', folder, '--max-reasoning-tokens', `${BUDGET}`, '--json', '--quiet'],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = JSON.parse(r.stdout) as {
      fusion: { denseWeight: number; k: number; chosenOn: string };
      devNdcg10: number;
      plainRrfDevNdcg10: number;
      devSets: { bm25Ndcg10: number; denseNdcg10: { off: number; on: number } }[];
      written: boolean;
    };
    assert.equal(out.written, true);
    assert.deepEqual(readModelFusion(model), out.fusion, 'what hybrid search reads is what was printed');
    assert.match(
      out.fusion.chosenOn,
      /^[^/]+\/sr3-fusion-\w+\/dev-set, split dev \(8 queries\); reasoning off and on$/,
    );

    const again = runCli(
      ['fusion', '--model', model, '--dev', folder, '--max-reasoning-tokens', `${BUDGET}`, '--dry-run', '--quiet'],
      env,
    );
    assert.equal(again.status, 0, again.stderr);
    const had = `(it had dense weight ${out.fusion.denseWeight}, k ${out.fusion.k})`;
    assert.ok(again.stdout.includes(`search-r3.json ${had}`), again.stdout);

    // the reference: the same model's vectors, cosine by a plain loop; BM25; the fused rankings over the grid
    const { embedder } = await LocalBackend.fromModelDir(model);
    const docs = corpus(40, 3);
    const docVectors = embedder.embedDocuments(docs.map(documentText)).vectors;
    const ids = [...queries.keys()];
    const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);
    const denseRun = (reasoning: 'off' | 'on'): Run => {
      const qs = embedder.embedQueries([...queries.values()], { reasoning, maxReasoningTokens: BUDGET });
      return new Map(
        ids.map((id, i) => [
          id,
          { docIds: docs.map((d) => d.id), scores: docVectors.map((v) => dot(v, qs[i]!.vector)) },
        ]),
      );
    };
    const dense = { off: denseRun('off'), on: denseRun('on') };
    const bm25 = await new Bm25Retriever().retrieve(corpusOf(docs), queries, 100);
    const close = (a: number, b: number, what: string): void =>
      assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);
    close(out.devSets[0]!.bm25Ndcg10, referenceNdcg(bm25, qrels, 10).mean, 'BM25');
    close(out.devSets[0]!.denseNdcg10.off, referenceNdcg(dense.off, qrels, 10).mean, 'reasoning off');
    close(out.devSets[0]!.denseNdcg10.on, referenceNdcg(dense.on, qrels, 10).mean, 'reasoning on');
    const score = (w: number, k: number): number =>
      (referenceNdcg(fused(dense.off, bm25, w, k), qrels, 10).mean +
        referenceNdcg(fused(dense.on, bm25, w, k), qrels, 10).mean) /
      2;
    const grid = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1].flatMap((w) =>
      [10, 30, 60, 100].map((k) => score(w, k)),
    );
    close(out.devNdcg10, Math.max(...grid), 'the best of the grid');
    close(score(out.fusion.denseWeight, out.fusion.k), out.devNdcg10, 'the chosen point');
    close(out.plainRrfDevNdcg10, score(0.5, 60), 'plain RRF');
  } finally {
    cleanup();
  }
});

test('fusion: a test split, a missing dev folder and a missing option are refused in one sentence', async () => {
  const { dir, cleanup } = tempDir('fusion-bad');
  try {
    const model = await tinyModelDir(dir);
    const { folder } = devFolder(dir);
    const cases: [string[], RegExp][] = [
      [['--model', model], /^search-r3: --dev <beir-folder> is required: the dev queries to choose on\.$/],
      [['--dev', folder], /^search-r3: --model <dir> is required/],
      [
        ['--model', model, '--dev', folder, '--split', 'test'],
        /^search-r3: --split test: fusion weights are chosen on a dev split, never on 'test'/,
      ],
      [['--model', model, '--dev', path.join(dir, 'nowhere')], /nowhere.*dataset folder not found/],
      [['--model', model, '--dev', folder, '--split', 'train'], /no qrels for split 'train' .*splits here: dev/],
      [['--model', model, '--dev', folder, '--reasoning', 'maybe'], /--reasoning must be/],
    ];
    for (const [args, want] of cases) {
      const r = runCli(['fusion', ...args], env);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr.trim(), want, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(existsSync(path.join(model, 'search-r3.json')), false);
  } finally {
    cleanup();
  }
});

test("eval --hybrid fuses the model's ranking with BM25's at the model's stored weights, or by plain RRF", async () => {
  const { dir, cleanup } = tempDir('eval-hybrid');
  try {
    const model = await tinyModelDir(dir);
    const { folder } = devFolder(dir);
    const evalRun = (name: string, ...args: string[]): string => {
      const file = path.join(dir, `${name}.trec`);
      const r = runCli(['eval', '--dataset', folder, '--split', 'dev', '--k', '20', '--run', file, ...args], env);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    evalRun('bm25', '--retriever', 'bm25');
    evalRun('dense', '--retriever', model);
    const plainOut = evalRun('plain', '--retriever', model, '--hybrid');
    assert.match(plainOut, /hybrid-search-r3 \(fused with BM25 by plain RRF, k 60: the model stores no fusion\)/);
    await writeModelFusion(model, { denseWeight: 0.3, k: 10, chosenOn: 'a dev set' });
    const weightedOut = evalRun('weighted', '--retriever', model, '--hybrid');
    assert.match(weightedOut, /\(fused with BM25 at dense weight 0\.3, k 10: the model's search-r3\.json\)/);

    const read = async (name: string): Promise<Run> => (await readTrecRun(path.join(dir, `${name}.trec`))).run;
    const [bm25, dense] = [await read('bm25'), await read('dense')];
    for (const [name, w, k] of [
      ['plain', 0.5, 60],
      ['weighted', 0.3, 10],
    ] as const) {
      // plain RRF weighs both lists 1: half of each score, the same ranking as weights 0.5 and 0.5
      const scale = name === 'plain' ? 2 : 1;
      const want = fused(dense, bm25, w, k);
      const got = await read(name);
      for (const [q, list] of want) {
        const wanted = new Map(list.docIds.map((d, i) => [d, list.scores[i]! * scale]));
        const kept = got.get(q)!;
        assert.equal(kept.docIds.length, Math.min(20, wanted.size), `${name} ${q}: documents kept`);
        kept.docIds.forEach((d, i) =>
          assert.ok(Math.abs(kept.scores[i]! - wanted.get(d)!) < 1e-12, `${name} ${q} ${d}: ${kept.scores[i]}`),
        );
        const lowest = Math.min(...kept.scores);
        for (const [d, score] of wanted) if (!kept.docIds.includes(d)) assert.ok(score <= lowest, `${name} ${q} ${d}`);
      }
    }
  } finally {
    cleanup();
  }
});
