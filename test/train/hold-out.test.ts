/**
 * A dev sample held out of training (`holdOut`): the queries sampleDevQueries draws from a split never reach
 * stage 1's examples, the mined file stage 1 reads, or stage 2's queries, on SciFact train with the recipe's dev
 * sample; every other judged query still does. A bad holdOut is refused with the key named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readBeirDataset } from '../../src/eval/beir.js';
import { sampleDevQueries } from '../../src/eval/dev-eval.js';
import { SCIFACT_DEV } from '../../src/recipe/recipe-profiles.js';
import { ConfigError } from '../../src/train/config-merge.js';
import { parseRlConfig } from '../../src/train/rl/config.js';
import { loadRlData } from '../../src/train/rl/data.js';
import { parseSftConfig } from '../../src/train/sft/config.js';
import { loadTrainingData } from '../../src/train/sft/data.js';
import { runCli } from '../helpers/cli.js';
import { sharedData } from '../helpers/repo.js';
import { rlFixture, tempDir, toyBeir, toySftRun, writeConfig } from '../helpers/train-fixtures.js';

const scifact = path.join(sharedData, 'scifact');
const sample = { ...SCIFACT_DEV.sample };

const sft = (data: unknown[]): ReturnType<typeof parseSftConfig> =>
  parseSftConfig({ model: 'm', output: 'o', data }, '/');
const rl = (data: Record<string, unknown>): ReturnType<typeof parseRlConfig> =>
  parseRlConfig({ model: 'm', output: 'o', data: { beir: scifact, ...data } }, '/');

/**
 * SciFact train's judged queries, the dev sample recipe evaluate draws from them, those with a test query's
 * text, and the queries a trainer may read: neither drawn, nor the same text as a drawn one or a test query.
 */
async function trainAndDev(): Promise<{
  train: Map<string, string>;
  dev: Map<string, string>;
  testTwins: string[];
  kept: string[];
}> {
  const ds = await readBeirDataset(scifact, 'train');
  const testTexts = new Set((await readBeirDataset(scifact, 'test')).queries.values());
  const dev = sampleDevQueries(ds, sample.n, sample.seed).queries;
  const devTexts = new Set(dev.values());
  const testTwins = [...ds.queries].filter(([, text]) => testTexts.has(text)).map(([q]) => q);
  const kept = [...ds.queries]
    .filter(([q, text]) => !dev.has(q) && !devTexts.has(text) && !testTexts.has(text))
    .map(([q]) => q);
  return { train: ds.queries, dev, testTwins, kept };
}

test('no training split yields a query with the text of one of its folder’s test queries', async () => {
  const { train, testTwins } = await trainAndDev();
  // SciFact train repeats two test claims under other ids ("Obesity decreases life quality.", 871 and 870)
  assert.deepEqual(testTwins.sort(), ['1291', '871']);
  const { examples } = await loadTrainingData(sft([{ type: 'beir', path: scifact, split: 'train' }]).data);
  assert.deepEqual(
    examples.map((e) => e.query),
    [...train].filter(([q]) => !testTwins.includes(q)).map(([, text]) => text),
  );
  const rlData = await loadRlData(rl({ split: 'train' }).data);
  assert.ok(!rlData.queries.some((q) => testTwins.includes(q.id)));
  assert.equal(rlData.queries.length, train.size - testTwins.length);
});

test('stage 1 and mining: a beir source with holdOut yields every judged query but the dev sample', async () => {
  const { train, dev, testTwins, kept } = await trainAndDev();
  assert.equal(dev.size, 300);
  // SciFact train repeats a claim under two ids, one of them drawn: its twin is held out too (and the two train
  // queries with a test query's text, which no training split yields)
  assert.equal(kept.length, train.size - dev.size - 1 - testTwins.filter((q) => !dev.has(q)).length);
  const cfg = sft([{ type: 'beir', path: scifact, split: 'train', holdOut: sample }]);
  assert.deepEqual(cfg.data[0], { type: 'beir', path: scifact, split: 'train', holdOut: sample });
  const { examples, stats } = await loadTrainingData(cfg.data);
  const twinsKept = testTwins.filter((q) => !dev.has(q)).length;
  assert.deepEqual(stats.heldOut, { devSample: train.size - kept.length - twinsKept, testQueries: twinsKept });
  const devTexts = new Set(dev.values());
  const expected = kept.map((q) => train.get(q)!);
  assert.deepEqual(
    examples.map((e) => e.query),
    expected,
  );
  assert.ok(!examples.some((e) => devTexts.has(e.query)), 'no dev query is trained on');
  // without the option the source is the whole split, dev sample included
  const all = await loadTrainingData(sft([{ type: 'beir', path: scifact, split: 'train' }]).data);
  assert.equal(all.examples.length, train.size - 2);
  assert.deepEqual(all.stats.heldOut, { devSample: 0, testQueries: 2 });

  // `search-r3 mine` writes the file stage 1 reads: only the kept queries, with their mined negatives
  const dir = tempDir('hold-out-mine');
  const config = path.join(dir, 'mine.json');
  writeFileSync(config, JSON.stringify({ model: 'm', output: 'o', data: cfg.data }));
  const out = path.join(dir, 'mined.jsonl');
  const r = runCli(['mine', '--config', config, '--out', out, '--window', '2:20', '--negatives', '2']);
  assert.equal(r.status, 0, r.stderr);
  const { devSample, testQueries } = stats.heldOut;
  assert.match(
    r.stdout,
    new RegExp(`; ${devSample + testQueries} held out: ${devSample} of a holdOut dev sample, ${testQueries} repeating`),
  );
  const mined = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { query: string }).query);
  assert.deepEqual(mined, expected);
});

test('stage 2: data.holdOut leaves the dev sample out of the queries, the corpus whole', async () => {
  const { train, kept } = await trainAndDev();
  const cfg = rl({ split: 'train', holdOut: sample });
  assert.deepEqual(cfg.data.holdOut, sample);
  const data = await loadRlData(cfg.data);
  const ids = data.queries.map((q) => q.id);
  assert.deepEqual(ids, [...kept].sort());
  assert.equal(data.stats.corpusDocuments, data.docIds.length, 'every document stays in the environment');
  // maxQueries counts from the kept queries
  const few = await loadRlData(rl({ split: 'train', holdOut: sample, maxQueries: 5 }).data);
  assert.deepEqual(
    few.queries.map((q) => q.id),
    ids.slice(0, 5),
  );
  assert.equal(rl({ split: 'train' }).data.holdOut, null, 'none by default');
  assert.equal((await loadRlData(rl({ split: 'train' }).data)).queries.length, train.size - 2);
});

test('a bad holdOut is refused with the key named', async () => {
  const beir = (holdOut: unknown) => [{ type: 'beir', path: scifact, split: 'train', holdOut }];
  for (const [holdOut, message] of [
    [{ n: 0, seed: 1 }, /"data\[0\]\.holdOut\.n" must be an integer ≥ 1/],
    [{ n: 2.5, seed: 1 }, /"data\[0\]\.holdOut\.n" must be an integer ≥ 1/],
    [{ n: '300', seed: 1 }, /"data\[0\]\.holdOut\.n" must be an integer ≥ 1 \(queries held out\), got "300"/],
    [{ n: 300 }, /"data\[0\]\.holdOut\.seed" must be an integer in \[0, 4294967295\], got undefined/],
    [{ n: 300, seed: -1 }, /"data\[0\]\.holdOut\.seed" must be an integer/],
    [{ n: 300, seed: 1, size: 3 }, /"data\[0\]\.holdOut\.size" is not a config key; known keys: n, seed/],
    [300, /"data\[0\]\.holdOut" must be an object \{"n"/],
    [[300, 1], /"data\[0\]\.holdOut" must be an object/],
  ] as const)
    assert.throws(
      () => sft(beir(holdOut)),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(holdOut),
    );
  assert.throws(
    () => sft([{ type: 'jsonl', path: 'x.jsonl', holdOut: sample }]),
    /"data\[0\]\.holdOut" is not a config key; known keys of a jsonl source/,
  );
  assert.throws(
    () => rl({ split: 'train', holdOut: { n: 300, seed: 1.5 } }),
    (e: unknown) => e instanceof ConfigError && /"data\.holdOut\.seed" must be an integer/.test(e.message),
  );
  assert.throws(() => rl({ split: 'train', holdOut: { seed: 1 } }), /"data\.holdOut\.n" must be an integer ≥ 1/);
  assert.throws(() => rl({ split: 'train', holdout: sample }), /"data\.holdout" is not a config key/);
  // holding out every judged query would train on an empty source: refused when the split is read
  const { train } = await trainAndDev();
  await assert.rejects(
    loadTrainingData(sft(beir({ n: train.size, seed: 1 })).data),
    (e: unknown) =>
      e instanceof ConfigError &&
      new RegExp(`keeps out all ${train.size} judged queries of split train`).test(e.message),
  );
  await assert.rejects(loadRlData(rl({ split: 'train', holdOut: { n: 5000, seed: 1 } }).data), /keeps out all/);
});

test('train sft and train rl say how many queries holdOut kept out, in the words mine uses', async () => {
  const dir = tempDir('hold-out-said');
  // stage 1 refuses a qrels line whose document is missing, which the toy folder has for stage 2
  const qrels = path.join(toyBeir(path.join(dir, 'beir')), 'qrels', 'train.tsv');
  writeFileSync(qrels, readFileSync(qrels, 'utf8').replace('q7\tmissing-doc\t1\n', ''));
  const holdOut = { n: 2, seed: 1 };
  const said = /; 2 held out: 2 of a holdOut dev sample, 0 repeating a test query/;
  const sftConfig = await toySftRun(dir, {
    steps: 1,
    data: [{ type: 'beir', path: 'beir', split: 'train', holdOut }],
    output: 'run-sft',
  });
  const s = runCli(['train', 'sft', '--config', sftConfig]);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stderr, new RegExp(`data: \\d+ examples \\(.*${said.source}\\)`));
  assert.match(s.stdout, new RegExp(`texts cut${said.source}; output in`));
  const { dir: rlDir, raw } = await rlFixture('hold-out-said-rl');
  const rlConfig = writeConfig(path.join(rlDir, 'rl.json'), {
    ...raw,
    steps: 1,
    data: { beir: 'beir', split: 'train', holdOut },
  });
  const r = runCli(['train', 'rl', '--config', rlConfig]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`data: \\d+ queries \\(.*judged documents missing${said.source}\\)`));
  assert.match(r.stdout, new RegExp(`no positive in the corpus${said.source}\\), 40 documents`));
});

test('a split whose every query is a test query: train sft and mine say so, not that none had a positive', async () => {
  const dir = tempDir('hold-out-all-test');
  const qrels = path.join(toyBeir(path.join(dir, 'beir')), 'qrels');
  // a train split that is a copy of the test split, as a user who has only test qrels might make it
  const train = readFileSync(path.join(qrels, 'train.tsv'), 'utf8').replace('q7\tmissing-doc\t1\n', '');
  writeFileSync(path.join(qrels, 'train.tsv'), train);
  writeFileSync(path.join(qrels, 'test.tsv'), train);
  const config = await toySftRun(dir, { data: [{ type: 'beir', path: 'beir', split: 'train' }] });
  const said = new RegExp(
    ', was empty or was held out \\(0 of a holdOut dev sample, 7 with the text of a query of its ' +
      "folder's qrels/test\\.tsv: test queries are never trained on\\)",
  );
  const s = runCli(['train', 'sft', '--config', config]);
  assert.equal(s.status, 2, s.stderr);
  assert.match(
    s.stderr,
    new RegExp(`no training examples in .*beir: every query lacked a positive \\(0\\).*${said.source}`),
  );
  const out = path.join(dir, 'mined.jsonl');
  const m = runCli(['mine', '--config', config, '--out', out, '--quiet']);
  assert.equal(m.status, 2, m.stderr);
  assert.match(m.stderr, new RegExp(`no query to mine in .*${said.source}; .*mined\\.jsonl is left as it was\\.`));
});
