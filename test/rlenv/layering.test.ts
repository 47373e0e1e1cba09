import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo.js';

// DESIGN.md: rlenv sits beside eval and index and may use embed (and what is below it), nothing above.
test('the rlenv layer imports only embed, model and tensor', () => {
  const dir = join(repoRoot, 'src/rlenv');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 6);
  for (const f of files) {
    const src = readFileSync(join(dir, f), 'utf8');
    for (const m of src.matchAll(/from\s+'([^']+)'/g)) {
      const spec = m[1]!;
      if (!spec.startsWith('..')) continue;
      assert.ok(/^\.\.\/(embed|model|tensor)\//.test(spec), `${f} imports ${spec}`);
    }
  }
});
