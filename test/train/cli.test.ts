import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROFILES, recipePaths } from '../../src/recipe/recipe-profiles.js';
import { repoRoot, sharedData } from '../helpers/repo.js';
import {
  tempDir,
  tinyModelFolder,
  toyExamples,
  toySftRun,
  writeConfig,
  writeJsonl,
} from '../helpers/train-fixtures.js';

const cli = (args: string[]): { code: number | null; out: string; err: string } => {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist/src/cli/main.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

test('search-r3 train sft: an unknown config key is a one-line user error (exit 2)', () => {
  const root = tempDir('cli-cfg');
  const cfg = writeConfig(path.join(root, 'c.json'), {
    model: 'm',
    output: 'o',
    data: [{ type: 'jsonl', path: 'x' }],
    optimiser: { lr: 1 },
  });
  const r = cli(['train', 'sft', '--config', cfg]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^search-r3: .*c\.json: "optimiser" is not a config key; known keys: .*optimizer/);
  const unknown = cli(['train', 'no-such-stage']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown stage 'no-such-stage'.*sft/);
});

test("another stage's config is refused saying which stage it is for, by train, mine and rlenv audit", () => {
  const root = tempDir('cli-stage-cfg');
  const p = recipePaths(path.join(root, 'work'), sharedData);
  const configs = Object.fromEntries(
    (['lm', 'stage1', 'stage2'] as const).map((n) => [
      n,
      writeConfig(path.join(root, `${n}.json`), PROFILES.tiny[n](p)),
    ]),
  );
  const cases: [string[], string, string, string][] = [
    [['train', 'sft', '--config', configs.stage2!], 'stage2', 'sft', 'rl'],
    [['train', 'lm', '--config', configs.stage1!], 'stage1', 'lm', 'sft'],
    [['train', 'rl', '--config', configs.lm!], 'lm', 'rl', 'lm'],
    [['mine', '--config', configs.stage2!, '--out', path.join(root, 'mined.jsonl')], 'stage2', 'sft', 'rl'],
    [['rlenv', 'audit', '--config', configs.stage1!, '--output', path.join(root, 'audit')], 'stage1', 'rl', 'sft'],
  ];
  for (const [args, file, stage, other] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, r.err);
    assert.match(
      r.err,
      new RegExp(
        `^search-r3: \\S+${file}\\.json: "\\w+" is not a key of a train ${stage} config, and every key of this ` +
          `one is one of train ${other}'s: it is a train ${other} config\\n$`,
      ),
      args.join(' '),
    );
  }
});

test('search-r3 mine: --fn-ratio off keeps every candidate; a wrong --model is refused before the data is read', () => {
  const root = tempDir('cli-mine-off');
  // a word every query and document shares: BM25 ranks every other document for every query
  writeJsonl(
    path.join(root, 'train.jsonl'),
    toyExamples(6, 0).map((e) => ({ ...e, query: `${e.query} letter` })),
  );
  const cfg = writeConfig(path.join(root, 'c.json'), {
    model: 'model',
    output: 'run',
    data: [{ type: 'jsonl', path: 'train.jsonl' }],
  });
  // a folder that does not exist yet is made, with the folders above it, as index --out makes its own
  const out = path.join(root, 'mined', 'hard', 'mined.jsonl');
  const off = cli(['mine', '--config', cfg, '--out', out, '--window', '1:3', '--negatives', '3', '--fn-ratio', 'off']);
  assert.equal(off.code, 0, off.err);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 6);
  assert.match(off.out, /: 18 negatives for 6 of them, 0 candidates dropped as likely false negatives/);
  assert.match(cli(['mine', '--help']).out, /--fn-ratio <r>\|off [^]*?; off keeps them all/);
  const wrong = cli(['mine', '--config', cfg, '--out', out, '--fn-ratio', 'none']);
  assert.equal(wrong.code, 2, wrong.err);
  assert.match(wrong.err, /^search-r3: --fn-ratio must be a number ≥ 0, or 'off' \(got 'none'\)\.$/m);
  // the data source does not read either: the model folder, loaded first, is what the sentence names
  writeFileSync(path.join(root, 'damaged.jsonl'), 'not json\n');
  const bad = writeConfig(path.join(root, 'bad.json'), {
    model: 'model',
    output: 'run',
    data: [{ type: 'jsonl', path: 'damaged.jsonl' }],
  });
  const r = cli(['mine', '--config', bad, '--out', out, '--retriever', 'model', '--model', path.join(root, 'none')]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^search-r3: .*none: no such folder/m);
});

test('search-r3 mine, then train sft on its output, end to end', async () => {
  const root = tempDir('cli-mine');
  await tinyModelFolder(path.join(root, 'model'));
  writeJsonl(
    path.join(root, 'train.jsonl'),
    toyExamples(12, 0).map((e, i) => ({
      ...e,
      query: `${e.query} letter`,
      negatives: i % 2 ? [`unrelated text ${i}`] : [],
    })),
  );
  const cfg = writeConfig(path.join(root, 'c.json'), {
    model: 'model',
    output: 'run',
    data: [{ type: 'jsonl', path: 'train.jsonl' }],
    maxLength: 128,
    steps: 3,
    batch: { queries: 4 },
  });
  // an existing --out that mine did not write (the model's config.json, a corpus's JSON lines) is not replaced
  const corpus = path.join(root, 'corpus.jsonl');
  writeFileSync(corpus, '{"_id":"d1","title":"","text":"a document"}\n');
  for (const file of [path.join(root, 'model', 'config.json'), corpus]) {
    const kept = readFileSync(file, 'utf8');
    const over = cli(['mine', '--config', cfg, '--out', file]);
    assert.equal(over.code, 2, over.err);
    assert.match(over.err, /^search-r3: --out \S+ exists and is not a file of mined examples \(its first line is no /);
    assert.equal(readFileSync(file, 'utf8'), kept);
  }
  const m = cli([
    'mine',
    '--config',
    cfg,
    '--out',
    path.join(root, 'mined.jsonl'),
    '--window',
    '1:5',
    '--negatives',
    '2',
    '--fn-ratio',
    '2',
    '--model',
    path.join(root, 'model'),
  ]);
  assert.equal(m.code, 0, m.err);
  assert.match(m.err, /^search-r3: --model .*model has no effect: BM25 mines without a model\.$/m);
  const mined = readFileSync(path.join(root, 'mined.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] });
  assert.equal(mined.length, 12);
  assert.ok(
    mined.every((x) => x.neg.length >= 2 && x.neg.every((n) => !x.pos.includes(n))),
    'two mined negatives each, never a positive',
  );
  const cfg2 = writeConfig(path.join(root, 'c2.json'), {
    model: 'model',
    output: 'run2',
    data: [{ type: 'jsonl', path: 'mined.jsonl' }],
    maxLength: 128,
    steps: 3,
    batch: { queries: 4, hardNegatives: 2 },
  });
  const t = cli(['train', 'sft', '--config', cfg2, '--quiet']);
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /trained steps 0→3/);
  const again = cli(['train', 'sft', '--config', cfg2]);
  assert.equal(again.code, 2, 'a second run into the same folder without --resume is refused');
  assert.match(again.err, /already has checkpoints .*--resume/);
  // resuming a finished run trains nothing and says so (it printed "final loss NaN")
  const done = cli(['train', 'sft', '--config', cfg2, '--resume', '--quiet']);
  assert.equal(done.code, 0, done.err);
  assert.match(done.out, /already trained to step 3; /);
  assert.doesNotMatch(done.out, /NaN/);
});

test('train sft refuses an output that is, holds or lies in its model folder, before writing anything', async () => {
  const root = tempDir('cli-apart');
  await tinyModelFolder(path.join(root, 'run', 'final'));
  writeJsonl(path.join(root, 'train.jsonl'), toyExamples(4, 0));
  const listing = (): string[] => readdirSync(root, { recursive: true }).map(String).sort();
  const before = listing();
  for (const [model, output, how] of [
    ['run/final', 'run/final', 'is'],
    // a second stage written where the first left its model would replace it with its own final/
    ['run/final', 'run', 'holds'],
    ['run/final', 'run/final/stage', 'lies in'],
  ]) {
    const cfg = writeConfig(path.join(root, 'c.json'), {
      model,
      output,
      data: [{ type: 'jsonl', path: 'train.jsonl' }],
      steps: 1,
    });
    const r = cli(['train', 'sft', '--config', cfg]);
    assert.equal(r.code, 2, r.err);
    const [out, m] = [path.join(root, output), path.join(root, model)];
    assert.equal(
      r.err,
      `search-r3: the output ${out} ${how} the model folder ${m}, so the run's files would be written among the ` +
        "model's or over them; give the run a folder of its own.\n",
    );
  }
  assert.deepEqual(listing(), [...before, 'c.json'].sort());
});

test('train sft drops a query whose only positive is its own text, says so, trains, never hangs', async () => {
  const root = tempDir('cli-self-positive');
  const cfg = await toySftRun(root, { steps: 2, checkpoint: { every: 100, keep: 1 } });
  appendFileSync(path.join(root, 'train.jsonl'), JSON.stringify({ query: 'same text', pos: ['same text'] }) + '\n');
  // a planner that never ends grows its heap without bound: the heap limit and the timeout end it
  const bounded = ['--max-old-space-size=512'];
  const r = spawnSync(
    process.execPath,
    [...bounded, path.join(repoRoot, 'dist/src/cli/main.js'), 'train', 'sft', '--config', cfg],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.equal(r.status, 0, `exit ${r.status} (signal ${r.signal}): ${r.stderr}`);
  assert.match(
    r.stderr,
    /data: 12 examples \(0 queries without a positive skipped, 1 whose only positive is the query/,
  );
  assert.match(r.stdout, /1 whose only positive is the query itself/);
});

test('train sft says when optimizer.warmupSteps is longer than the run: optimizer.lr is never reached', async () => {
  const root = tempDir('cli-long-warmup');
  const long = await toySftRun(root, { steps: 4, optimizer: { lr: 3e-3, warmupSteps: 10 } });
  const r = cli(['train', 'sft', '--config', long]);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.err,
    new RegExp(
      '^note: "optimizer\\.warmupSteps" 10 is more than the run\'s 4 steps, so the learning rate rises only to ' +
        '1\\.20e-3, short of "optimizer\\.lr" 0\\.003, and never decays; set warmupSteps to 4 or fewer',
      'm',
    ),
  );
  const within = await toySftRun(root, { steps: 4, output: 'run-within', optimizer: { lr: 3e-3, warmupSteps: 4 } });
  const w = cli(['train', 'sft', '--config', within]);
  assert.equal(w.code, 0, w.err);
  assert.doesNotMatch(w.err, /warmupSteps/);
});
