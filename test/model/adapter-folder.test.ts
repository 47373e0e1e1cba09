/**
 * A LoRA adapter folder (a LoRA run's final/) loads wherever a model folder does: its base, named by
 * adapter_config.json's base_model_name_or_path and checked against the fingerprint recorded beside it, with
 * the adapter merged as PyTorch merges it (W + (alpha/r)·B·A); a missing, moved or changed base is one sentence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { EMBED_TOKEN } from '../../src/embed/index.js';
import { loadModelFolder, saveModelFolder } from '../../src/model/model-folder.js';
import { ADAPTER_BASE_FILE, modelFingerprint } from '../../src/model/model-fingerprint.js';
import type { Qwen2Model } from '../../src/model/qwen2-model.js';
import { runOracle } from '../helpers/python-oracle.js';
import { relErr } from '../helpers/torch.js';
import { tempDir, tinyModelFolder, toyAdapterFolder } from '../helpers/train-fixtures.js';

const PROMPTS = [
  [5, 77, 123, 9, 250, 31, 2],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
];

function lastHidden(model: Qwen2Model, ids: number[]): number[] {
  const h = T.noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length).read());
  const d = model.config.hiddenSize;
  return Array.from(h.subarray(h.length - d));
}

const adapterConfig = (dir: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const setBase = (dir: string, base: string): void =>
  writeFileSync(
    path.join(dir, 'adapter_config.json'),
    JSON.stringify({ ...adapterConfig(dir), base_model_name_or_path: base }),
  );

test(
  'a LoRA run saves its base (absolute path, fingerprint) and loads as that base with the adapter merged, ' +
    'as PyTorch merges it',
  async () => {
    const root = tempDir('adapter-load');
    try {
      // a base without <|embed_token|>: fine-tuning adds it and grows the embedding, loading the adapter must too
      const base = await tinyModelFolder(path.join(root, 'base'), 3, false);
      const final = path.join(root, 'run', 'final');
      const trained = await toyAdapterFolder(path.relative(process.cwd(), base), final);
      const cfg = adapterConfig(final);
      assert.equal(cfg.base_model_name_or_path, base, 'the base is recorded as an absolute path');
      const recorded = JSON.parse(readFileSync(path.join(final, ADAPTER_BASE_FILE), 'utf8'));
      assert.equal(recorded.fingerprint, await modelFingerprint(base));

      const loaded = await loadModelFolder(final);
      assert.equal(loaded.base, base);
      assert.equal(loaded.model.adapters.size, 0, 'merged, not attached');
      assert.ok(loaded.tokenizer.tokenToId(EMBED_TOKEN) !== undefined, "the adapter's tokenizer");
      assert.equal(loaded.config.vocabSize, trained.model.config.vocabSize, 'the embedding grew as in training');
      const embed = loaded.model.params.get('model.embed_tokens.weight')!;
      assert.deepEqual(embed.read(), trained.model.params.get('model.embed_tokens.weight')!.read());
      // PyTorch: the base's own weights, W + (alpha/r)·B·A in float64
      const oracle = await runOracle<{ results: { last_hidden: number[] }[] }>('qwen2_forward.py', {
        config: path.join(base, 'config.json'),
        weights: path.join(base, 'model.safetensors'),
        lora: { weights: path.join(final, 'adapter_model.safetensors'), alpha: cfg.lora_alpha },
        prompts: PROMPTS,
      });
      const unmerged = await loadModelFolder(base);
      for (let i = 0; i < PROMPTS.length; i++) {
        const ours = lastHidden(loaded.model, PROMPTS[i]);
        const want = oracle.results[i].last_hidden;
        assert.ok(relErr(ours, want) < 1e-5, `prompt ${i}: ${relErr(ours, want)}`);
        assert.ok(relErr(lastHidden(unmerged.model, PROMPTS[i]), want) > 1e-2, 'the adapter changes the model');
        // the adapters as training applies them (unmerged) give the same model
        assert.ok(relErr(ours, lastHidden(trained.model, PROMPTS[i])) < 1e-5);
      }
      // trainable (full fine-tuning from an adapter folder): every weight float32 and trainable
      const trainable = await loadModelFolder(final, { trainable: true });
      assert.ok(trainable.model.parameters().every((p) => p.requiresGrad && p.dtype === 'f32'));
      assert.ok(relErr(lastHidden(trainable.model, PROMPTS[0]), lastHidden(loaded.model, PROMPTS[0])) < 1e-6);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test('a 16-bit base: the merged weights are held in its dtype, as the base is', async () => {
  const root = tempDir('adapter-bf16');
  try {
    const f32 = await loadModelFolder(await tinyModelFolder(path.join(root, 'f32'), 4));
    const base = path.join(root, 'base');
    await saveModelFolder(base, f32, { dtype: 'BF16' });
    const final = path.join(root, 'final');
    await toyAdapterFolder(base, final);
    const loaded = await loadModelFolder(final);
    const q = loaded.model.params.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.equal(q.dtype, 'bf16');
    const wide = await loadModelFolder(final, { precision: 'f32' });
    const qWide = wide.model.params.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.equal(qWide.dtype, 'f32');
    // rounding the float32 merge to bf16 gives the 16-bit one exactly
    assert.deepEqual(T.HalfArray.from(qWide.read(), 'bf16').bits, (q.readValues() as T.HalfArray).bits);
    const baseQ = (await loadModelFolder(base)).model.params.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.notDeepEqual((baseQ.readValues() as T.HalfArray).bits, (q.readValues() as T.HalfArray).bits);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('an adapter without a recorded base, or whose base moved or changed, is refused in one sentence', async () => {
  const root = tempDir('adapter-errors');
  try {
    const base = await tinyModelFolder(path.join(root, 'base'), 5);
    const final = path.join(root, 'final');
    await toyAdapterFolder(base, final);
    const config = path.join(final, 'adapter_config.json');

    // an older run: PEFT's field left empty
    setBase(final, '');
    const none = new RegExp(
      `${esc(config)}: names no base model \\("base_model_name_or_path" is empty\\), so this LoRA adapter cannot be ` +
        'loaded; set the field to the path of the model folder it was trained on',
    );
    await assert.rejects(loadModelFolder(final), none);
    await assert.rejects(modelFingerprint(final), none);

    // the base moved: the recorded path is named, and the field to fix
    const moved = path.join(root, 'elsewhere');
    cpSync(base, moved, { recursive: true });
    setBase(final, path.join(root, 'gone'));
    await assert.rejects(
      loadModelFolder(final),
      new RegExp(
        `${esc(config)}: the base model "${esc(path.join(root, 'gone'))}" that "base_model_name_or_path" names ` +
          'is not a folder here \\(moved or deleted\\?\\); set the field to the path of that model folder ' +
          'where it is now\\.$',
      ),
    );
    // set to where it is now (relative paths are taken from the adapter folder): the same model as before
    const before = await modelFingerprint((setBase(final, base), final));
    setBase(final, path.relative(final, moved));
    const fromMoved = await loadModelFolder(final);
    assert.equal(fromMoved.base, moved);
    assert.equal(await modelFingerprint(final), before, 'moving the folders changes no fingerprint');

    // the base's weights changed: refused by name, not merged onto them
    await saveModelFolder(moved, await loadModelFolder(await tinyModelFolder(path.join(root, 'other'), 6)));
    const changed = new RegExp(
      `${esc(moved)}: is not the base model the LoRA adapter ${esc(final)} was trained on ` +
        `\\(its ${ADAPTER_BASE_FILE} records sha256:\\w+, this folder is sha256:\\w+\\): ` +
        `point "base_model_name_or_path" in adapter_config\\.json at that base, ` +
        `or delete ${ADAPTER_BASE_FILE} to merge onto this one anyway\\.$`,
    );
    await assert.rejects(loadModelFolder(final), changed);
    await assert.rejects(modelFingerprint(final), changed);
    await assert.rejects(loadModelFolder(final, { base: moved }), /give the base it was trained on, or delete/);
    // a PEFT adapter from elsewhere records no fingerprint: its base is taken as named
    rmSync(path.join(final, ADAPTER_BASE_FILE));
    assert.equal((await loadModelFolder(final)).base, moved);

    // an adapter named as its own base
    setBase(final, '.');
    await assert.rejects(
      loadModelFolder(final),
      /"base_model_name_or_path" in adapter_config\.json leads back to .*: LoRA adapters name each other/,
    );
    assert.equal(existsSync(path.join(final, 'config.json')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("an adapter trained on an adapter folder loads through both, and its fingerprint follows its base's", async () => {
  const root = tempDir('adapter-chain');
  try {
    const base = await tinyModelFolder(path.join(root, 'base'), 7);
    const first = path.join(root, 'first');
    await toyAdapterFolder(base, first, 12);
    const second = path.join(root, 'second');
    const ft = await toyAdapterFolder(first, second, 13);
    assert.equal(adapterConfig(second).base_model_name_or_path, first);
    const loaded = await loadModelFolder(second);
    assert.ok(relErr(lastHidden(loaded.model, PROMPTS[0]), lastHidden(ft.model, PROMPTS[0])) < 1e-5);
    const fingerprints = [await modelFingerprint(base), await modelFingerprint(first), await modelFingerprint(second)];
    assert.equal(new Set(fingerprints).size, 3);
    // another adapter on the same base is another model
    const other = path.join(root, 'other');
    await toyAdapterFolder(base, other, 14);
    assert.notEqual(await modelFingerprint(other), fingerprints[1]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
