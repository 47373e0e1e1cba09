/**
 * The GPU lease's round trip (scripts/v2-lease.sh), as a lease runs it but on this machine: prepare here,
 * run "there" (another work folder, an $OUT of its own), land here, and the recipe here finishes without
 * training any step again. A lease is minutes, drawn rarely: what it needs must be proven before one. Also
 * the files the lease carries: the datasets' files the profile's training steps read (SciFact's test qrels
 * among them, without which the test-query filter would be skipped), and the npm packages they import.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROFILES, gpuSizing, recipePaths } from '../../src/recipe/recipe-profiles.js';
import { trainingDataFiles } from '../../src/recipe/training-data-files.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { importedPackages, withDependencies } from '../../scripts/runtime-packages.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot, sharedData } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';
import { webgpuSkip } from '../helpers/webgpu.js';

test('the gpu profile carries what its training steps read: SciFact test qrels yes, evaluated sets no', () => {
  const files = trainingDataFiles(PROFILES.gpu, recipePaths('/tmp/none', sharedData));
  for (const f of [
    'scifact/queries.jsonl',
    'scifact/qrels/train.tsv',
    'scifact/qrels/test.tsv',
    'drcd/beir/dev/qrels/dev.tsv',
    'arcd/beir/train/queries.jsonl',
    'drcd/beir/test/corpus.jsonl',
  ])
    assert.ok(files.includes(f), `${f} is carried`);
  assert.ok(files.includes('nfcorpus/beir-preprocessed/dev/qrels/dev.tsv'), "stage 1's dev evaluation reads it");
  // XQuAD and NFCorpus test are evaluated; DRCD's and ARCD's test questions are never read as queries
  for (const f of files) assert.doesNotMatch(f, /^xquad\/|nfcorpus\/.*\/test\/|(drcd|arcd)\/beir\/test\/(q|qrels)/);
  for (const f of files) assert.ok(existsSync(path.join(sharedData, f)), f);
});

test('a data path a profile names that does not exist is an error naming it, not a shorter list', () => {
  const data = tempDir('lease-data');
  assert.throws(
    () => trainingDataFiles(PROFILES.tiny, recipePaths('/tmp/none', data)),
    (e: Error) => e.message === `${path.join(data, 'scifact')} is named by the tiny profile but does not exist`,
  );
});

test('runtime packages: static imports and requires are followed, dynamic imports not; dependencies are added', () => {
  const dir = tempDir('runtime-packages');
  const write = (f: string, s: string): void => {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), s);
  };
  write('a.js', "import x from 'pkg-a';\nimport { y } from './b.js';\nconst c = await import('./c.js');\n");
  write(
    'b.js',
    "export { z } from '@scope/pkg/sub/file.js';\nimport 'side-effect';\nimport fs from 'node:fs';\n" +
      "export const r = createRequire(import.meta.url)('required');\n",
  );
  write('c.js', "import never from 'never-loaded';\nconst w = await import('webgpu');\n");
  assert.deepEqual([...importedPackages([path.join(dir, 'a.js')])].sort(), [
    '@scope/pkg',
    'pkg-a',
    'required',
    'side-effect',
  ]);
  const nm = path.join(dir, 'node_modules');
  write('node_modules/pkg-a/package.json', JSON.stringify({ dependencies: { 'dep-1': '1' } }));
  write('node_modules/dep-1/package.json', JSON.stringify({ dependencies: { 'pkg-a': '1' } }));
  assert.deepEqual(withDependencies(['pkg-a'], nm), ['dep-1', 'pkg-a']);
  assert.throws(() => withDependencies(['side-effect'], nm), /side-effect is imported but not installed/);
});

test("the CLI loads a command's packages only when that command runs", () => {
  const cli = (f: string): string => path.join(repoRoot, 'dist', 'src', 'cli', f);
  assert.deepEqual([...importedPackages([cli('main.js')])], [], 'search-r3 itself imports no package');
  const training = importedPackages([cli('train.js'), cli('recipe.js'), cli('mine.js')]);
  assert.ok(training.has('usearch'), "stage 2's environment");
  for (const p of ['better-sqlite3', 'ioredis', 'bullmq', '@lancedb/lancedb', 'node-llama-cpp'])
    assert.ok(!training.has(p), `training does not load ${p}`);
});

test(
  'v2-lease refuses to prepare the gpu profile while its size rests on an assumed rate',
  { skip: gpuSizing().measured ? 'GPU_BUDGET.measured is set: the profile is sized from measured rates' : false },
  () => {
    const r = spawnSync('bash', [path.join(repoRoot, 'scripts', 'v2-lease.sh'), 'prepare'], {
      env: { ...process.env, V2_PROFILE: 'gpu', V2_WORK: tempDir('v2-lease-assumed'), V2_LEASE: tempDir('lease') },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /sized from an assumed rate: run bash scripts\/gpu-check.sh/);
  },
);

test(
  'v2-lease (tiny profile): prepare here, run there, land here, and the recipe here trains nothing again',
  { timeout: 600_000, skip: webgpuSkip() },
  async () => {
    const dir = tempDir('v2-lease');
    const here = path.join(dir, 'here');
    const out = path.join(dir, 'out');
    mkdirSync(out);
    const script = (args: string[], env: Record<string, string>): string => {
      const r = spawnSync('bash', [path.join(repoRoot, 'scripts', 'v2-lease.sh'), ...args], {
        // xz -0: the archives' size is not what is tested here, and -9 takes most of the test's time
        // the travel size (checked only where .gpu-pack/ is filled) is the real tree's, not what this tests
        env: {
          ...process.env,
          V2_PROFILE: 'tiny',
          V2_LEASE: path.join(dir, 'lease'),
          V2_XZ_LEVEL: '0',
          LEASE_SEND_LIMIT_MIB: '1024',
          ...env,
        },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `v2-lease.sh ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    script(['prepare'], { V2_WORK: here, V2_DATA: sharedData });
    assert.ok(readFileSync(path.join(dir, 'lease', 'data-files.txt'), 'utf8').includes('scifact/qrels/test.tsv'));

    // three calls on one machine, each with its own $OUT as the device tool gives it: the first stops after
    // stage 1 (a session that ends there), the second continues to the package step, the third has nothing
    const there = (n: number, env: Record<string, string> = {}): Record<string, string> => {
      mkdirSync(path.join(out, String(n)), { recursive: true });
      return { V2_WORK: path.join(dir, 'there'), OUT: path.join(out, String(n)), ...env };
    };
    const first = script(['run', '300'], there(1, { V2_UNTIL: 'stage1' }));
    assert.match(first, /recipe exit 0/);
    assert.match(first, /sent .*: .*lm\/final mined .*stage1\/final/, 'a finished stage 1 is sent before packaging');
    const second = script(['run', '300'], there(2));
    assert.match(second, /sent .*models\/stage1 .*out/);
    assert.doesNotMatch(second, /sent .* lm\/final/, 'nothing is sent twice');
    assert.match(script(['run', '300'], there(3)), /nothing new to send/);
    assert.deepEqual(readdirSync(path.join(out, '3')), ['recipe.log']);

    const landed = script(['land', path.join(out, '1')], { V2_WORK: here });
    for (const f of ['lm/final', 'mined', 'stage1/final', 'recipe.json'])
      assert.match(landed, new RegExp(`landed: ${f}\\b`));
    assert.match(landed, /stage2 did not finish there\. Either the next lease continues/);

    // a next lease continues from the landed folders: they travel, the pretraining shards do not, and the
    // stage-1 final/ that came back in f32 travels in f16
    const again = script(['prepare'], { V2_WORK: here, V2_DATA: sharedData });
    for (const f of ['data.tar.xz', 'node_modules.tar.xz']) assert.match(again, new RegExp(`${f}: unchanged`));
    assert.doesNotMatch(again, /work\.tar\.xz: unchanged/, 'the work folder has changed: its archive is made again');
    const carried = spawnSync('tar', ['-tJf', path.join(dir, 'lease', 'work.tar.xz')], { encoding: 'utf8' }).stdout;
    for (const f of ['lm/final/config.json', 'mined/scifact-train.jsonl', 'stage1/final/config.json', 'tokenizer/'])
      assert.ok(carried.split('\n').includes(f), `${f} travels:\n${carried}`);
    assert.doesNotMatch(carried, /corpus\/train-/);
    const unpacked = tempDir('v2-lease-carried');
    spawnSync('tar', ['-xJf', path.join(dir, 'lease', 'work.tar.xz'), '-C', unpacked]);
    const dtype = async (d: string): Promise<string> =>
      (await readSafetensorsHeader(path.join(d, 'stage1', 'final', 'model.safetensors'))).entries[0].dtype;
    assert.equal(await dtype(here), 'F32');
    assert.equal(await dtype(unpacked), 'F16');

    const landed2 = script(['land', path.join(out, '2')], { V2_WORK: here });
    for (const f of ['stage1/final', 'stage2/final']) assert.match(landed2, new RegExp(`landed: ${f}\\b`));
    assert.match(landed2, /next, here \(package, demo-vectors, evaluate, card\): node /);

    const r = runCli([
      'recipe',
      'default',
      '--profile',
      'tiny',
      '--work',
      here,
      '--data',
      sharedData,
      '--out',
      path.join(here, 'model'),
      '--until',
      'package',
    ]);
    assert.equal(r.status, 0, r.stderr);
    for (const step of ['corpus', 'tokenizer', 'lm', 'mine', 'stage1', 'stage2'])
      assert.match(r.stderr + r.stdout, new RegExp(`✓ ${step} \\(.*\\): done`), `${step} counts as done`);
    // the packaged folders came from the other machine: the model at --out is packaged here again
    assert.match(r.stderr + r.stdout, /▶ package/);
    assert.ok(existsSync(path.join(here, 'model', 'model.safetensors')));
  },
);
