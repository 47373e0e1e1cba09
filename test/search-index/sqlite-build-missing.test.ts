/**
 * npm 12 and later skip a dependency's install script unless the project approved it, so after a plain
 * `npm install search-r3` better-sqlite3 has no native build: every command that opens an index then failed
 * with node's list of a dozen paths and a stack trace. It is one sentence saying what to run. The test loads
 * better-sqlite3 from a copy without its build (a resolve hook), as such an install leaves it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from './fixtures.js';

/** A folder holding better-sqlite3 as an install without its script leaves it, and a hook that loads it. */
function unbuiltSqlite(dir: string): string {
  const modules = path.join(dir, 'node_modules');
  const real = path.join(repoRoot, 'node_modules');
  mkdirSync(path.join(modules, 'better-sqlite3'), { recursive: true });
  for (const f of ['package.json', 'lib']) {
    cpSync(path.join(real, 'better-sqlite3', f), path.join(modules, 'better-sqlite3', f), { recursive: true });
  }
  for (const dep of ['bindings', 'file-uri-to-path']) symlinkSync(path.join(real, dep), path.join(modules, dep));
  const entry = pathToFileURL(path.join(modules, 'better-sqlite3', 'lib', 'index.js')).href;
  const resolve =
    'export async function resolve(s, c, next) { ' +
    `return s === 'better-sqlite3' ? { url: ${JSON.stringify(entry)}, shortCircuit: true } : next(s, c); }`;
  const hook = path.join(dir, 'hook.mjs');
  writeFileSync(
    hook,
    "import { register } from 'node:module';\n" +
      `register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(resolve)}));\n`,
  );
  return hook;
}

test('better-sqlite3 left unbuilt by npm: index says in one sentence what to run, exit 2', async () => {
  const { dir, cleanup } = tempDir('sqlite-unbuilt');
  try {
    const hook = unbuiltSqlite(dir);
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(4));
    const r = runCli(['index', '--model', model, '--input', input, '--out', path.join(dir, 'idx')], {
      NODE_OPTIONS: `--import ${pathToFileURL(hook).href}`,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr.trim().split('\n').at(-1),
      "search-r3: better-sqlite3, which keeps an index's documents, has no native build: its install script " +
        "failed or did not run (npm 12 and later run a dependency's install script only once the project approves " +
        'it). In your project run: npm install-scripts approve better-sqlite3 search-r3 && npm rebuild ' +
        'better-sqlite3 search-r3',
    );
    assert.doesNotMatch(r.stderr, /Could not locate|\n\s+at /);
  } finally {
    cleanup();
  }
});
