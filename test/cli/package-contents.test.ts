import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../search-index/fixtures.js';

/** The quickstart, `npx search-r3 demo`, from the package npm would publish rather than from this checkout. */
test('the npm package holds what the demo runs on: the default model, its demo vectors and the SciFact data', () => {
  const { dir, cleanup } = tempDir('package');
  try {
    const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    const [{ filename, files }] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
    const paths = new Set(files.map((f) => f.path));
    for (const f of [
      'dist/src/cli/main.js',
      'models/search-r3-default/config.json',
      'models/search-r3-default/model.safetensors',
      'models/search-r3-default/tokenizer.json',
      'models/search-r3-default/demo-index/vectors.safetensors',
      'demo/scifact/corpus.jsonl.gz',
      'demo/scifact/qrels/test.tsv',
    ])
      assert.ok(paths.has(f), `${f} is not in the package`);
    assert.ok(![...paths].some((p) => p.startsWith('dist/test/') || p.startsWith('test/')), 'tests are packed');

    const unpacked = path.join(dir, 'unpacked');
    mkdirSync(unpacked);
    const tar = spawnSync('tar', ['-xzf', path.join(dir, filename), '-C', unpacked, '--strip-components', '1']);
    assert.equal(tar.status, 0, String(tar.stderr));
    // the dependencies an install would bring; the native addon an install builds stays out (TS kernels)
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(unpacked, 'node_modules'));
    const demo = spawnSync(
      process.execPath,
      [path.join(unpacked, 'dist/src/cli/main.js'), 'demo', '--no-table', '--json', '--quiet', '-k', '3'],
      { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: path.join(dir, 'cache'), SEARCH_R3_THREADS: '1' } },
    );
    assert.equal(demo.status, 0, demo.stderr);
    const r = JSON.parse(demo.stdout) as {
      model: { dir: string };
      index: { action: string; documents: number; encoded: number; seeded: number };
      examples: { hits: unknown[] }[];
    };
    assert.equal(r.model.dir, path.join(unpacked, 'models/search-r3-default'));
    assert.deepEqual(r.index, { ...r.index, action: 'built', documents: 5183, encoded: 0, seeded: 5183 });
    assert.deepEqual(
      r.examples.map((e) => e.hits.length),
      [3, 3, 3],
    );
  } finally {
    cleanup();
  }
});
