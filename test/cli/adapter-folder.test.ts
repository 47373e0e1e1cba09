/**
 * A LoRA run's adapter folder is a model to every command: index, search, eval and serve load it as its base
 * with the adapter merged, and `export merged` writes that model as a whole folder that gives the same vectors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadModelFolder, saveModelFolder } from '../../src/model/model-folder.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { readModelFusion, writeModelFusion } from '../../src/search-index/model-fusion.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { CliProcess } from '../helpers/cli-process.js';
import { runCliAsync } from '../helpers/cli.js';
import { corpus, writeJsonl } from '../search-index/fixtures.js';
import { tempDir, tinyModelFolder, toyAdapterFolder, toyBeir } from '../helpers/train-fixtures.js';
import { leaveAsideAsKilledWrite } from '../helpers/killed-write.js';

let dir = '';
let base = '';
let adapter = '';
let docs = '';
let beir = '';

before(async () => {
  dir = tempDir('adapter-cli');
  // a bf16 base, as real ones are: the adapter is merged in float32 and its weights rounded back to bf16
  base = path.join(dir, 'base');
  await saveModelFolder(base, await loadModelFolder(await tinyModelFolder(path.join(dir, 'f32'), 2)), {
    dtype: 'BF16',
  });
  adapter = path.join(dir, 'run', 'final');
  await toyAdapterFolder(base, adapter);
  docs = path.join(dir, 'docs.jsonl');
  writeJsonl(docs, corpus(12));
  beir = toyBeir(path.join(dir, 'beir'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const cli = (...args: string[]): ReturnType<typeof runCliAsync> => runCliAsync(args);

test('index, search, eval and serve take a LoRA adapter folder as a model', async () => {
  const idx = path.join(dir, 'idx-adapter');
  let r = await cli('index', '--model', adapter, '--input', docs, '--out', idx);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /12 documents indexed/);
  r = await cli('search', '--index', idx, '--json', '-k', '2', 'gene therapy');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).data.length, 2);
  r = await cli('eval', '--dataset', beir, '--split', 'train', '--retriever', adapter);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /8 queries, 40 documents; search-r3/);
  const serve = new CliProcess(['serve', '--model', adapter, '--port', '0']);
  try {
    await serve.waitFor(
      new RegExp(
        `search-r3 serving embeddings at http\\S+ \\(model sha256:\\w+: LoRA adapter ${esc(adapter)} ` +
          `merged onto ${esc(base)}\\)`,
      ),
    );
  } finally {
    assert.equal(await serve.stop(), 0);
  }
});

test('--engine llama.cpp on an adapter folder: one sentence pointing to export merged', async () => {
  const r = await cli(
    'index',
    '--model',
    adapter,
    '--input',
    docs,
    '--out',
    path.join(dir, 'x'),
    '--engine',
    'llama.cpp',
  );
  assert.equal(r.status, 2);
  assert.equal(
    r.stderr,
    `search-r3: ${adapter} is a LoRA adapter folder, and llama.cpp runs a whole model's GGUF: write the merged ` +
      `model with 'search-r3 export merged --lora ${adapter} --out <merged>', its GGUF with 'search-r3 export gguf ` +
      `--model <merged>', and give that folder.\n`,
  );
});

test('export merged writes the model the adapter folder stands for: index and eval give the same vectors', async () => {
  // what belongs with the model: the base's generation settings and licence, the adapter's fusion; not the base's
  // GGUF, caches, or the card, evaluation and recipe record that describe the base's own weights
  writeFileSync(path.join(base, 'generation_config.json'), '{"do_sample": false}\n');
  writeFileSync(path.join(base, 'LICENSE'), 'the base licence\n');
  writeFileSync(path.join(base, 'NOTICE.md'), 'the base notice\n');
  const baseCard = '---\nlicense: other\nlicense_name: non-commercial\nlibrary_name: search-r3\n---\n# the base\n';
  writeFileSync(path.join(base, 'README.md'), baseCard);
  for (const f of ['evaluation.json', 'evaluation.md', 'recipe.json']) writeFileSync(path.join(base, f), '{}\n');
  mkdirSync(path.join(base, 'charts'));
  writeFileSync(path.join(base, 'model-f16.gguf'), 'GGUF');
  mkdirSync(path.join(base, 'search-r3-demo'));
  await writeModelFusion(adapter, { denseWeight: 0.4, k: 30, chosenOn: 'test' });
  const merged = path.join(dir, 'merged');
  let r = await cli('export', 'merged', '--lora', adapter, '--out', merged);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^wrote ${esc(merged)}: ${esc(adapter)} merged onto ${esc(base)} \\(bf16\\) in`));
  const files = ['LICENSE', 'NOTICE.md', 'README.md', 'config.json', 'generation_config.json', 'model.safetensors'];
  assert.deepEqual(readdirSync(merged).sort(), [...files, 'search-r3.json', 'tokenizer.json', 'tokenizer_config.json']);
  assert.equal(readFileSync(path.join(merged, 'LICENSE'), 'utf8'), 'the base licence\n');
  // its own card: what it was merged from, the base's fingerprint and licence, and where the base's card is
  const card = readFileSync(path.join(merged, 'README.md'), 'utf8');
  assert.match(card, /^---\nlicense: other\nlicense_name: non-commercial\nlibrary_name: search-r3\n/);
  assert.ok(card.includes(`| adapter | \`${adapter}\` |`), card);
  const { fingerprint } = JSON.parse(readFileSync(path.join(adapter, 'search-r3-base.json'), 'utf8'));
  assert.ok(card.includes(`| base | \`${base}\` (fingerprint \`${fingerprint}\`, as the adapter's`), card);
  assert.ok(card.includes(`the base's model card, \`${path.join(base, 'README.md')}\``), card);
  assert.ok(card.includes('the licence files copied here (LICENSE, NOTICE.md)'), card);
  assert.doesNotMatch(card, /# the base/);
  assert.deepEqual(readModelFusion(merged), readModelFusion(adapter));
  const header = await readSafetensorsHeader(path.join(merged, 'model.safetensors'));
  assert.ok(
    header.entries.every((e) => e.dtype === 'BF16'),
    "the base's dtype",
  );

  const indexed: Float32Array[] = [];
  for (const model of [adapter, merged]) {
    const idx = path.join(dir, `idx-${path.basename(model)}`);
    r = await cli('index', '--model', model, '--input', docs, '--out', idx);
    assert.equal(r.status, 0, r.stderr);
    const index = await SearchIndex.open(idx);
    indexed.push(index.indexedVectors().data);
    await index.close();
  }
  assert.deepEqual(Buffer.from(indexed[1].buffer), Buffer.from(indexed[0].buffer), 'bit for bit');

  // the model an index records, and an eval's --retriever, are found when a killed write left them aside
  let mergedAside = leaveAsideAsKilledWrite(merged);
  r = await cli('search', '--index', path.join(dir, 'idx-merged'), 'cells');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^${esc(merged)}: restored from ${esc(mergedAside)}, `));
  const runs: string[] = [];
  mergedAside = leaveAsideAsKilledWrite(merged);
  for (const model of [adapter, merged]) {
    const run = path.join(dir, `${path.basename(model)}.trec`);
    r = await cli('eval', '--dataset', beir, '--split', 'train', '--retriever', model, '--run', run);
    assert.equal(r.status, 0, r.stderr);
    if (model === merged) assert.match(r.stderr, new RegExp(`^${esc(merged)}: restored from ${esc(mergedAside)}, `));
    runs.push(readFileSync(run, 'utf8'));
  }
  assert.equal(runs[1], runs[0], 'the same scores for every query and document');

  // --dtype f32: the float32 merge itself, which the bf16 folder holds rounded; of an adapter folder whose only
  // copy a killed write left aside, which is given its name back
  const wide = path.join(dir, 'merged-f32');
  const aside = leaveAsideAsKilledWrite(adapter);
  r = await cli('export', 'merged', '--lora', adapter, '--out', wide, '--dtype', 'f32');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^${esc(adapter)}: restored from ${esc(aside)}, where a write killed`));
  const f32 = await loadModelFolder(wide);
  const want = await loadModelFolder(adapter, { precision: 'f32' });
  for (const p of want.model.parameters()) assert.deepEqual(f32.model.params.get(p.name!)!.read(), p.read(), p.name);
});

test('export merged refuses an --out that is the base or the adapter, and other bad input, in a sentence', async () => {
  const refused = async (args: string[], expected: RegExp): Promise<void> => {
    const r = await cli('export', 'merged', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, expected, args.join(' '));
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  };
  const adapterFiles = readdirSync(adapter).sort();
  await refused(['--lora', adapter, '--out', adapter], /--out .* is the adapter .*; the merged model would replace it/);
  await refused(['--lora', adapter, '--out', base], /--out .* is its base .*; the merged model would replace it/);
  await refused(['--lora', adapter, '--model', base, '--out', base], /is its base/);
  const full = path.join(dir, 'full');
  mkdirSync(full);
  writeFileSync(path.join(full, 'notes.txt'), 'mine');
  await refused(['--lora', adapter, '--out', full], /--out .*full is not empty; give a new or empty folder/);
  await refused(
    ['--lora', base, '--out', path.join(dir, 'o')],
    /--lora .*base holds no LoRA adapter .*: it is a whole model folder already/,
  );
  await refused(['--out', path.join(dir, 'o')], /--lora is required/);
  await refused(
    ['--lora', adapter, '--out', path.join(dir, 'o'), '--dtype', 'q8_0'],
    /--dtype q8_0: choose f32, f16 or bf16/,
  );
  await refused(['--lora', adapter, '--out', path.join(dir, 'o'), '--type', 'f16'], /--type is for export gguf/);
  // a --model that is not the base the adapter was trained on
  // (found, and given its name back, when a killed write left its only copy aside)
  const other = await tinyModelFolder(path.join(dir, 'other'), 9);
  const otherAside = leaveAsideAsKilledWrite(other);
  const o = await cli('export', 'merged', '--lora', adapter, '--model', other, '--out', path.join(dir, 'o'));
  assert.equal(o.status, 2, o.stderr);
  assert.match(o.stderr, new RegExp(`^${esc(other)}: restored from ${esc(otherAside)}, where a write killed .*\n`));
  assert.match(o.stderr, /other: is not the base model the LoRA adapter .* was trained on/);
  assert.deepEqual(readdirSync(adapter).sort(), adapterFiles, 'the adapter is untouched');
  assert.equal(existsSync(path.join(dir, 'o')), false);
  // export gguf names the two ways to take an adapter folder
  const g = await cli('export', 'gguf', '--model', adapter, '--out', path.join(dir, 'a.gguf'));
  assert.equal(g.status, 2);
  assert.match(g.stderr, /is a LoRA adapter folder; give its base as --model and it as --lora, or merge it first/);
});
