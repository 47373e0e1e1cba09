import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadModelFolder } from '../../src/model/model-folder.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { Embedder } from '../../src/embed/embedder.js';
import { STEP_NAMES, type RecipeState } from '../../src/recipe/default-recipe.js';
import { runCli } from '../helpers/cli.js';
import { sharedData } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';

const readState = (work: string): RecipeState =>
  JSON.parse(readFileSync(path.join(work, 'recipe.json'), 'utf8')) as RecipeState;

test(
  'recipe default (tiny profile): every step runs, the packaged model embeds, and a rerun resumes only what is missing',
  { timeout: 600_000 },
  async () => {
    const dir = tempDir('recipe');
    const work = path.join(dir, 'work'),
      out = path.join(dir, 'model');
    const args = [
      'recipe',
      'default',
      '--profile',
      'tiny',
      '--work',
      work,
      '--out',
      out,
      '--data',
      sharedData,
      '--quiet',
    ];
    const env = { SEARCH_R3_THREADS: '1' };

    const first = runCli(args, env);
    assert.equal(first.status, 0, first.stderr);
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
    assert.ok(existsSync(path.join(out, 'evaluation.json')) && existsSync(path.join(out, 'configs/stage1.json')));
    for (const chart of ['pretraining', 'stage1-loss', 'stage1-dev', 'stage2-reward']) {
      assert.match(
        readFileSync(path.join(out, 'charts', `${chart}.svg`), 'utf8'),
        /<path d="M/,
        `${chart} has a curve`,
      );
      assert.ok(card.includes(`(charts/${chart}.svg)`));
    }
    const m = await loadModelFolder(out);
    const e = new Embedder(m.model, m.tokenizer).embedDocuments(['Vitamin D deficiency is common.']).vectors[0];
    assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5, 'a unit embedding');

    // nothing missing: nothing runs
    const again = runCli(args, env);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /▶/);
    assert.equal(readState(work).steps.stage1.seconds, state.steps.stage1.seconds);

    // stage 2's final folder lost (as after a kill): it resumes from its checkpoint, and what follows is redone
    rmSync(path.join(work, 'stage2/final'), { recursive: true });
    const resumed = runCli(
      ['recipe', 'default', '--profile', 'tiny', '--work', work, '--out', out, '--data', sharedData],
      env,
    );
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /\$ search-r3 train rl --config \S+ --resume/);
    assert.doesNotMatch(resumed.stderr, /▶ stage1/);
    assert.match(resumed.stderr, /▶ evaluate/);
    const after = readState(work);
    assert.ok(STEP_NAMES.every((n) => after.steps[n].done));
    assert.ok(after.steps.stage2.seconds > state.steps.stage2.seconds, "the resumed attempt adds to the step's time");

    // stage 2's whole run folder gone: it starts from scratch, and so does its recorded time
    rmSync(path.join(work, 'stage2'), { recursive: true });
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
  },
);

test('recipe default: a wrong profile or a data folder without the datasets is a one-line error', () => {
  const dir = tempDir('recipe-bad');
  const bad = runCli(['recipe', 'default', '--profile', 'huge', '--work', dir]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--profile must be full or tiny/);
  const noData = runCli(['recipe', 'default', '--profile', 'tiny', '--work', dir, '--data', dir]);
  assert.equal(noData.status, 2);
  assert.match(noData.stderr, /does not hold the datasets/);
});
