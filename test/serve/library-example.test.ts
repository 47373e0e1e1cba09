/**
 * docs/serve.md's Library example, run as written: against the built package entry, with the default model as
 * './my-model', in a fresh folder. Only the imports are pointed at files (the package does not resolve itself
 * by name from a temporary folder) and the port is 0, so the test does not depend on 8080 being free.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../search-index/fixtures.js';

/** The first ```ts block after a heading. */
function codeAfter(markdown: string, heading: string): string {
  const from = markdown.indexOf(`\n${heading}\n`);
  assert.ok(from >= 0, `no '${heading}' heading`);
  const start = markdown.indexOf('```ts\n', from) + '```ts\n'.length;
  return markdown.slice(start, markdown.indexOf('```', start));
}

test("docs/serve.md's Library example runs as written", () => {
  const code = codeAfter(readFileSync(path.join(repoRoot, 'docs/serve.md'), 'utf8'), '## Library');
  const entry = pathToFileURL(path.join(repoRoot, 'dist/src/index.js')).href;
  const runnable = code
    .replace("from 'search-r3'", `from '${entry}'`)
    .replace("from '@langchain/core/documents'", `from '${import.meta.resolve('@langchain/core/documents')}'`)
    .replace('port: 8080', 'port: 0');
  assert.notEqual(runnable, code);
  const { dir, cleanup } = tempDir('library-example');
  try {
    symlinkSync(path.join(repoRoot, 'models/search-r3-default'), path.join(dir, 'my-model'));
    writeFileSync(path.join(dir, 'example.mjs'), runnable);
    const r = spawnSync(process.execPath, ['example.mjs'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, SEARCH_R3_THREADS: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /http:\/\/127\.0\.0\.1:\d+ \{ state: 'ready', reason: null, restarts: 0 \}/);
  } finally {
    cleanup();
  }
});

test("the package loads in node -e's CommonJS, by import() and by require(), in a project's folder", () => {
  const entry = JSON.stringify(path.join(repoRoot, 'dist/src/index.js'));
  // a folder without node_modules: usearch's ES module build searched for its native addon upward from node -e's
  // __dirname '.', which finds it only where the working folder holds it, and otherwise never ends
  const { dir, cleanup } = tempDir('node-e');
  try {
    for (const load of [`import(${entry})`, `Promise.resolve(require(${entry}))`]) {
      const r = spawnSync(process.execPath, ['-e', `${load}.then((m) => console.log(typeof m.SearchIndex))`], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.status, 0, `${load}: ${r.signal ?? ''} ${r.stderr}`);
      assert.equal(r.stdout, 'function\n', load);
    }
  } finally {
    cleanup();
  }
});
