import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadModelFolder } from '../../src/model/model-folder.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { Embedder } from '../../src/embed/embedder.js';
import { fineTuningRows, STEP_NAMES, type RecipeState } from '../../src/recipe/default-recipe.js';
import { PROFILES, recipePaths } from '../../src/recipe/recipe-profiles.js';
import { buildDebianPairs } from '../../src/train/sft/debian-pairs.js';
import type { RecipeEvaluation } from '../../src/recipe/evaluate.js';
import { readModelFusion } from '../../src/search-index/model-fusion.js';
import { modelFingerprint } from '../../src/model/model-fingerprint.js';
import { seedVectorsInfo } from '../../src/search-index/seed-vectors.js';
import { type CliResult, runCli } from '../helpers/cli.js';
import { dictd } from '../helpers/dictd-fixture.js';
import { sharedData } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';
import { webgpuSkip } from '../helpers/webgpu.js';

const readState = (work: string): RecipeState =>
  JSON.parse(readFileSync(path.join(work, 'recipe.json'), 'utf8')) as RecipeState;

/** The record as a kill during stage 2 leaves it: the steps after stage 2 not done. */
function killedInStage2(work: string): void {
  const r = readState(work);
  for (const n of ['package', 'demo-vectors', 'evaluate', 'card'] as const) r.steps[n].done = false;
  writeFileSync(path.join(work, 'recipe.json'), JSON.stringify(r));
}

const TINY_ENV = { SEARCH_R3_THREADS: '1' };

interface CpuRecipe {
  work: string;
  out: string;
  /** The command, for the first test's reruns. */
  args: string[];
  first: CliResult;
  /** What it trained, read before anything changes its folders: each stage's last training loss, nDCG@10 rows. */
  losses: Record<string, number>;
  ndcg: Map<string, number>;
}
let cpuRecipe: CpuRecipe | undefined;

/**
 * The tiny recipe on the CPU, run once for this file (its longest step): the first test goes on from it,
 * changing its folders, and the WebGPU test compares with what it trained.
 */
function tinyRecipeOnCpu(): CpuRecipe {
  if (cpuRecipe) return cpuRecipe;
  const dir = tempDir('recipe');
  const work = path.join(dir, 'work'),
    out = path.join(dir, 'model');
  const args = ['recipe', 'default', '--profile', 'tiny', '--device', 'cpu', '--work', work, '--out', out];
  args.push('--data', sharedData, '--quiet');
  const first = runCli(args, TINY_ENV);
  const done = first.status === 0;
  const losses = Object.fromEntries(
    ['lm', 'stage1', 'stage2'].map((s) => [s, done ? lastTrainLoss(path.join(work, s)) : NaN]),
  );
  cpuRecipe = { work, out, args, first, losses, ndcg: done ? ndcgRows(work) : new Map() };
  return cpuRecipe;
}

test(
  'recipe default (tiny profile): every step runs, the packaged model embeds, and a rerun resumes only what is missing',
  { timeout: 600_000 },
  async () => {
    const { work, out, args, first } = tinyRecipeOnCpu();
    const env = TINY_ENV;
    assert.equal(first.status, 0, first.stderr);
    // --quiet reaches every step: no step's progress, mine's and the evaluation's included
    assert.doesNotMatch(first.stderr, /^mining|^recipe evaluate:|: (indexing|searching|encoding \w+): \d+\//m);
    const state = readState(work);
    assert.deepEqual(Object.keys(state.steps), [...STEP_NAMES]);
    for (const name of STEP_NAMES) {
      assert.ok(state.steps[name].done, `${name} done`);
      assert.ok(state.steps[name].seconds > 0, `${name} timed`);
    }
    assert.match(state.steps.stage2.command ?? '', /^search-r3 train rl --config .*configs\/stage2\.json$/);

    // the shipped folder: F16 weights, the trained context, a card with the evaluation and the licence
    const header = await readSafetensorsHeader(path.join(out, 'model.safetensors'));
    assert.ok(header.entries.length > 0 && header.entries.every((t) => t.dtype === 'F16'));
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as {
      max_position_embeddings: number;
    };
    assert.equal(config.max_position_embeddings, 128);
    const card = readFileSync(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /non-commercial/);
    assert.match(card, /\| stage2 \| `search-r3 train rl --config /);
    assert.match(card, /## Evaluation\n[\s\S]*BM25/);
    // every stage-1 source with its examples and its dataset's licence
    // SciFact train's 809 judged queries less the evaluation's 300-query dev sample, one twin of a dev claim and
    // the two with a test query's text
    assert.match(card, /\| jsonl: scifact\/train \(BM25-mined hard negatives\) \| 506 \| CC BY-NC 2\.0/);
    assert.match(card, /\| climate-fever: climate-fever\/climate-fever\.jsonl \| 1,061 \| repository states none/);
    assert.doesNotMatch(card, /see the dataset/);
    assert.match(
      card,
      /nor the SciFact train queries the evaluation chooses the hybrid's fusion on \(a seeded sample of 300/,
    );
    assert.ok(existsSync(path.join(out, 'evaluation.json')) && existsSync(path.join(out, 'configs/stage1.json')));
    // the hybrid fusion the evaluation chose on dev sets, stored with the model for search
    const { fusion } = JSON.parse(readFileSync(path.join(out, 'evaluation.json'), 'utf8')) as RecipeEvaluation;
    assert.deepEqual(readModelFusion(out), { denseWeight: fusion.denseWeight, k: fusion.k, chosenOn: fusion.chosenOn });
    // the packaged folders carry the configs, which show SciFact's dev sample was held out: it is chosen on
    for (const model of [out, path.join(work, 'models/stage1')])
      assert.ok(existsSync(path.join(model, 'configs/mine.json')), model);
    assert.deepEqual(
      fusion.devSets.map((d) => d.id),
      ['scifact-dev', 'nfcorpus-dev'],
    );
    for (const chart of ['pretraining', 'stage1-loss', 'stage1-dev', 'stage2-reward']) {
      assert.match(
        readFileSync(path.join(out, 'charts', `${chart}.svg`), 'utf8'),
        /<path d="M/,
        `${chart} has a curve`,
      );
      assert.ok(card.includes(`(charts/${chart}.svg)`));
    }
    // the demo's abstracts encoded by the shipped model, which the demo's first run takes instead of encoding
    const vectors = await seedVectorsInfo(path.join(out, 'demo-index/vectors.safetensors'));
    assert.equal(vectors?.model, await modelFingerprint(out));
    assert.ok(vectors.documents > 20, `${vectors.documents} documents`);
    assert.match(
      state.steps['demo-vectors'].command ?? '',
      /^search-r3 demo --model \S+ --write-vectors --max-queries 5 --max-documents 20$/,
    );
    assert.ok(
      card.includes(`| demo vectors | demo-index/vectors.safetensors: this model's vectors of ${vectors.documents} `),
    );
    const m = await loadModelFolder(out);
    const e = new Embedder(m.model, m.tokenizer).embedDocuments(['Vitamin D deficiency is common.']).vectors[0];
    assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5, 'a unit embedding');

    // nothing missing: nothing runs
    const again = runCli(args, env);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /▶/);
    assert.equal(readState(work).steps.stage1.seconds, state.steps.stage1.seconds);

    // outputs deleted after use (a bulky corpus, run folders) are not made again while what read them is done
    rmSync(path.join(work, 'corpus/manifest.json'));
    rmSync(path.join(work, 'lm'), { recursive: true });
    rmSync(path.join(work, 'stage2/final'), { recursive: true });
    const cleaned = runCli(args, env);
    assert.equal(cleaned.status, 0, cleaned.stderr);
    assert.doesNotMatch(cleaned.stderr, /▶/);
    assert.match(cleaned.stderr, /– lm \(causal-LM pretraining\): its output is gone and no step left reads it/);
    // the card reads the corpus: it is made again, alike, so nothing that read it is stale
    const asCard = (): void => {
      const r = readState(work);
      r.steps.card.done = false;
      writeFileSync(path.join(work, 'recipe.json'), JSON.stringify(r));
    };
    asCard();
    const recard = runCli(args, env);
    assert.equal(recard.status, 0, recard.stderr);
    assert.match(recard.stderr, /▶ corpus[\s\S]*corpus: made again alike, so what reads it stays current[\s\S]*▶ card/);
    assert.doesNotMatch(recard.stderr, /▶ (tokenizer|lm|mine|stage1|stage2|package|evaluate)/);

    // stage 2 killed before its final folder (what follows it not done): it resumes from its checkpoint, and
    // what follows is redone
    killedInStage2(work);
    // an edit of its config is refused before the step runs, the file left as edited; but for a setting that
    // decides only its memory, which the recipe keeps, and which the resume takes
    const stage2File = path.join(work, 'configs/stage2.json');
    const ownText = readFileSync(stage2File, 'utf8');
    const edited = JSON.parse(ownText) as { seed: number; environment: Record<string, unknown> };
    edited.seed += 7;
    writeFileSync(stage2File, JSON.stringify(edited));
    const refused = runCli(args, env);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /configs\/stage2\.json was edited since the recipe wrote it: seed is \d+ there, the/);
    assert.doesNotMatch(refused.stderr, /train rl/);
    assert.equal(readFileSync(stage2File, 'utf8'), JSON.stringify(edited));
    edited.seed -= 7;
    edited.environment.maxTableBytes = 16;
    writeFileSync(stage2File, JSON.stringify(edited));
    const tooSmall = runCli(args, env);
    assert.equal(tooSmall.status, 2, tooSmall.stderr);
    assert.match(tooSmall.stderr, /use fewer documents \(data\.maxDocuments\) or raise environment\.maxTableBytes/);
    assert.ok(
      tooSmall.stderr.includes(
        `train rl --config ${stage2File} --resume" exited with code 2; fix the cause and run the recipe again ` +
          '(finished steps are kept, training resumes from its last checkpoint); its memory settings ' +
          `(environment.maxTableBytes) may be edited in ${stage2File}: the recipe keeps them\n`,
      ),
      tooSmall.stderr,
    );
    edited.environment.maxTableBytes = 2 ** 30;
    writeFileSync(stage2File, JSON.stringify(edited));
    const resumed = runCli(
      ['recipe', 'default', '--profile', 'tiny', '--work', work, '--out', out, '--data', sharedData],
      env,
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /\$ search-r3 train rl --config \S+ --resume/);
    assert.match(resumed.stderr, /keeps environment\.maxTableBytes = 1073741824 from \S+stage2\.json/);
    assert.match(resumed.stderr, /resuming with changed settings [^\n]*environment\.maxTableBytes 0 → 1073741824/);
    assert.doesNotMatch(resumed.stderr, /▶ stage1/);
    assert.match(resumed.stderr, /▶ evaluate/);
    const after = readState(work);
    assert.ok(STEP_NAMES.every((n) => after.steps[n].done));
    assert.ok(after.steps.stage2.seconds > state.steps.stage2.seconds, "the resumed attempt adds to the step's time");

    // stage 2's whole run folder gone before what follows was done: it starts from scratch, and so does its time
    rmSync(path.join(work, 'stage2'), { recursive: true });
    killedInStage2(work);
    const record = JSON.parse(readFileSync(path.join(work, 'recipe.json'), 'utf8'));
    record.steps.stage2.seconds = 1e6;
    writeFileSync(path.join(work, 'recipe.json'), JSON.stringify(record));
    const fresh = runCli(
      ['recipe', 'default', '--profile', 'tiny', '--work', work, '--out', out, '--data', sharedData],
      env,
    );
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.doesNotMatch(fresh.stderr, /train rl --config \S+ --resume/);
    const seconds = readState(work).steps.stage2.seconds;
    assert.ok(seconds > 0 && seconds < 1e6, `stage 2 timed afresh: ${seconds} s`);

    // a record that is JSON but not a record is one sentence, not a TypeError
    const kept = readFileSync(path.join(work, 'recipe.json'));
    writeFileSync(path.join(work, 'recipe.json'), '{"profile": "tiny"}');
    const broken = runCli(args, env);
    assert.equal(broken.status, 2, broken.stderr);
    assert.match(broken.stderr, /recipe\.json is not a recipe record \(it needs "profile" and "steps"\); delete it/);
    // nor is a step's record edited into another shape (it was a TypeError on every rerun)
    const recorded = JSON.parse(kept.toString('utf8')) as { steps: Record<string, unknown> };
    for (const lm of ['x', null, { seconds: 'abc', done: true }]) {
      const steps = { ...recorded.steps, lm };
      writeFileSync(path.join(work, 'recipe.json'), JSON.stringify({ ...recorded, steps }));
      const step = runCli(args, env);
      assert.equal(step.status, 2, step.stderr);
      assert.match(
        step.stderr,
        /recipe\.json: steps\.lm is not a step's record \(\{"seconds", "done", \.\.\.\}\); delete/,
      );
    }
    writeFileSync(path.join(work, 'recipe.json'), kept);

    // an evaluation of schema @2 may have chosen its fusion on queries the model trained on: the card stores none;
    // and a card says the dev sample was trained on when the configs say so
    assert.ok(readModelFusion(out));
    const evaluationJson = path.join(work, 'evaluation/evaluation.json');
    const older = JSON.parse(readFileSync(evaluationJson, 'utf8')) as Record<string, unknown>;
    writeFileSync(evaluationJson, JSON.stringify({ ...older, schema: 'search-r3/recipe-evaluation@2' }));
    const stage2Config = path.join(work, 'configs/stage2.json');
    const cfg = JSON.parse(readFileSync(stage2Config, 'utf8')) as { data: Record<string, unknown> };
    delete cfg.data.holdOut;
    writeFileSync(stage2Config, JSON.stringify(cfg));
    const redo = JSON.parse(readFileSync(path.join(work, 'recipe.json'), 'utf8')) as RecipeState;
    redo.steps.card.done = false;
    writeFileSync(path.join(work, 'recipe.json'), JSON.stringify(redo));
    const card2 = runCli(args, env);
    assert.equal(card2.status, 0, card2.stderr);
    assert.match(card2.stderr, /▶ card/);
    assert.equal(readModelFusion(out), undefined);
    assert.match(
      readFileSync(path.join(out, 'README.md'), 'utf8'),
      /SciFact train's queries are trained on without holding out the evaluation's dev sample of them/,
    );

    // another model at --out (the shipped one, when the record comes back from a GPU machine) is not this run's
    // package: it is packaged again, and evaluated, instead of the other model
    const packaged = readFileSync(path.join(out, 'model.safetensors'));
    writeFileSync(
      path.join(out, 'model.safetensors'),
      readFileSync(path.join(work, 'models/stage1/model.safetensors')),
    );
    const repackaged = runCli(args, env);
    assert.equal(repackaged.status, 0, repackaged.stderr);
    assert.match(repackaged.stderr, /▶ package/);
    assert.match(repackaged.stderr, /▶ evaluate/);
    assert.ok(readFileSync(path.join(out, 'model.safetensors')).equals(packaged));

    // a corpus made anew with other contents makes all that reads it stale at once, though the run stops there
    // (--until, a session's end, a kill): the next run cannot take the old model for current
    rmSync(path.join(work, 'corpus/manifest.json'));
    const other = readState(work);
    other.steps.corpus.identity = 'an earlier corpus';
    writeFileSync(path.join(work, 'recipe.json'), JSON.stringify(other));
    const untilCorpus = runCli([...args, '--until', 'corpus'], env);
    assert.equal(untilCorpus.status, 0, untilCorpus.stderr);
    assert.match(untilCorpus.stderr, /tokenizer: corpus made anew, so \S+tokenizer is stale: removed/);
    const stale = readState(work);
    for (const n of STEP_NAMES.slice(1)) assert.equal(stale.steps[n].done, false, `${n} not done`);
    for (const f of ['tokenizer', 'stage1', 'stage2', 'evaluation']) assert.ok(!existsSync(path.join(work, f)), f);
  },
);

test('recipe default: a wrong profile or a data folder without the datasets is a one-line error', () => {
  const dir = tempDir('recipe-bad');
  const bad = runCli(['recipe', 'default', '--profile', 'huge', '--work', dir]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--profile must be full, gpu, tiny/);
  const noData = runCli(['recipe', 'default', '--profile', 'tiny', '--work', dir, '--data', dir]);
  assert.equal(noData.status, 2);
  assert.match(noData.stderr, /does not hold the datasets/);
});

test('recipe default removes nothing it did not make: --out, outputs in the way, a file above refused first', () => {
  const dir = tempDir('recipe-folders');
  const recipe = (work: string, out: string): ReturnType<typeof runCli> =>
    runCli(['recipe', 'default', '--profile', 'tiny', '--work', work, '--out', out, '--data', sharedData, '--quiet']);
  const work = path.join(dir, 'work');
  // a folder of the user's as --out: the package step would have replaced it whole
  const mine = path.join(dir, 'mine');
  mkdirSync(path.join(mine, 'other-model'), { recursive: true });
  writeFileSync(path.join(mine, 'notes.txt'), 'precious');
  const notModel = recipe(work, mine);
  assert.equal(notModel.status, 2, notModel.stderr);
  assert.match(notModel.stderr, /--out \S+mine holds files but no model \(no config\.json\), and the package step/);
  assert.equal(existsSync(work), false, 'a refused recipe makes no --work folder');
  // --out that is or holds the work folder, or lies in one of its outputs
  for (const [out, how] of [
    [work, /--out \S+work is --work/],
    [dir, /--out \S+ holds --work \S+work; the package step replaces --out whole/],
    [path.join(work, 'stage2', 'model'), /--out \S+ lies in the recipe's \S+stage2;/],
  ] as const) {
    const r = recipe(work, out);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, how);
  }
  // a folder named as a step's output that the record does not know: refused, not removed as stale
  mkdirSync(path.join(work, 'stage2'), { recursive: true });
  writeFileSync(path.join(work, 'stage2', 'notes.md'), 'mine');
  const inTheWay = recipe(work, path.join(dir, 'model'));
  assert.equal(inTheWay.status, 2, inTheWay.stderr);
  assert.match(inTheWay.stderr, /\S+stage2 is in the way of step stage2: it is not done, and \S+recipe\.json does not/);
  assert.doesNotMatch(inTheWay.stderr, /▶/);
  assert.equal(readFileSync(path.join(work, 'stage2', 'notes.md'), 'utf8'), 'mine');
  assert.equal(readFileSync(path.join(mine, 'notes.txt'), 'utf8'), 'precious');
  assert.ok(existsSync(path.join(mine, 'other-model')));
  // --work that is a file
  const file = path.join(dir, 'a-file');
  writeFileSync(file, 'x');
  const workFile = recipe(file, path.join(dir, 'model'));
  assert.equal(workFile.status, 2, workFile.stderr);
  assert.match(workFile.stderr, /--work \S+a-file is a file; name a folder for the recipe's work/);
  // a file above --work or --out: refused before the first step, not by the package step hours later
  const underFile = recipe(work, path.join(file, 'model'));
  assert.equal(underFile.status, 2, underFile.stderr);
  assert.match(underFile.stderr, /--out \S+a-file\/model lies under \S+a-file, a file; name a folder for the model/);
  assert.doesNotMatch(underFile.stderr, /▶/);
  const workUnderFile = recipe(path.join(file, 'work'), path.join(dir, 'model'));
  assert.equal(workUnderFile.status, 2, workUnderFile.stderr);
  assert.match(workUnderFile.stderr, /--work \S+a-file\/work lies under \S+a-file, a file; name a folder for the/);
  rmSync(dir, { recursive: true, force: true });
});

/** The last training record of a run folder's metrics.jsonl. */
function lastTrainLoss(runDir: string): number {
  const lines = readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
  const train = lines.map((l) => JSON.parse(l) as { type: string; loss: number }).filter((r) => r.type === 'train');
  return train[train.length - 1].loss;
}

function ndcgRows(work: string): Map<string, number> {
  const e = JSON.parse(readFileSync(path.join(work, 'evaluation/evaluation.json'), 'utf8')) as {
    datasets: { id: string; rows: { id: string; ndcg10: number }[] }[];
  };
  return new Map(e.datasets.flatMap((d) => d.rows.map((r) => [`${d.id}/${r.id}`, r.ndcg10] as const)));
}

test(
  'recipe default (tiny) on --device webgpu: every stage trains as on the CPU, and a run resumes on the other device',
  { timeout: 900_000, skip: webgpuSkip() },
  () => {
    const dir = tempDir('recipe-webgpu');
    const run = (device: string) =>
      runCli(
        [
          'recipe',
          'default',
          '--profile',
          'tiny',
          '--device',
          device,
          '--work',
          path.join(dir, 'work'),
          '--out',
          path.join(dir, 'model'),
          '--data',
          sharedData,
          '--quiet',
        ],
        TINY_ENV,
      );
    const cpu = tinyRecipeOnCpu();
    assert.equal(cpu.first.status, 0, cpu.first.stderr);
    const gpu = run('webgpu');
    assert.equal(gpu.status, 0, gpu.stderr);
    assert.match(gpu.stderr, /device: webgpu/);
    // Same data, seeds and float32 arithmetic: only summation order differs between the devices.
    for (const stage of ['lm', 'stage1', 'stage2']) {
      const a = cpu.losses[stage]!,
        b = lastTrainLoss(path.join(dir, 'work', stage));
      assert.ok(Math.abs(a - b) <= 1e-4 * Math.abs(a), `${stage}: final loss ${b} on WebGPU, ${a} on the CPU`);
    }
    // Four queries per set: one near-tied pair ranked the other way moves a row's nDCG@10 by < 0.1.
    const want = cpu.ndcg,
      got = ndcgRows(path.join(dir, 'work'));
    assert.deepEqual([...got.keys()], [...want.keys()]);
    for (const [row, v] of want) assert.ok(Math.abs(got.get(row)! - v) <= 0.1, `${row}: ${got.get(row)} vs ${v}`);
    // stage 2 interrupted after a checkpoint written on the GPU: it resumes on the CPU
    rmSync(path.join(dir, 'work/stage2/final'), { recursive: true });
    killedInStage2(path.join(dir, 'work'));
    const resumed = run('cpu');
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /train rl --config \S+ --resume/);
  },
);

test("the card's stage-1 rows: the Debian pairs, then each package they come from, with its licence", async () => {
  const p = recipePaths(tempDir('recipe-card-pairs'), sharedData);
  // the pairs of one FOLDOC entry, from a package laid out under a fixture root
  const root = tempDir('recipe-card-root');
  mkdirSync(path.join(root, 'usr/share/dictd'), { recursive: true });
  const foldoc = dictd([['compiler', 'compiler\n\n   A program that converts source code into machine code.\n']]);
  writeFileSync(path.join(root, 'usr/share/dictd/foldoc.index'), foldoc.index);
  writeFileSync(path.join(root, 'usr/share/dictd/foldoc.dict.dz'), gzipSync(foldoc.dict));
  await buildDebianPairs(p.pairs, {
    maxTerms: 10,
    maxHeadings: 10,
    seed: 0,
    debianRoot: root,
    only: ['debian-foldoc'],
  });
  const rows = fineTuningRows(p, PROFILES.gpu);
  const at = rows.findIndex((r) => r.startsWith('| jsonl: corpus/pairs.jsonl'));
  assert.ok(at >= 0, rows.join('\n'));
  assert.match(rows[at], /`search-r3 corpus pairs`, seed 0\) \| — \| per package, below \|/);
  assert.match(
    rows[at + 1],
    /^\| ↳ debian-foldoc: term → definition \| 1 \| GFDL 1\.1\+, no invariant sections .*\| The Free On-line /,
  );
  assert.ok(!rows.some((r) => r.includes('see the dataset')));
  // the other profiles have no pairs row
  assert.ok(!fineTuningRows(p, PROFILES.full).some((r) => r.includes('pairs')));
});
