/**
 * A checkpoint stored in bf16 or f16, loaded two ways: its weight matrices kept in 16 bits (the default
 * for frozen weights, widened inside the kernels) and widened to float32 at load (precision 'f32', the
 * path every result was measured on before). Widening is exact, so the two differ only in summation
 * order; the bars are the issue's: logits at every position and the <|embed_token|> state at cosine
 * ≥ 0.9999, the same greedy analysis, and a LoRA step's adapter gradients within 1e-3 relative — on the
 * native backend and on the JS reference, through the prefill (panel) and decode (streamed) kernels.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Embedder } from '../../src/embed/index.js';
import { attachLora, loraParameters } from '../../src/model/lora.js';
import { type LoadedModel, loadModelFolder, saveModelFolder } from '../../src/model/model-folder.js';
import { cosine } from '../helpers/llama-cpp.js';
import { tinyModel } from '../helpers/tiny-model.js';
import { relErr } from '../helpers/torch.js';

const shape = { hiddenSize: 128, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 256, numHiddenLayers: 2 };
const COS = 0.9999;
const dirs = new Map<'BF16' | 'F16', string>();

before(async () => {
  const m = tinyModel(21, { ...shape, tieWordEmbeddings: false });
  for (const dtype of ['BF16', 'F16'] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), `sr3-half-${dtype}-`));
    await saveModelFolder(dir, m, { dtype });
    dirs.set(dtype, dir);
  }
});

after(() => {
  for (const d of dirs.values()) rmSync(d, { recursive: true, force: true });
});

async function bothWays(dtype: 'BF16' | 'F16'): Promise<{ half: LoadedModel; wide: LoadedModel }> {
  const dir = dirs.get(dtype)!;
  const half = await loadModelFolder(dir);
  const wide = await loadModelFolder(dir, { precision: 'f32' });
  assert.equal(half.model.params.get('model.layers.0.mlp.down_proj.weight')!.dtype, dtype.toLowerCase());
  assert.equal(half.model.params.get('lm_head.weight')!.dtype, dtype.toLowerCase());
  assert.equal(wide.model.params.get('lm_head.weight')!.dtype, 'f32');
  return { half, wide };
}

function minRowCosine(a: Float32Array, b: Float32Array, row: number): number {
  let worst = 1;
  for (let o = 0; o < a.length; o += row)
    worst = Math.min(worst, cosine(a.subarray(o, o + row), b.subarray(o, o + row)));
  return worst;
}

const QUERY = 'does vitamin D prevent fractures in older adults?';
const DOCS = [
  'Vitamin D supplementation and fracture risk: a meta-analysis.',
  'short',
  'Bone density declines with age.',
];

for (const backend of ['native', 'js'] as const) {
  for (const dtype of ['BF16', 'F16'] as const) {
    test(
      `${dtype} weights held in 16 bits (${backend}): logits, ` +
        `embeddings and the greedy analysis match the f32 path`,
      async () => {
        T.setBackend(backend);
        try {
          const { half, wide } = await bothWays(dtype);
          const ids = Int32Array.from(half.tokenizer.encode(`${QUERY} ${DOCS.join(' ')}`));
          const logits = (m: LoadedModel): Float32Array =>
            T.noGrad(() => m.model.logits(m.model.forward(ids, 1, ids.length))).data;
          const c = minRowCosine(logits(half), logits(wide), half.config.vocabSize);
          assert.ok(c >= COS, `logits: worst position cosine ${c}`);
          const eh = new Embedder(half.model, half.tokenizer),
            ew = new Embedder(wide.model, wide.tokenizer);
          const docsH = eh.embedDocuments(DOCS).vectors,
            docsW = ew.embedDocuments(DOCS).vectors;
          docsH.forEach((v, i) =>
            assert.ok(cosine(v, docsW[i]) >= COS, `document ${i}: cosine ${cosine(v, docsW[i])}`),
          );
          for (const reasoning of ['off', 'on'] as const) {
            const qh = eh.embedQuery(QUERY, { reasoning, maxReasoningTokens: 12 });
            const qw = ew.embedQuery(QUERY, { reasoning, maxReasoningTokens: 12 });
            assert.deepEqual(qh.tokens, qw.tokens, `reasoning ${reasoning}: the same greedy analysis`);
            assert.ok(
              cosine(qh.vector, qw.vector) >= COS,
              `reasoning ${reasoning}: <|embed_token|> state cosine ${cosine(qh.vector, qw.vector)}`,
            );
          }
        } finally {
          T.setBackend('native');
        }
      },
    );
  }
}

/** One LoRA step's loss and adapter gradients (B set non-zero, so that A gets a gradient too). */
function loraStep(m: LoadedModel): { loss: number; grads: Float32Array[] } {
  const lora = attachLora(
    m.model,
    { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'] },
    new T.Rng(3),
  );
  const rng = new T.Rng(4);
  for (const ad of m.model.adapters.values()) ad.b.data.set(T.randn(ad.b.shape, rng, 0.05).data);
  const batch = 2,
    len = 24;
  const ids = new Int32Array(batch * len).map((_, i) => 3 + ((i * 37) % 250));
  const targets = Int32Array.from(ids, (_, i) => ids[(i + 1) % ids.length]);
  const logits = m.model.logits(m.model.forward(ids, batch, len));
  const loss = T.crossEntropy(T.reshape(logits, [batch * len, m.config.vocabSize]), targets);
  loss.backward();
  assert.deepEqual(loraParameters(m.model), lora);
  return { loss: loss.item(), grads: lora.map((p) => p.readGrad()!) };
}

for (const dtype of ['BF16', 'F16'] as const) {
  test(
    `LoRA on a ${dtype} base held in 16 bits: one step's ` + `adapter gradients within 1e-3 of the f32 base's`,
    async () => {
      const { half, wide } = await bothWays(dtype);
      const h = loraStep(half),
        w = loraStep(wide);
      assert.ok(Math.abs(h.loss - w.loss) <= 1e-5 * Math.abs(w.loss), `loss ${h.loss} vs ${w.loss}`);
      h.grads.forEach((g, i) => {
        assert.ok(
          g.some((x) => x !== 0),
          `adapter ${i} gets a gradient`,
        );
        assert.ok(relErr(g, w.grads[i]) <= 1e-3, `adapter ${i}: relErr ${relErr(g, w.grads[i])}`);
      });
      for (const p of half.model.parameters()) assert.equal(p.grad, null, `${p.name} is frozen`);
    },
  );
}

test(
  'a weight held in 16 bits refuses to be trained, and ' + 'every op but matmul and embedding refuses to read it',
  async () => {
    const { half } = await bothWays('BF16');
    const w = half.model.params.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.throws(() => {
      w.requiresGrad = true;
    }, /held in bf16, which is for frozen weights; load it in float32 to train it/);
    assert.throws(() => T.add(w, w), /is held in bf16: only matmul\/linear \(as the weight\) and embedding read one/);
    assert.equal(w.float32().dtype, 'f32');
  },
);
