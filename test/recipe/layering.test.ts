import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../helpers/repo.js';

/** Every .ts file under `dir`, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

const imports = (file: string): string[] => [...readFileSync(file, 'utf8').matchAll(/from\s+'([^']+)'/g)].map((m) => m[1]!);

// The recipe layer sits just below cli: it may use train, eval, index, embed, model (and tensor), never cli or serve,
// and only cli may use it.
test('recipe imports only the layers below it, and only cli imports recipe', () => {
  const src = join(repoRoot, 'src');
  const recipe = sources(join(src, 'recipe'));
  assert.ok(recipe.some((f) => f.endsWith('evaluate.ts')));
  for (const f of recipe) {
    for (const m of imports(f)) {
      if (!m.startsWith('..')) continue;
      assert.match(m, /^\.\.\/(train|eval|index|embed|model|tensor)\//, `${relative(src, f)} imports ${m}`);
    }
  }
  for (const f of sources(src)) {
    const layer = relative(src, f).split('/')[0];
    if (layer === 'cli' || layer === 'recipe' || !f.slice(src.length + 1).includes('/')) continue;
    for (const m of imports(f)) assert.ok(!m.includes('/recipe/'), `${relative(src, f)} imports ${m}`);
  }
});
