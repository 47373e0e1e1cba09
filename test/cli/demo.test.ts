import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';
import { referenceFusion, referenceNdcg, referenceRecall } from '../helpers/reference-measures.js';
import { corpusOf, documentText, readBeirDataset } from '../../src/eval/beir.js';
import { Bm25Retriever } from '../../src/eval/bm25-retriever.js';
import { subsetDevSet } from '../../src/eval/dev-eval.js';
import type { Run } from '../../src/eval/run.js';
import { duration } from '../../src/cli/demo.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { modelFingerprint } from '../../src/model/model-fingerprint.js';
import { writeModelFusion } from '../../src/search-index/model-fusion.js';
import type { HybridFusion } from '../../src/search-index/rrf.js';

const env = { SEARCH_R3_THREADS: '1' };
const slice = ['--max-documents', '30', '--max-queries', '10', '--max-reasoning-tokens', '8'];
const TABLE_ROWS = [
  'BM25',
  'dense, reasoning off',
  'dense, reasoning on (≤8 tokens)',
  'hybrid (BM25 + reasoning off, RRF)',
];

/** The shipped test judgments: query id → relevant document ids. */
function shippedQrels(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of readFileSync(path.join(repoRoot, 'demo/scifact/qrels/test.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)) {
    const [q, d] = line.split('\t');
    if (!out.has(q)) out.set(q, new Set());
    out.get(q)!.add(d);
  }
  return out;
}

type Figures = { ndcg10: number; recall100: number };

/**
 * The demo's table rows for reasoning off, recomputed without its search or measure code: the same slice of
 * SciFact test, document and query vectors from the model, cosine by a plain loop, RRF by its definition
 * (k = 60), nDCG@10 and R@100 by the reference measures.
 */
async function referenceRows(model: string, fusion?: HybridFusion): Promise<Map<string, Figures>> {
  const ds = await readBeirDataset(path.join(repoRoot, 'demo/scifact'), 'test');
  const table = subsetDevSet(ds, 10, 0);
  const sliced = new Map([
    ...['36', '641', '1100'].map((id): [string, string] => [id, ds.queries.get(id)!]),
    ...table.queries,
  ]);
  const docs = subsetDevSet({ ...ds, queries: sliced }, 0, 30).corpus;
  const { embedder } = await LocalBackend.fromModelDir(model);
  const docVectors = embedder.embedDocuments(docs.map(documentText)).vectors;
  const ids = [...table.queries.keys()];
  const queryVectors = embedder.embedQueries(ids.map((id) => table.queries.get(id)!)).map((q) => q.vector);
  const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);
  const dense: Run = new Map(
    ids.map((id, i) => [
      id,
      { docIds: docs.map((d) => d.id), scores: docVectors.map((v) => dot(v, queryVectors[i]!)) },
    ]),
  );
  const bm25 = await new Bm25Retriever().retrieve(corpusOf(docs), table.queries, 100);
  // plain RRF: both weights 1, k 60
  const hybrid = fusion
    ? referenceFusion(dense, bm25, fusion.denseWeight, 1 - fusion.denseWeight, fusion.k)
    : referenceFusion(dense, bm25, 1, 1, 60);
  const hybridRow = fusion
    ? `hybrid (BM25 + reasoning off, RRF: dense weight ${fusion.denseWeight}, k ${fusion.k})`
    : 'hybrid (BM25 + reasoning off, RRF)';
  const figures = (run: Run): Figures => ({
    ndcg10: referenceNdcg(run, table.qrels, 10).mean,
    recall100: referenceRecall(run, table.qrels, 100),
  });
  return new Map([
    ['BM25', figures(bm25)],
    ['dense, reasoning off', figures(dense)],
    [hybridRow, figures(hybrid)],
  ]);
}

interface DemoJson {
  index: { action: string; documents: number; encoded: number; seeded: number };
  examples: {
    query: string;
    query_id?: string;
    reasoning: string;
    forced: boolean;
    timings: { embed_ms: number };
    hits: { id: string; score: number; relevant: boolean }[];
  }[];
  table?: {
    queries: number;
    documents: number;
    rows: { retriever: string; ndcg10: number; recall100: number; seconds: number }[];
  };
}

test(
  'demo: builds the index, shows reasoning and hits for ' + '3 claims and the table; a second run loads the index',
  async () => {
    const { dir, cleanup } = tempDir('demo');
    try {
      const model = await tinyModelDir(dir);
      const index = path.join(dir, 'idx');
      const first = runCli(['demo', '--model', model, '--index', index, ...slice], env);
      assert.equal(first.status, 0, first.stderr);
      const out = first.stdout;
      assert.match(out, /^index: built .*idx — \d+ documents encoded, in .* documents\/s\)$/m);
      assert.match(first.stderr, /encoding documents/); // progress on stderr
      for (const [i, claim] of [
        'A deficiency of vitamin B12 increases blood levels of homocysteine.',
        'Insomnia can be effectively treated with cognitive behavioral therapy.',
        'Statins increase blood cholesterol.',
      ].entries()) {
        assert.ok(out.includes(`[${i + 1}/3] ${claim}`), `example ${i + 1} missing:\n${out}`);
      }
      assert.equal(
        out.match(/^ {2}reasoning \(embed token (forced after the 8-token budget|emitted by the model)\): /gm)?.length,
        3,
      );
      assert.equal(out.match(/^ {2}reasoning \+ embedding [\d.]+ m?s, search [\d.]+ m?s$/gm)?.length, 3);
      assert.equal(out.match(/^ {2} [1-5]\. [✓ ] -?\d\.\d{4} {2}\d+ {2}\S/gm)?.length, 15, out);
      assert.match(out, /^SciFact test: 10 queries, \d+ documents/m);
      for (const row of TABLE_ROWS) {
        const m = new RegExp(
          `^${row.replace(/[()+.]/g, '\\$&')} +(\\d\\.\\d{4}) +(\\d\\.\\d{4}) +[\\d.]+ m?s`,
          'm',
        ).exec(out);
        assert.ok(m, `table row '${row}' missing:\n${out}`);
      }
      // The slice holds every judged document of the evaluated claims, so BM25 must find some of them.
      assert.ok(Number(/^BM25 +(\d\.\d{4})/m.exec(out)![1]) > 0.2, out);

      const second = runCli(['demo', '--model', model, '--index', index, ...slice, '--json', '--quiet'], env);
      assert.equal(second.status, 0, second.stderr);
      assert.doesNotMatch(second.stderr, /encoding|searching/);
      const r = JSON.parse(second.stdout) as DemoJson;
      const builtDocs = Number(/(\d+) documents encoded/.exec(out)![1]);
      assert.deepEqual(r.index, { ...r.index, action: 'loaded', encoded: 0, documents: builtDocs });
      assert.deepEqual(
        r.examples.map((e) => e.query_id),
        ['36', '641', '1100'],
      );
      const qrels = shippedQrels();
      for (const e of r.examples) {
        assert.equal(e.hits.length, 5);
        assert.ok(e.timings.embed_ms > 0);
        for (const h of e.hits) assert.equal(h.relevant, qrels.get(e.query_id!)!.has(h.id), `${e.query_id}/${h.id}`);
        assert.deepEqual(
          e.hits.map((h) => h.score),
          [...e.hits.map((h) => h.score)].sort((a, b) => b - a),
        );
      }
      assert.deepEqual(
        r.table!.rows.map((row) => row.retriever),
        TABLE_ROWS,
      );
      assert.equal(r.table!.queries, 10);
      // Reasoning off, every figure is what an independent computation gives; the reasoning-on row generates with
      // the same embedder, and its figures must agree with the text table printed above.
      const reference = await referenceRows(model);
      for (const row of r.table!.rows) {
        const want = reference.get(row.retriever);
        if (want) {
          assert.ok(
            Math.abs(row.ndcg10 - want.ndcg10) < 1e-9,
            `${row.retriever}: nDCG@10 ${row.ndcg10} vs ${want.ndcg10}`,
          );
          assert.ok(Math.abs(row.recall100 - want.recall100) < 1e-9, `${row.retriever}: R@100`);
        }
        const printed = new RegExp(`^${row.retriever.replace(/[()+.]/g, '\\$&')} +(\\d\\.\\d{4}) +(\\d\\.\\d{4})`, 'm');
        const m = printed.exec(out)!;
        assert.deepEqual(
          [Number(m[1]), Number(m[2])],
          [row.ndcg10, row.recall100].map((v) => Number(v.toFixed(4))),
        );
      }

      const own = runCli(
        [
          'demo',
          '--model',
          model,
          '--index',
          index,
          ...slice,
          '--no-table',
          '--quiet',
          '-k',
          '3',
          '--query',
          'Statins increase blood cholesterol.',
          '--query',
          'does vitamin D prevent fractures?',
        ],
        env,
      );
      assert.equal(own.status, 0, own.stderr);
      assert.match(own.stdout, /^index: loaded \d+ documents from .*idx in [\d.]+ m?s$/m);
      assert.match(own.stdout, /^\[1\/2\] Statins increase blood cholesterol\. {3}\(SciFact test claim 1100\)$/m);
      assert.match(own.stdout, /^\[2\/2\] does vitamin D prevent fractures\?$/m);
      assert.equal(own.stdout.match(/^ {2} [1-5]\. /gm)?.length, 6);
      assert.doesNotMatch(own.stdout, /nDCG@10/);
    } finally {
      cleanup();
    }
  },
);

test("demo: the hybrid row fuses with the model's stored weights (search-r3.json) and names them", async () => {
  const { dir, cleanup } = tempDir('demo-fusion');
  try {
    const model = await tinyModelDir(dir);
    const fusion = { denseWeight: 0.3, k: 10 };
    await writeModelFusion(model, { ...fusion, chosenOn: 'a dev set' });
    const args = ['demo', '--model', model, '--index', path.join(dir, 'idx'), ...slice, '--json', '--quiet'];
    const r = runCli(args, env);
    assert.equal(r.status, 0, r.stderr);
    const row = (JSON.parse(r.stdout) as DemoJson).table!.rows[3]!;
    const label = 'hybrid (BM25 + reasoning off, RRF: dense weight 0.3, k 10)';
    assert.equal(row.retriever, label);
    const want = (await referenceRows(model, fusion)).get(label)!;
    assert.ok(Math.abs(row.ndcg10 - want.ndcg10) < 1e-9, `nDCG@10 ${row.ndcg10} vs ${want.ndcg10}`);
    assert.ok(Math.abs(row.recall100 - want.recall100) < 1e-9, `R@100 ${row.recall100} vs ${want.recall100}`);
  } finally {
    cleanup();
  }
});

test('demo: --write-vectors ships the vectors in the model folder; a first run then encodes nothing', async () => {
  const { dir, cleanup } = tempDir('demo-vectors');
  try {
    const model = await tinyModelDir(dir);
    const fingerprint = await modelFingerprint(model);
    const quick = [...slice, '--no-table', '--json', '--quiet'];
    const encoded = runCli(['demo', '--model', model, '--index', path.join(dir, 'encoded'), ...quick], env);
    assert.equal(encoded.status, 0, encoded.stderr);
    const plain = JSON.parse(encoded.stdout) as DemoJson;
    assert.equal(plain.index.seeded, 0);

    const write = runCli(['demo', '--model', model, '--write-vectors', ...slice], env);
    assert.equal(write.status, 0, write.stderr);
    const file = path.join(model, 'demo-index/vectors.safetensors');
    assert.ok(write.stdout.includes(`wrote ${file}: ${plain.index.documents} vectors of dimension 32`), write.stdout);
    assert.doesNotMatch(write.stdout, /^\[1\/3\]/m); // nothing but the vectors
    assert.equal(await modelFingerprint(model), fingerprint, "the vectors change the model folder's identity");

    const seeded = runCli(['demo', '--model', model, '--index', path.join(dir, 'seeded'), ...quick], env);
    assert.equal(seeded.status, 0, seeded.stderr);
    const r = JSON.parse(seeded.stdout) as DemoJson;
    assert.deepEqual(r.index, { ...r.index, action: 'built', encoded: 0, seeded: plain.index.documents });
    assert.deepEqual(
      r.examples,
      plain.examples.map((e, i) => ({ ...e, timings: r.examples[i]!.timings })),
    );

    // the same file in another model's folder is not used: its vectors are another model's
    const other = await tinyModelDir(dir, 8);
    mkdirSync(path.join(other, 'demo-index'));
    copyFileSync(file, path.join(other, 'demo-index/vectors.safetensors'));
    const refused = runCli(['demo', '--model', other, '--index', path.join(dir, 'other'), ...slice, '--no-table'], env);
    assert.equal(refused.status, 0, refused.stderr);
    assert.match(
      refused.stderr,
      /not using the model's shipped vectors: .* was made with another model; encoding instead/,
    );
    assert.match(refused.stdout, new RegExp(`— ${plain.index.documents} documents encoded, in `));

    // what it would not run is named, and only what was given
    for (const [extra, named] of [
      [['--web'], '--web'],
      [['--query', 'statins'], '--query'],
      [['--web', '--query', 'statins'], '--web, --query'],
    ] as const) {
      const r = runCli(['demo', '--model', model, '--write-vectors', ...extra], env);
      assert.equal(r.status, 2, extra.join(' '));
      assert.equal(r.stderr, `search-r3: --write-vectors encodes the corpus and runs nothing else: drop ${named}.\n`);
    }
    // --max-queries picks the table's claims: where no table runs, and no slice of abstracts is asked for, it
    // would do nothing
    for (const without of ['--no-table', '--write-vectors']) {
      const r = runCli(['demo', '--model', model, without, '--max-queries', '5'], env);
      assert.equal(r.status, 2, without);
      assert.equal(
        r.stderr,
        `search-r3: --max-queries is for the table, which ${without} does not run (with --max-documents it also ` +
          'picks the abstracts of the slice): drop it.\n',
      );
    }
  } finally {
    cleanup();
  }
});

test('demo --web: the options of the examples and the table are refused, as --web would ignore them', () => {
  const { dir, cleanup } = tempDir('demo-web-options');
  try {
    const base = ['demo', '--web', '--model', path.join(dir, 'nope'), '--index', path.join(dir, 'idx')];
    const cases: Array<[string[], string]> = [
      [['--query', 'does vitamin D prevent fractures?'], '--query is'],
      [['-k', '3'], '-k is'],
      [['--max-reasoning-tokens', '64'], '--max-reasoning-tokens is'],
      [['--no-table'], '--no-table is'],
      [['--json'], '--json is'],
      [['--json', '--no-table', '-k', '3'], '-k, --no-table, --json are'],
    ];
    for (const [extra, options] of cases) {
      // the JS backend: no note about the native one comes before the sentence
      const r = runCli([...base, ...extra], { ...env, SEARCH_R3_BACKEND: 'js' });
      assert.equal(r.status, 2, r.stderr);
      const it = options.endsWith(' are') ? 'them' : 'it';
      assert.equal(
        r.stderr,
        `search-r3: ${options} for the examples and the table, which --web does not run: drop ${it}, or --web.\n`,
      );
      assert.equal(r.stdout, '');
    }
    assert.equal(existsSync(path.join(dir, 'idx')), false);
  } finally {
    cleanup();
  }
});

test('demo: a missing model is one line naming what to do, exit code 2', () => {
  const { dir, cleanup } = tempDir('demo-missing');
  try {
    const r = runCli(['demo', '--model', path.join(dir, 'nope'), '--index', path.join(dir, 'idx')], env);
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.includes('native backend'))
        .join('\n'),
      `search-r3: --model ${path.join(dir, 'nope')}: not a model folder (no config.json or adapter_config.json); ` +
        `pass a folder written by 'search-r3 train' or the recipe.`,
    );
    assert.equal(existsSync(path.join(dir, 'idx')), false);
  } finally {
    cleanup();
  }
});

test(
  'demo: without the default model in the checkout it says how to get one',
  { skip: existsSync(path.join(repoRoot, 'models/search-r3-default/config.json')) && 'the default model is present' },
  () => {
    const r = runCli(['demo', '--no-table'], env);
    assert.equal(r.status, 2);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.includes('native backend'));
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      new RegExp(
        '^search-r3: the default model is not in this checkout \\(.*models/search-r3-default\\); ' +
          "train it with 'npm run train:default' or pass --model <dir>\\.$",
      ),
    );
  },
);

test("demo: an --index that holds a user's own documents is refused and left as it was", async () => {
  const { dir, cleanup } = tempDir('demo-foreign');
  try {
    const model = await tinyModelDir(dir);
    const idx = path.join(dir, 'mine');
    writeJsonl(path.join(dir, 'own.jsonl'), [
      { id: 'a', title: 'notes', text: 'my own notes on vitamin D' },
      { id: 'b', title: 'more', text: 'a second note' },
    ]);
    const built = runCli(['index', '--model', model, '--input', path.join(dir, 'own.jsonl'), '--out', idx], env);
    assert.equal(built.status, 0, built.stderr);
    const r = runCli(['demo', '--model', model, '--index', idx, '--no-table', ...slice], env);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--index .*mine holds 2 documents that are not SciFact abstracts \('a', 'b'\)/);
    const listed = runCli(['search', '--index', idx, '--json', '-k', '5', 'vitamin'], env);
    assert.equal(listed.status, 0, listed.stderr);
    const ids = (JSON.parse(listed.stdout) as { data: { id: string }[] }).data.map((h) => h.id).sort();
    assert.deepEqual(ids, ['a', 'b']);
  } finally {
    cleanup();
  }
});

test('demo prints elapsed times rounded as shown: 419.6 s is 7m00s, not 6m60s', () => {
  const cases: [number, string][] = [
    [0.0042, '4.2 ms'],
    [0.5, '500 ms'],
    [0.9997, '1.0 s'],
    [12.34, '12.3 s'],
    [59.96, '1m00s'],
    [125, '2m05s'],
    [419.4, '6m59s'],
    [419.6, '7m00s'],
    [3599.7, '60m00s'],
  ];
  assert.deepEqual(
    cases.map(([s]) => duration(s)),
    cases.map(([, want]) => want),
  );
});
