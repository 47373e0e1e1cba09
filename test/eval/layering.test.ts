import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo.js';

// DESIGN.md: cli → (train | eval | index | serve) → embed → model → tensor. Only model-retriever.ts reaches
// the embed layer (a Search-R3 model as a Retriever); everything else takes embeddings from any source.
test('the eval layer imports no other layer, except the embed layer for the model retriever', () => {
  const dir = join(repoRoot, 'src/eval');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length > 10);
  for (const f of files) {
    const src = readFileSync(join(dir, f), 'utf8');
    for (const m of src.matchAll(/from\s+'([^']+)'/g)) {
      if (f === 'model-retriever.ts' && m[1]!.startsWith('../embed/')) continue;
      assert.ok(!m[1]!.startsWith('..'), `${f} imports ${m[1]}`);
    }
  }
});
