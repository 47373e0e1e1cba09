/**
 * `search-r3 dashboard` on the folders it is given: each run listed once however often and by whichever path it
 * is named, and a folder that is no run (an index, a model without evaluation tables) refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../search-index/fixtures.js';

/** The runs listed by a dashboard of `folders`, from its /v1/runs. */
async function listed(folders: string[]): Promise<{ runs: { id: string; name: string }[]; evaluations: unknown[] }> {
  const cli = spawn(
    process.execPath,
    [path.join(repoRoot, 'dist/src/cli/main.js'), 'dashboard', ...folders, '--port', '0'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      cli.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /at (http:\/\/\S+?)\/?\n/.exec(out);
        if (m) resolve(m[1]!);
      });
      cli.stderr.on('data', (b: Buffer) => (out += b.toString()));
      cli.on('exit', (code) => reject(new Error(`dashboard exited with ${code}: ${out}`)));
    });
    const r = await request(url, 'GET', '/v1/runs');
    assert.equal(r.status, 200, r.raw.toString());
    return r.body as unknown as { runs: { id: string; name: string }[]; evaluations: unknown[] };
  } finally {
    cli.kill('SIGKILL');
  }
}

test('a run named twice, by another path or as a stage of a recipe folder also given, is listed once', async () => {
  const { dir, cleanup } = tempDir('dashboard-twice');
  try {
    const work = path.join(dir, 'work');
    const stage1 = path.join(work, 'stage1');
    mkdirSync(stage1, { recursive: true });
    writeFileSync(path.join(work, 'recipe.json'), '{}\n');
    writeFileSync(path.join(stage1, 'run-config.json'), '{"stage": "sft", "config": {}}\n');
    writeFileSync(path.join(stage1, 'metrics.jsonl'), '{"type": "train", "step": 1, "loss": 1}\n');
    symlinkSync(stage1, path.join(dir, 'link'));
    const { runs } = await listed([work, stage1, path.join(dir, 'link'), `${stage1}/`]);
    assert.deepEqual(runs, [{ id: 'run1', name: 'work/stage1', stage: 'sft' }]);
  } finally {
    cleanup();
  }
});

test('a folder that is no training run, recipe or evaluation is refused by name; an empty one waits', async () => {
  const { dir, cleanup } = tempDir('dashboard-not-run');
  try {
    const index = path.join(dir, 'idx');
    mkdirSync(index);
    writeFileSync(path.join(index, 'index.json'), '{}');
    const model = path.join(dir, 'model');
    mkdirSync(model);
    writeFileSync(path.join(model, 'config.json'), '{}');
    const other = path.join(dir, 'other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'notes.txt'), 'x');
    const give = '; give the output folder of a search-r3 train run or a recipe work folder (recipe default --work).\n';
    for (const [folder, why] of [
      [index, 'is a search index (index.json), not a training run'],
      [model, 'is a model folder (config.json) without evaluation.md, not a training run'],
      [
        other,
        'holds no run-config.json, metrics.jsonl or checkpoints/ of a training run, nor the recipe.json of a recipe ' +
          'or an evaluation.md',
      ],
    ]) {
      const r = runCli(['dashboard', folder, '--port', '0'], {}, 20_000); // a dashboard that starts serves until killed
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr, `search-r3: ${folder} ${why}${give}`);
    }
    // a model folder with its evaluation tables shows them; an empty folder is a run that has not started
    writeFileSync(path.join(model, 'evaluation.md'), '| a | b |\n| - | - |\n| 1 | 2 |\n');
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    // a trainer still loading its model and data has written only its lock
    const loading = path.join(dir, 'loading');
    mkdirSync(loading);
    writeFileSync(path.join(loading, 'train.lock'), `${process.pid}\n`);
    const shown = await listed([model, empty, loading]);
    assert.deepEqual(
      shown.runs.map((r) => r.name),
      ['model', 'empty', 'loading'],
    );
    assert.equal(shown.evaluations.length, 1);
  } finally {
    cleanup();
  }
});
