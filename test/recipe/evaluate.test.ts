import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runRecipeEvaluate } from '../../src/cli/recipe-evaluate.js';
import { UserError } from '../../src/cli/command.js';
import { readBeirDataset } from '../../src/eval/beir.js';
import { evaluateRun } from '../../src/eval/measures.js';
import { readTrecRun } from '../../src/eval/run.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import {
  evaluateRecipeModels,
  RECIPE_EVALUATION_SCHEMA,
  RECIPE_ROWS,
  type RecipeEvaluateOptions,
  type RecipeEvaluation,
} from '../../src/recipe/evaluate.js';
import { PROFILES, recipePaths } from '../../src/recipe/recipe-profiles.js';
import { loadRlConfig } from '../../src/train/rl/config.js';
import { loadRlData } from '../../src/train/rl/data.js';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { loadTrainingData } from '../../src/train/sft/data.js';
import { subsetDevSet, type DevSet } from '../../src/eval/dev-eval.js';
import { chooseFusion, type FusionDevCase } from '../../src/search-index/fusion-choice.js';
import { runCli } from '../helpers/cli.js';
import { DAMAGE_KINDS, damageFile } from '../helpers/damage.js';
import {
  exactRandomizationP,
  referenceNdcg,
  referenceRecall,
  studentTwoSidedP,
} from '../helpers/reference-measures.js';
import { sharedData } from '../helpers/repo.js';
import { tinyModel } from '../helpers/tiny-model.js';

const MAX_QUERIES = 10;
const MAX_DOCUMENTS = 20;

let dir = '';
let options: RecipeEvaluateOptions;
let first: RecipeEvaluation;
let firstStages: string[] = [];

/** Runs the evaluation, recording progress stage names and log lines. */
async function evaluate(): Promise<{ report: RecipeEvaluation; stages: string[]; log: string[] }> {
  const stages: string[] = [];
  const log: string[] = [];
  const report = await evaluateRecipeModels({
    ...options,
    onProgress: (s) => stages.push(s),
    onLog: (l) => log.push(l),
  });
  return { report, stages, log };
}

/**
 * The record of a recipe-trained model: the tiny profile's mine, stage-1 and stage-2 configs in its configs/ (as
 * the package step writes them), which hold SciFact's dev sample out.
 */
function writeRecipeConfigs(model: string): void {
  const p = recipePaths(join(dir, 'work'), sharedData);
  mkdirSync(join(model, 'configs'), { recursive: true });
  for (const name of ['mine', 'stage1', 'stage2'] as const)
    writeFileSync(join(model, 'configs', `${name}.json`), JSON.stringify(PROFILES.tiny[name](p), null, 2));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sr3-recipe-eval-'));
  await saveModelFolder(join(dir, 'stage1'), tinyModel(3));
  await saveModelFolder(join(dir, 'stage2'), tinyModel(4));
  writeRecipeConfigs(join(dir, 'stage2'));
  options = {
    stage1: join(dir, 'stage1'),
    stage2: join(dir, 'stage2'),
    out: join(dir, 'out'),
    data: sharedData,
    datasets: ['scifact', 'xquad-de'],
    maxQueries: MAX_QUERIES,
    maxDocuments: MAX_DOCUMENTS,
    maxReasoningTokens: 4,
    trials: 2000,
  };
  const r = await evaluate();
  first = r.report;
  firstStages = r.stages;
});

after(() => rmSync(dir, { recursive: true, force: true }));

const row = (r: RecipeEvaluation, ds: string, id: string) =>
  r.datasets.find((d) => d.id === ds)!.rows.find((x) => x.id === id)!;

/** The judgements of the evaluated subset (XQuAD de: the German questions' qrels against English paragraphs). */
async function subsetQrels(id: 'scifact' | 'xquad-de'): Promise<DevSet['qrels']> {
  const ds = await readBeirDataset(join(sharedData, id === 'scifact' ? 'scifact' : 'xquad/beir/de'), 'test');
  const corpus =
    id === 'scifact' ? ds.corpus : (await readBeirDataset(join(sharedData, 'xquad/beir/en'), 'test')).corpus;
  return subsetDevSet({ corpus, queries: ds.queries, qrels: ds.qrels }, MAX_QUERIES, MAX_DOCUMENTS).qrels;
}

test('evaluation.json holds the whole report and evaluation.md a table per dataset with p-values', async () => {
  const json = JSON.parse(readFileSync(join(dir, 'out', 'evaluation.json'), 'utf8')) as RecipeEvaluation;
  assert.deepEqual(json, JSON.parse(JSON.stringify(first)));
  assert.equal(json.schema, RECIPE_EVALUATION_SCHEMA);
  assert.equal(json.models.stage1.folder, join(dir, 'stage1'));
  assert.match(json.models.stage2.fingerprint, /^sha256:/);
  assert.equal(json.settings.seed, 42);
  assert.equal(json.settings.maxReasoningTokens, 4);
  assert.deepEqual(
    json.datasets.map((d) => d.id),
    ['scifact', 'xquad-de'],
  );
  for (const d of json.datasets) {
    assert.equal(d.queries, MAX_QUERIES);
    assert.ok(
      d.documents > MAX_DOCUMENTS && d.documents <= MAX_DOCUMENTS + 3 * MAX_QUERIES,
      `${d.id}: ${d.documents} documents`,
    );
    assert.deepEqual(
      d.rows.map((r) => r.id),
      [...RECIPE_ROWS],
    );
    const qrels = await subsetQrels(d.id as 'scifact' | 'xquad-de');
    const perQuery = new Map<string, Map<string, number>>();
    for (const r of d.rows) {
      // the figures again, from the run files, by the measures' definitions rather than the eval layer's code
      const { run } = await readTrecRun(r.runFile);
      const ndcg = referenceNdcg(run, qrels, 10);
      perQuery.set(r.id, ndcg.perQuery);
      assert.ok(Math.abs(r.ndcg10 - ndcg.mean) < 1e-12, `${d.id} ${r.id}: nDCG@10 ${r.ndcg10} vs ${ndcg.mean}`);
      assert.ok(Math.abs(r.recall100 - referenceRecall(run, qrels, 100)) < 1e-12, `${d.id} ${r.id}: R@100`);
      assert.ok(r.seconds >= 0, `${d.id} ${r.id}`);
      assert.equal(r.reasoning === null, !r.id.endsWith('-on'), `${d.id} ${r.id} reasoning stats`);
    }
    for (const id of ['stage1-on', 'stage2-on']) {
      const rs = d.rows.find((r) => r.id === id)!.reasoning!;
      assert.equal(rs.queries, MAX_QUERIES);
      assert.ok(
        rs.forcedFraction >= 0 && rs.forcedFraction <= 1 && rs.meanReasoningTokens >= 0 && rs.meanReasoningTokens <= 4,
        JSON.stringify(rs),
      );
    }
    assert.deepEqual(
      d.significance.map((c) => `${c.a}/${c.b}`),
      [
        'stage2-off/stage1-off',
        'stage2-on/stage1-on',
        'stage1-on/stage1-off',
        'stage2-on/stage2-off',
        'hybrid-off/bm25',
        'hybrid-on/bm25',
      ],
    );
    for (const c of d.significance) {
      assert.equal(c.n, MAX_QUERIES);
      assert.equal(c.meanA, row(json, d.id, c.a).ndcg10);
      // the t statistic from the per-query differences, by its definition; the p-value is its two-sided tail
      const diffs = [...perQuery.get(c.a)!.keys()].map((q) => perQuery.get(c.a)!.get(q)! - perQuery.get(c.b)!.get(q)!);
      const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
      const sd = Math.sqrt(diffs.reduce((a, x) => a + (x - mean) ** 2, 0) / (diffs.length - 1));
      assert.ok(Math.abs(c.difference - mean) < 1e-12, `${d.id} ${c.a} vs ${c.b}: difference`);
      if (sd === 0) assert.equal(c.tTestP, mean === 0 ? 1 : 0);
      else
        assert.ok(
          Math.abs(c.tTestP! - studentTwoSidedP(mean / (sd / Math.sqrt(diffs.length)), diffs.length - 1)) < 1e-6,
        );
      // the Monte Carlo p against the exact one over all 2^n sign flips, within 5 standard errors of its trials
      const exact = exactRandomizationP(diffs);
      const trials = 10000;
      const within = 5 * Math.sqrt((exact * (1 - exact)) / trials) + 2 / (trials + 1);
      assert.ok(
        Math.abs(c.randomizationP! - exact) <= within,
        `${d.id} ${c.a} vs ${c.b}: ${c.randomizationP} vs ${exact}`,
      );
    }
    assert.equal(d.documentEmbeddings.stage2.documents, d.documents);
  }
  // XQuAD de searches the English paragraphs: the corpus subset is the same as XQuAD en's would be, in English.
  assert.match(json.datasets[1]!.corpusFolder, /xquad\/beir\/en$/);
  const md = readFileSync(join(dir, 'out', 'evaluation.md'), 'utf8');
  for (const s of [
    '## SciFact test',
    '## XQuAD de → en paragraphs',
    '| BM25 |',
    '| RRF(BM25, stage 2 on) |',
    'p (t-test)',
    'Produced by',
    'Not the full benchmark',
    '## Hybrid fusion (chosen on dev sets, never on test)',
    `Dense weight ${json.fusion.denseWeight}, BM25 weight `,
    '| SciFact train, a 300-query sample | train (seeded sample, seed 1) | 10 |',
    '| NFCorpus dev (preprocessed text) | dev | 10 |',
  ]) {
    assert.ok(md.includes(s), `evaluation.md lacks '${s}'`);
  }
});

/** The subset as a BEIR folder, so that `search-r3 eval` can evaluate it by the existing path. */
function writeBeir(folder: string, set: DevSet): void {
  mkdirSync(join(folder, 'qrels'), { recursive: true });
  writeFileSync(
    join(folder, 'corpus.jsonl'),
    set.corpus.map((d) => JSON.stringify({ _id: d.id, title: d.title, text: d.text })).join('\n') + '\n',
  );
  writeFileSync(
    join(folder, 'queries.jsonl'),
    [...set.queries].map(([id, text]) => JSON.stringify({ _id: id, text })).join('\n') + '\n',
  );
  const lines = [...set.qrels].flatMap(([q, docs]) => [...docs].map(([d, g]) => `${q}\t${d}\t${g}`));
  writeFileSync(join(folder, 'qrels', 'test.tsv'), ['query-id\tcorpus-id\tscore', ...lines].join('\n') + '\n');
}

test(
  'the BM25 row equals search-r3 eval --retriever bm25 on the ' +
    'same subset (XQuAD de: German questions, English paragraphs)',
  async () => {
    const scifact = await readBeirDataset(join(sharedData, 'scifact'), 'test');
    const de = await readBeirDataset(join(sharedData, 'xquad/beir/de'), 'test');
    const en = await readBeirDataset(join(sharedData, 'xquad/beir/en'), 'test');
    const sets: [string, DevSet][] = [
      ['scifact', subsetDevSet(scifact, MAX_QUERIES, MAX_DOCUMENTS)],
      [
        'xquad-de',
        subsetDevSet({ corpus: en.corpus, queries: de.queries, qrels: de.qrels }, MAX_QUERIES, MAX_DOCUMENTS),
      ],
    ];
    for (const [id, set] of sets) {
      const folder = join(dir, `beir-${id}`);
      writeBeir(folder, set);
      const r = runCli(['eval', '--dataset', folder, '--retriever', 'bm25', '--json', '--cutoffs', '10,100']);
      assert.equal(r.status, 0, r.stderr);
      const cli = JSON.parse(r.stdout) as {
        numQueries: number;
        all: Record<string, number>;
        dataset: { documents: number };
      };
      assert.equal(cli.dataset.documents, first.datasets.find((d) => d.id === id)!.documents);
      assert.equal(row(first, id, 'bm25').ndcg10, cli.all['ndcg_cut_10'], id);
      assert.equal(row(first, id, 'bm25').recall100, cli.all['recall_100'], id);
    }
  },
);

test('the fusion is chosen on dev runs only (SciFact train sample, NFCorpus dev), by the chooser', async () => {
  const { fusion } = first;
  assert.deepEqual(
    fusion.devSets.map((d) => [d.id, d.split, d.queries]),
    [
      ['scifact-dev', 'train', MAX_QUERIES],
      ['nfcorpus-dev', 'dev', MAX_QUERIES],
    ],
  );
  const scifactTest = (await readBeirDataset(join(sharedData, 'scifact'), 'test')).queries;
  const cases: FusionDevCase[] = [];
  for (const d of fusion.devSets) {
    const judged = (await readBeirDataset(d.queriesFolder, d.split)).qrels;
    const [bm25, off, on] = await Promise.all(
      [d.runFiles.bm25, d.runFiles['stage2-off'], d.runFiles['stage2-on']].map(async (f) => (await readTrecRun(f)).run),
    );
    const queries = [...off!.keys()];
    assert.equal(queries.length, MAX_QUERIES);
    for (const q of queries) {
      assert.ok(judged.has(q), `${d.id}: ${q} is judged in ${d.split}`);
      assert.ok(d.id !== 'scifact-dev' || !scifactTest.has(q), `${d.id}: ${q} is a SciFact test query`);
    }
    const qrels = new Map(queries.map((q) => [q, judged.get(q)!]));
    for (const dense of [off!, on!]) cases.push({ split: d.split, dense, bm25: bm25!, qrels });
  }
  const choice = chooseFusion(cases);
  assert.deepEqual(
    [fusion.denseWeight, fusion.k, fusion.devNdcg10],
    [choice.fusion.denseWeight, choice.fusion.k, choice.ndcg10],
  );
  assert.equal(fusion.plainRrfDevNdcg10, choice.candidates.find((c) => c.denseWeight === 0.5 && c.k === 60)!.ndcg10);
  assert.match(fusion.chosenOn, /^SciFact train, a 300-query sample \(10 queries\) \+ NFCorpus dev/);
  assert.deepEqual(fusion.skippedDevSets, []);
});

test("the SciFact dev queries are none of the queries the model's recorded configs train on", async () => {
  const dev = first.fusion.devSets.find((d) => d.id === 'scifact-dev')!;
  const devQueries = [...(await readTrecRun(dev.runFiles['stage2-off'])).run.keys()];
  const texts = (await readBeirDataset(dev.queriesFolder, dev.split)).queries;
  const configs = join(options.stage2, 'configs');
  const mined = await loadTrainingData(loadSftConfig(join(configs, 'mine.json')).data);
  const trained = new Set(mined.examples.map((e) => e.query));
  const rl = loadRlConfig(join(configs, 'stage2.json')).data;
  const rlQueries = new Set((await loadRlData({ ...rl, maxQueries: 0 })).queries.map((q) => q.id));
  assert.equal(devQueries.length, MAX_QUERIES);
  for (const q of devQueries) {
    assert.ok(!trained.has(texts.get(q)!), `${q} is mined for stage 1`);
    assert.ok(!rlQueries.has(q), `${q} is a stage-2 query`);
  }
});

test('scifact-dev is left out of the choice for a stage-2 model without the hold-out record, and said so', async () => {
  // the same weights, so the cached dev runs are reused: one folder without configs/, one whose stage 2 trained on
  // the whole split
  const bare = join(dir, 'stage2-bare'),
    leaky = join(dir, 'stage2-leaky');
  cpSync(options.stage2, bare, { recursive: true });
  rmSync(join(bare, 'configs'), { recursive: true });
  cpSync(options.stage2, leaky, { recursive: true });
  const stage2Json = join(leaky, 'configs', 'stage2.json');
  const cfg = JSON.parse(readFileSync(stage2Json, 'utf8')) as { data: Record<string, unknown> };
  delete cfg.data.holdOut;
  writeFileSync(stage2Json, JSON.stringify(cfg));

  const nfcorpus = first.fusion.devSets.find((d) => d.id === 'nfcorpus-dev')!;
  for (const [model, reason] of [
    [
      bare,
      new RegExp(
        '^it cannot be confirmed that the model held these queries out of training: ' +
          `${join(bare, 'configs')} has no mine.json, stage1.json, stage2.json: the model's training data is not` +
          ' recorded$',
      ),
    ],
    [
      leaky,
      new RegExp(
        '^the model may have trained on these queries: stage2 config, data reads \\S+/scifact ' +
          '\\(split train\\) without holding out the dev sample \\{n: 300, seed: 1\\}$',
      ),
    ],
  ] as const) {
    const log: string[] = [];
    const out = `${model}-evaluation`;
    const r = await evaluateRecipeModels({
      ...options,
      stage2: model,
      out,
      work: join(options.out, 'work'),
      datasets: [],
      onLog: (l) => log.push(l),
    });
    const f = r.fusion;
    assert.deepEqual(
      f.devSets.map((d) => d.id),
      ['nfcorpus-dev'],
    );
    assert.deepEqual(
      f.skippedDevSets.map((d) => [d.id, d.label]),
      [['scifact-dev', 'SciFact train, a 300-query sample']],
    );
    assert.match(f.skippedDevSets[0]!.reason, reason);
    assert.ok(log.includes(`scifact-dev: left out of the fusion choice: ${f.skippedDevSets[0]!.reason}`));
    assert.match(f.chosenOn, /^NFCorpus dev \(preprocessed text\) \(10 queries\); stage 2/);
    // chosen on NFCorpus dev's runs alone, the same cached runs as the model with the record
    assert.equal(f.devSets[0]!.runFiles.bm25, nfcorpus.runFiles.bm25);
    const judged = (await readBeirDataset(nfcorpus.queriesFolder, nfcorpus.split)).qrels;
    const [bm25, off, on] = await Promise.all(
      [nfcorpus.runFiles.bm25, nfcorpus.runFiles['stage2-off'], nfcorpus.runFiles['stage2-on']].map(
        async (file) => (await readTrecRun(file)).run,
      ),
    );
    const qrels = new Map([...off!.keys()].map((q) => [q, judged.get(q)!]));
    const choice = chooseFusion([off!, on!].map((dense) => ({ split: 'dev', dense, bm25: bm25!, qrels })));
    assert.deepEqual([f.denseWeight, f.k, f.devNdcg10], [choice.fusion.denseWeight, choice.fusion.k, choice.ndcg10]);
    const json = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as RecipeEvaluation;
    assert.deepEqual(json.fusion.skippedDevSets, f.skippedDevSets);
    const md = readFileSync(join(out, 'evaluation.md'), 'utf8');
    assert.ok(md.includes(`Left out: SciFact train, a 300-query sample, because ${f.skippedDevSets[0]!.reason}.`));
    assert.ok(!md.includes('| SciFact train, a 300-query sample |'), 'no row of the left-out dev set');
  }
});

test('a hybrid row fuses the cached BM25 and stage-2 runs with the fusion chosen on dev', async () => {
  const qrels = (await readBeirDataset(join(sharedData, 'scifact'), 'test')).qrels;
  const { denseWeight: w, k } = first.fusion;
  for (const [hybrid, dense] of [
    ['hybrid-off', 'stage2-off'],
    ['hybrid-on', 'stage2-on'],
  ]) {
    const parts = await Promise.all(
      [row(first, 'scifact', dense!), row(first, 'scifact', 'bm25')].map((r) => readTrecRun(r.runFile)),
    );
    // Run files list documents in rank order, so a document's rank is its position + 1.
    const expected = new Map<string, Map<string, number>>();
    parts.forEach(({ run }, l) => {
      const weight = l === 0 ? w : 1 - w;
      for (const [q, list] of run) {
        const m = expected.get(q) ?? new Map<string, number>();
        list.docIds.forEach((d, i) => m.set(d, (m.get(d) ?? 0) + weight / (k + i + 1)));
        expected.set(q, m);
      }
    });
    const fused = (await readTrecRun(row(first, 'scifact', hybrid!).runFile)).run;
    assert.equal(fused.size, MAX_QUERIES);
    for (const [q, list] of fused) {
      assert.equal(
        list.docIds.length,
        expected.get(q)!.size,
        `${hybrid} ${q}: every document of either run (fewer than 1000)`,
      );
      list.docIds.forEach((d, i) =>
        assert.ok(Math.abs(list.scores[i]! - expected.get(q)!.get(d)!) < 1e-15, `${hybrid} ${q} ${d}`),
      );
    }
    const subsetQrels = new Map([...qrels].filter(([q]) => fused.has(q)));
    assert.equal(
      evaluateRun(fused, subsetQrels, { cutoffs: [10, 100], complete: true }).all['ndcg_cut_10'],
      row(first, 'scifact', hybrid!).ndcg10,
    );
  }
});

test('a second call reuses every cached run, and after a kill only the unfinished run is recomputed', async () => {
  assert.ok(
    firstStages.some((s) => s.endsWith('encoding documents')),
    'the first call embedded documents',
  );
  assert.ok(firstStages.some((s) => s.startsWith('xquad-de stage 2, reasoning on: encoding queries')));
  const again = await evaluate();
  assert.deepEqual(again.stages, [], 'nothing encoded, indexed or searched again');
  for (const d of again.report.datasets) for (const r of d.rows) assert.equal(r.reused, true, `${d.id} ${r.id}`);
  assert.ok(again.log.some((l) => /scifact: stage 2, reasoning on reused/.test(l)));
  // Recorded wall times come back with the runs (a hybrid's fusion is redone, so its time differs slightly).
  const values = (r: RecipeEvaluation) =>
    r.datasets.map((d) => d.rows.map((x) => [x.id, x.ndcg10, x.recall100, x.id.startsWith('hybrid') ? 0 : x.seconds]));
  assert.deepEqual(values(again.report), values(first));

  // A run killed before its sidecar was written: only that row is recomputed, from the cached document shards.
  const killed = row(first, 'scifact', 'stage2-on').runFile;
  unlinkSync(killed.replace(/\.trec$/, '.json'));
  const resumed = await evaluate();
  assert.deepEqual(
    resumed.stages.filter((s) => s.startsWith('scifact') && s.endsWith('encoding documents')),
    [],
    'documents not embedded again',
  );
  assert.ok(resumed.stages.some((s) => s === 'scifact stage 2, reasoning on: encoding queries'));
  assert.ok(!resumed.stages.some((s) => s.startsWith('xquad-de')), 'xquad-de fully reused');
  for (const d of resumed.report.datasets) {
    for (const r of d.rows)
      assert.equal(
        r.reused,
        !(d.id === 'scifact' && (r.id === 'stage2-on' || r.id === 'hybrid-on')),
        `${d.id} ${r.id}`,
      );
  }
  assert.equal(
    row(resumed.report, 'scifact', 'stage2-on').ndcg10,
    row(first, 'scifact', 'stage2-on').ndcg10,
    'greedy reasoning is deterministic',
  );
});

test(
  'search-r3 recipe evaluate: the CLI entry reuses ' + 'the same work folder, and rejects an unknown dataset',
  async () => {
    const argv = [
      '--stage1',
      options.stage1,
      '--stage2',
      options.stage2,
      '--out',
      options.out,
      '--data',
      sharedData,
      '--datasets',
      'xquad-de',
      '--max-queries',
      String(MAX_QUERIES),
      '--max-documents',
      String(MAX_DOCUMENTS),
      '--max-reasoning-tokens',
      '4',
      '--quiet',
    ];
    let printed = '';
    const stdout = new Writable({
      write(chunk: Buffer, _enc, done) {
        printed += chunk.toString();
        done();
      },
    });
    assert.equal(await runRecipeEvaluate(argv, stdout), 0);
    assert.match(printed, /^1 dataset evaluated in [\d.]+ s; wrote .*evaluation\.json and evaluation\.md\n$/);
    const json = JSON.parse(readFileSync(join(options.out, 'evaluation.json'), 'utf8')) as RecipeEvaluation;
    assert.deepEqual(
      json.datasets.map((d) => d.id),
      ['xquad-de'],
    );
    assert.match(json.producedBy, /^search-r3 recipe evaluate --stage1 /);
    assert.deepEqual(
      json.datasets[0]!.rows.filter((r) => r.id !== 'hybrid-off' && r.id !== 'hybrid-on').map((r) => r.reused),
      [true, true, true, true, true],
    );
    await assert.rejects(
      runRecipeEvaluate([...argv.slice(0, 6), '--datasets', 'scifact,msmarco']),
      (e: unknown) => e instanceof UserError && /unknown 'msmarco'/.test(e.message),
    );
    await assert.rejects(
      runRecipeEvaluate(['--stage1', options.stage1, '--out', options.out]),
      (e: unknown) => e instanceof UserError && /--stage2 <dir> is required/.test(e.message),
    );
    // a file as --out or --work is refused before any run (it was ENOTDIR, once the first run was written)
    const file = join(options.out, 'evaluation.md');
    const stage = ['--stage1', options.stage1, '--stage2', options.stage2];
    for (const [given, option] of [
      [['--out', file], '--out'],
      [['--out', options.out, '--work', file], '--work'],
    ] as const) {
      await assert.rejects(
        runRecipeEvaluate([...stage, ...given]),
        (e: unknown) =>
          e instanceof UserError && e.message === `${option} ${file} is a file; name a folder to write into.`,
      );
    }
  },
);

test(
  'a damaged cached run or document shard is named in ' + 'a warning and computed again, to the same figures',
  async () => {
    const runFile = row(first, 'xquad-de', 'bm25').runFile;
    for (const [k, kind] of DAMAGE_KINDS.entries()) {
      damageFile(runFile, kind, k + 1);
      const r = await evaluate();
      const warned = r.log.some((l) => l.startsWith(`warning: ${runFile}`) && l.endsWith('; computed again'));
      assert.ok(warned, `${kind}: ${r.log.join('\n')}`);
      assert.equal(row(r.report, 'xquad-de', 'bm25').reused, false, kind);
      assert.equal(row(r.report, 'xquad-de', 'bm25').ndcg10, row(first, 'xquad-de', 'bm25').ndcg10, kind);
    }
    // a document shard is read again when a run that needs it is computed again
    const shards = join(options.out, 'work', 'embeddings');
    for (const folder of readdirSync(shards)) damageFile(join(shards, folder, 'shard-00000.npy'), 'bitflip');
    unlinkSync(row(first, 'xquad-de', 'stage1-off').runFile.replace(/\.trec$/, '.json'));
    const r = await evaluate();
    const shardWarning = /^warning: \S+shard-00000\.npy does not match its record \S+shard-00000\.json; computed/;
    assert.ok(
      r.log.some((l) => shardWarning.test(l)),
      r.log.join('\n'),
    );
    assert.equal(row(r.report, 'xquad-de', 'stage1-off').ndcg10, row(first, 'xquad-de', 'stage1-off').ndcg10);
    // a record that is JSON but no record ('5'), or one without its checksums ('{}'), was reused and crashed on
    // its missing facts at every rerun
    const record = runFile.replace(/\.trec$/, '.json');
    for (const text of ['5', '{}']) {
      writeFileSync(record, text);
      const again = await evaluate();
      assert.equal(row(again.report, 'xquad-de', 'bm25').reused, false, text);
      assert.equal(row(again.report, 'xquad-de', 'bm25').ndcg10, row(first, 'xquad-de', 'bm25').ndcg10, text);
    }
    assert.ok(
      (await evaluate()).log.every((l) => !l.includes(record)),
      'the record written again is reused without a word',
    );
  },
);
