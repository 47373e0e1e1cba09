/**
 * A base model folder without <|embed_token|>: refused by every command with a sentence that offers the
 * fix, then made usable by add-embed-token (tokenizer files only when the vocabulary has room, else the
 * embedding grows by the mean row and the weights are written again in their stored precision).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Embedder } from '../../src/embed/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';
import { loadModelFolder, saveModelFolder } from '../../src/model/model-folder.js';
import { runCliAsync } from '../helpers/cli.js';
import { tempDir, tinyModelFolder, writeJsonl } from '../helpers/train-fixtures.js';

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
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
