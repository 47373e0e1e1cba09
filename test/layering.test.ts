/**
 * The layering of DESIGN.md as one table: for every folder of src/, the folders its files may import
 * from. Data flows one way (cli → recipe → train | eval | search-index | serve | queue | client → embed → model →
 * tensor; rlenv beside eval and search-index); a folder missing from the table fails the test, so a new
 * layer has to state its place.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers/repo.js';

/**
 * io (atomic file writes, file checksums, option checks) lies below every layer: any folder may import it, it
 * imports none.
 */
const BELOW_ALL = 'io';

const ALLOWED: Record<string, readonly string[]> = {
  io: [],
  tensor: [],
  model: ['tensor'],
  embed: ['model', 'tensor'],
  eval: ['embed'],
  rlenv: ['embed', 'model', 'tensor'],
  'search-index': ['eval', 'embed', 'model', 'tensor'],
  client: ['search-index', 'embed', 'model'],
  // eval: BM25's analyzer marks a hit's matched terms, and the measures score a judged query's hits
  serve: ['search-index', 'eval', 'embed', 'model'],
  queue: ['search-index', 'embed'],
  train: ['rlenv', 'eval', 'embed', 'model', 'tensor'],
  recipe: ['train', 'rlenv', 'eval', 'search-index', 'embed', 'model', 'tensor'],
  cli: ['recipe', 'train', 'rlenv', 'eval', 'search-index', 'serve', 'queue', 'client', 'embed', 'model', 'tensor'],
};

/**
 * The layers other layers use as one API, through their index.ts (the op namespace T, the Search-R3
 * protocol); the rest are used file by file and have no index.ts.
 */
const BARRELS = new Set(['tensor', 'embed']);

/** Edges narrower than their folder's: only these files of the folder may import the other. */
const ONLY_FROM: Record<string, readonly string[]> = {
  // a Search-R3 model as a Retriever; everything else in eval takes embeddings from any source
  'eval→embed': ['model-retriever.ts'],
};

const src = path.join(repoRoot, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** The src/ folder a module path lies in, or null for the package entry and anything outside src/. */
function layerOf(file: string): string | null {
  const rel = path.relative(src, file);
  return rel.startsWith('..') || !rel.includes(path.sep) ? null : rel.split(path.sep)[0]!;
}

test('every import between the folders of src/ is an edge the layering allows', () => {
  const folders = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  assert.deepEqual(
    folders.filter((f) => !(f in ALLOWED)),
    [],
    'folders the table does not place',
  );
  const barrels = folders.filter((f) => readdirSync(path.join(src, f)).includes('index.ts'));
  assert.deepEqual(barrels.sort(), [...BARRELS].sort(), 'the folders with an index.ts are the barrel layers');
  const seen = new Set<string>();
  for (const file of sources(src)) {
    const from = layerOf(file);
    if (from === null) continue; // the package entry exports from every layer
    for (const m of readFileSync(file, 'utf8').matchAll(/from\s+'(\.{1,2}\/[^']+)'/g)) {
      const to = layerOf(path.resolve(path.dirname(file), m[1]!));
      if (to === null || to === from || (to === BELOW_ALL && from !== BELOW_ALL)) continue;
      const where = `${path.relative(src, file)} imports ${m[1]}`;
      assert.ok(ALLOWED[from]!.includes(to), `${where}: ${from} may not import ${to}`);
      if (BARRELS.has(to))
        assert.ok(m[1]!.endsWith(`${to}/index.js`), `${where}: import the ${to} layer through its index.ts`);
      const only = ONLY_FROM[`${from}→${to}`];
      if (only) assert.ok(only.includes(path.basename(file)), `${where}: only ${only.join(', ')} may`);
      seen.add(`${from}→${to}`);
    }
  }
  // the table is no wider than it needs to be for the edges that matter most
  for (const edge of ['cli→recipe', 'recipe→train', 'train→rlenv', 'embed→model', 'model→tensor'])
    assert.ok(seen.has(edge), edge);
});
