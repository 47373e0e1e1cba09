/**
 * A base model folder without <|embed_token|>: refused by every command with a sentence that offers the
 * fix, then made usable by add-embed-token (tokenizer files only when the vocabulary has room, else the
 * embedding grows by the mean row and the weights are written again in their stored precision).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, promises as fsp, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Embedder } from '../../src/embed/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';
import { loadModelFolder, saveModelFolder } from '../../src/model/model-folder.js';
import { runCliAsync } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { tempDir, tinyModelFolder, writeJsonl } from '../helpers/train-fixtures.js';
import { leaveAsideAsKilledWrite } from '../helpers/killed-write.js';

test('a folder without <|embed_token|> is refused with the way out, which add-embed-token then takes', async () => {
  const root = tempDir('add-token');
  try {
    const base = await tinyModelFolder(path.join(root, 'base'), 3, false);
    const docs = writeJsonl(path.join(root, 'docs.jsonl'), [{ query: 'q', positives: ['p'], negatives: [] }]);
    let r = await runCliAsync(['index', '--model', base, '--input', docs, '--out', path.join(root, 'idx')]);
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr.trim(),
      `search-r3: ${base}/tokenizer.json: has no <|embed_token|>, so this folder is not a Search-R3 model yet; ` +
        `stage 1 (search-r3 train sft) adds it and trains it, or search-r3 add-embed-token --model ${base} ` +
        `adds it untrained.`,
    );

    // no room in the vocabulary: the embedding grows, the weights are written again (bf16 stays bf16)
    const half = await loadModelFolder(base);
    await saveModelFolder(base, half, { dtype: 'BF16' });
    const grown = path.join(root, 'grown');
    r = await runCliAsync(['add-embed-token', '--model', base, '--out', grown]);
    assert.equal(r.status, 0, r.stderr);
    const g = await loadModelFolder(grown);
    assert.equal(g.config.vocabSize, half.config.vocabSize + 1);
    assert.equal(g.model.params.get('model.embed_tokens.weight')!.dtype, 'bf16');
    assert.equal(
      new Embedder(g.model, g.tokenizer).embedDocuments(['a document']).vectors[0].length,
      g.config.hiddenSize,
    );

    // room in the vocabulary (as Qwen2.5's): only the tokenizer files are written, in place
    const roomy = path.join(root, 'roomy');
    const config = tinyQwen2Config({ vocabSize: half.tokenizer.vocabSize + 8, maxPositionEmbeddings: 256 });
    await saveModelFolder(roomy, { model: Qwen2Model.random(config, new T.Rng(4), 0.1), tokenizer: half.tokenizer });
    const weightsBefore = await fsp.readFile(path.join(roomy, 'model.safetensors'));
    r = await runCliAsync(['add-embed-token', '--model', roomy]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `<\\|embed_token\\|> is token ${half.tokenizer.vocabSize}; tokenizer files written, weights unchanged`,
      ),
    );
    assert.ok((await fsp.readFile(path.join(roomy, 'model.safetensors'))).equals(weightsBefore));
    const m = await loadModelFolder(roomy);
    assert.equal(new Embedder(m.model, m.tokenizer).embedId, half.tokenizer.vocabSize);

    // --model a link to the folder: the folder it names is changed (its weights kept as the same file), the
    // link stays a link
    const real = path.join(root, 'real_base');
    await saveModelFolder(real, { model: Qwen2Model.random(config, new T.Rng(4), 0.1), tokenizer: half.tokenizer });
    const weightsInode = (await fsp.stat(path.join(real, 'model.safetensors'))).ino;
    const link = path.join(root, 'blink');
    await fsp.symlink(real, link);
    r = await runCliAsync(['add-embed-token', '--model', link]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await fsp.readlink(link), real);
    assert.equal((await loadModelFolder(real)).tokenizer.tokenToId('<|embed_token|>'), half.tokenizer.vocabSize);
    assert.equal((await fsp.stat(path.join(real, 'model.safetensors'))).ino, weightsInode);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

/** A folder's files and their bytes, to tell that nothing in it changed. */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(dir)) files.set(name, await fsp.readFile(path.join(dir, name)));
  return files;
}

test('add-embed-token writes its folder whole or not at all, never over other work', async () => {
  const root = tempDir('add-token-safe');
  try {
    const base = await tinyModelFolder(path.join(root, 'base'), 3, false);
    writeFileSync(path.join(base, 'generation_config.json'), '{"do_sample": false}\n');
    const before = await snapshot(base);

    // the file size limit stops the weights half written: the folder stays the model it was, and the
    // user reads one sentence
    const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const limited = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(
        'bash',
        ['-c', `ulimit -f 40; exec "${process.execPath}" "${cli}" add-embed-token --model "${base}"`],
        (e, _out, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, stderr }),
      ),
    );
    assert.equal(limited.code, 2, limited.stderr);
    // naming the file as the user knows it, not the temporary folder it was being written in
    assert.match(limited.stderr.trim(), /^search-r3: write (\S+): the file is larger than .*\(EFBIG\); .*run the same/);
    assert.equal(/^search-r3: write (\S+):/.exec(limited.stderr.trim())![1], path.join(base, 'model.safetensors'));
    assert.deepEqual(await snapshot(base), before, 'the model folder is unchanged');
    assert.deepEqual(readdirSync(root), ['base'], 'no temporary folder is left beside it');

    // another model, or any other non-empty folder, as --out is refused and left alone
    const victim = await tinyModelFolder(path.join(root, 'victim'), 5, true);
    const victimBefore = await snapshot(victim);
    let r = await runCliAsync(['add-embed-token', '--model', base, '--out', victim]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--out .*victim already holds a model; give a new or empty folder/);
    assert.deepEqual(await snapshot(victim), victimBefore);
    const notes = path.join(root, 'notes');
    await fsp.mkdir(notes);
    writeFileSync(path.join(notes, 'todo.txt'), 'mine');
    r = await runCliAsync(['add-embed-token', '--model', base, '--out', notes]);
    assert.match(r.stderr, /--out .*notes is not empty/);
    assert.equal(existsSync(path.join(notes, 'todo.txt')), true);
    r = await runCliAsync(['add-embed-token', '--model', base, '--out', path.join(notes, 'todo.txt')]);
    assert.match(r.stderr, /^search-r3: --out .*todo\.txt is a file; name a folder/);
    // a folder inside the model would hold the copy of itself (it crashed in the copy)
    const inside = path.join(base, 'sub');
    r = await runCliAsync(['add-embed-token', '--model', base, '--out', inside]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `search-r3: --out ${inside} is inside --model ${base}, which it copies; name a folder outside it.`,
    );
    assert.deepEqual(await snapshot(base), before, 'the model folder is unchanged');

    // a bf16 model whose config says "dtype" (transformers ≥ 4.56) rather than "torch_dtype" stays bf16,
    // and the model's other files come along
    const half = await loadModelFolder(base);
    await saveModelFolder(base, half, { dtype: 'BF16' });
    const config = JSON.parse(await fsp.readFile(path.join(base, 'config.json'), 'utf8'));
    config.dtype = config.torch_dtype;
    delete config.torch_dtype;
    writeFileSync(path.join(base, 'config.json'), JSON.stringify(config));
    const grown = path.join(root, 'grown');
    r = await runCliAsync(['add-embed-token', '--model', base, '--out', grown]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await loadModelFolder(grown)).model.params.get('model.embed_tokens.weight')!.dtype, 'bf16');
    assert.equal(await fsp.readFile(path.join(grown, 'generation_config.json'), 'utf8'), '{"do_sample": false}\n');

    // a model that already has the token is copied to --out as it is (it was left out, the run said done)
    const copy = path.join(root, 'copy');
    r = await runCliAsync(['add-embed-token', '--model', grown, '--out', copy]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /already has <\|embed_token\|> \(id \d+\); copied to \S+copy as it is/);
    assert.deepEqual(await snapshot(copy), await snapshot(grown));
    // --out naming --model another way is --model itself, changed in place, not another model to refuse
    r = await runCliAsync(['add-embed-token', '--model', copy, '--out', `${copy}/.`]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /already has <\|embed_token\|> \(id \d+\); nothing to do/);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('a model folder a killed write left aside is restored before add-embed-token reads it', async () => {
  const root = tempDir('add-token-aside');
  try {
    const made = await tinyModelFolder(path.join(root, 'made'), 3, false);
    const gone = await new Promise<number>((resolve) => {
      const child = execFile(process.execPath, ['-e', '0'], () => resolve(child.pid!));
    });
    // killed between writeDirAtomically's two renames: `base` missing, the old folder aside, the new beside it
    const aside = `.base.${gone}.mqx6abc.tmp.old`;
    await fsp.rename(made, path.join(root, aside));
    await fsp.mkdir(path.join(root, `.base.${gone}.mqx6abc.tmp`));
    const base = path.join(root, 'base');
    const r = await runCliAsync(['add-embed-token', '--model', base]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^${base}: restored from \\.base\\.${gone}\\.mqx6abc\\.tmp\\.old, `));
    assert.deepEqual(readdirSync(root), ['base'], 'restored, then written: no temporary left');
    assert.notEqual((await loadModelFolder(base)).tokenizer.tokenToId('<|embed_token|>'), undefined);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('an --out whose only copy a killed write left aside is seen back in place, however --out is written', async () => {
  const root = tempDir('add-token-out-aside');
  try {
    const base = await tinyModelFolder(path.join(root, 'base'), 3, false);
    const out = await tinyModelFolder(path.join(root, 'out'), 5, true);
    const before = await snapshot(out);
    for (const given of [out, `${out}/`, `${out}/.`]) {
      const aside = leaveAsideAsKilledWrite(out);
      const r = await runCliAsync(['add-embed-token', '--model', base, '--out', given]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(
        r.stderr,
        `${out}: restored from ${aside}, where a write killed before it finished had left it.\n` +
          `search-r3: --out ${given} already holds a model; give a new or empty folder, or leave --out out to ` +
          `change --model.\n`,
      );
      assert.deepEqual(await snapshot(out), before, `--out ${given}: the model there is back, untouched`);
      assert.deepEqual(readdirSync(root).sort(), ['base', 'out']);
    }
    // a new folder named with a trailing /. is written, not renamed onto itself
    const fresh = path.join(root, 'fresh');
    const r = await runCliAsync(['add-embed-token', '--model', base, '--out', `${fresh}/.`]);
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual((await loadModelFolder(fresh)).tokenizer.tokenToId('<|embed_token|>'), undefined);
    assert.deepEqual(readdirSync(root).sort(), ['base', 'fresh', 'out']);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('a --model that is a file is named as --model, also where --out defaults to it', async () => {
  const root = tempDir('add-token-file');
  try {
    const file = path.join(root, 'config.json');
    writeFileSync(file, '{}');
    for (const out of [[], ['--out', path.join(root, 'out')]]) {
      const r = await runCliAsync(['add-embed-token', '--model', file, ...out]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(
        r.stderr,
        `search-r3: --model ${file} is a file; name the model folder (config.json, weights, tokenizer)\n`,
      );
    }
    assert.deepEqual(readdirSync(root), ['config.json']);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
