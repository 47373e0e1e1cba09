import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo.js';

test('the eval layer imports no other layer (dense evaluation takes embeddings from any source)', () => {
  const dir = join(repoRoot, 'src/eval');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length > 10);
  for (const f of files) {
    const src = readFileSync(join(dir, f), 'utf8');
    for (const m of src.matchAll(/from\s+'([^']+)'/g)) {
      assert.ok(!m[1]!.startsWith('..'), `${f} imports ${m[1]}`);
    }
  }
});
