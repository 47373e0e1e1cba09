import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { advance, generate, generateSteps } from '../../src/model/generate.js';
import { hostPool } from '../../src/tensor/js-kernels.js';
import { sampleToken } from '../../src/model/sampling.js';
import { type LoraTarget, attachLora, mergeLora } from '../../src/model/lora.js';
import { relErr } from '../helpers/torch.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';

const config = tinyQwen2Config({
  vocabSize: 50,
  hiddenSize: 32,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 8,
  intermediateSize: 48,
  numHiddenLayers: 2,
  maxPositionEmbeddings: 64,
});
const model = Qwen2Model.random(config, new T.Rng(7), 0.3);
const prompts = [
  [3, 9, 4, 17, 22, 5, 8],
  [11, 2],
  [40, 41, 42, 43],
];

/** Hidden states and logits of a whole sequence without any cache: the definition generation must meet. */
function full(seq: number[]): { hidden: Float32Array; logits: Float32Array } {
  return T.noGrad(() => {
    const h = model.forward(Int32Array.from(seq), 1, seq.length);
    return { hidden: h.data, logits: model.logits(h).data };
  });
}

test('greedy generation with the KV cache equals recomputing the whole sequence each step', () => {
  for (const p of prompts) {
    const g = generate(model, [p], { maxNewTokens: 12 })[0];
    const seq = [...p];
    for (let i = 0; i < 12; i++) {
      const { logits } = full(seq);
      const row = logits.subarray((seq.length - 1) * config.vocabSize, seq.length * config.vocabSize);
      const best = row.indexOf(Math.max(...row));
      assert.equal(g.tokens[i], best, `token ${i} of prompt ${p}`);
      const lse = Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
      assert.ok(Math.abs(g.logprobs[i] - (row[best] - lse)) < 1e-4, 'logprob');
      seq.push(best);
    }
  }
});

test(
  'a KV cache that starts without room grows in place ' + 'and decodes exactly as one allocated for the whole run',
  () => {
    const seq = [3, 9, 4, 17, 22, 5, 8, 1, 30, 2, 6, 12, 19, 27, 33, 44, 45];
    const decode = (capacity: number): { hidden: Float32Array[]; allocated: number } =>
      T.noGrad(() => {
        const cache = model.newCache(capacity);
        const out: Float32Array[] = [
          model.forward(Int32Array.from(seq.slice(0, 3)), 1, 3, { cache }).data.slice(-config.hiddenSize),
        ];
        for (let t = 3; t < seq.length; t++) out.push(model.forward(Int32Array.of(seq[t]), 1, 1, { cache }).data);
        return { hidden: out, allocated: cache.keys[0]!.shape[1] };
      });
    const grown = decode(0),
      sized = decode(seq.length);
    assert.deepEqual(grown.hidden, sized.hidden);
    assert.equal(sized.allocated, seq.length, 'allocated once, at the first step');
    assert.equal(grown.allocated, 24, 'doubled from the prompt: 3, 6, 12, 24');
    const whole = full(seq).hidden;
    const last = whole.subarray(whole.length - config.hiddenSize);
    assert.ok(relErr(sized.hidden.at(-1)!, last) < 1e-5);
    assert.throws(
      () => model.forward(Int32Array.of(1), 1, 1, { cache: model.newCache(4) }),
      /KV cache is for inference/,
    );
  },
);

test('a batch of prompts of different lengths generates what each prompt generates alone', () => {
  const batch = generate(model, prompts, {
    maxNewTokens: 10,
    capturePositions: prompts.map((p) => [p.length - 1, p.length + 4]),
  });
  prompts.forEach((p, i) => {
    const alone = generate(model, [p], { maxNewTokens: 10, capturePositions: [[p.length - 1, p.length + 4]] })[0];
    assert.deepEqual(batch[i].tokens, alone.tokens);
    for (const [pos, h] of alone.hidden) assert.ok(relErr(batch[i].hidden.get(pos)!, h) < 1e-5, `hidden at ${pos}`);
  });
});

test('hidden states captured at a generated token equal the full forward pass at that position', () => {
  const p = prompts[0];
  const plain = generate(model, [p], { maxNewTokens: 6 })[0];
  const target = plain.tokens[3];
  const g = generate(model, [p], { maxNewTokens: 6, stopTokens: [target], captureTokens: [target] })[0];
  assert.equal(g.finish, 'stop');
  assert.deepEqual(g.tokens, plain.tokens.slice(0, plain.tokens.indexOf(target) + 1));
  const at = p.length + g.tokens.length - 1;
  const ref = full([...p, ...g.tokens]).hidden.subarray(at * config.hiddenSize, (at + 1) * config.hiddenSize);
  assert.ok(g.hidden.has(at), 'captured at the stop token');
  assert.ok(relErr(g.hidden.get(at)!, ref) < 1e-5);
});

test('seeded sampling is reproducible; top-k 1 is greedy; maxNewTokens ends with finish=length', () => {
  const opts = { maxNewTokens: 15, temperature: 1.3, topP: 0.9, seed: 5 };
  const a = generate(model, prompts, opts),
    b = generate(model, prompts, opts);
  assert.deepEqual(
    a.map((g) => g.tokens),
    b.map((g) => g.tokens),
  );
  const c = generate(model, prompts, { ...opts, seed: 6 });
  assert.notDeepEqual(
    a.map((g) => g.tokens),
    c.map((g) => g.tokens),
  );
  const greedy = generate(model, prompts, { maxNewTokens: 15 });
  const k1 = generate(model, prompts, { maxNewTokens: 15, temperature: 0.8, topK: 1, seed: 1 });
  assert.deepEqual(
    k1.map((g) => g.tokens),
    greedy.map((g) => g.tokens),
  );
  for (const g of a) {
    assert.equal(g.tokens.length, 15);
    assert.equal(g.finish, 'length');
  }
});

test('top-k and top-p only ever pick from the allowed set', () => {
  const logits = Float32Array.from([2, 1, 0.5, 3, -1, 2.9]);
  const rng = new T.Rng(3);
  const seen = new Set<number>();
  for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, 0, 6, { temperature: 1, topK: 2 }, rng).token);
  assert.deepEqual([...seen].sort(), [3, 5]);
  seen.clear();
  // softmax: token 3 ≈ 0.41, token 5 ≈ 0.37 → top-p 0.5 needs both, nothing more
  for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, 0, 6, { temperature: 1, topP: 0.5 }, rng).token);
  assert.deepEqual([...seen].sort(), [3, 5]);
});

test('a prompt longer than the context is refused with the limit named', () => {
  assert.throws(() => generate(model, [new Array(60).fill(1)], { maxNewTokens: 10 }), /context of 64 positions/);
});

test('prompt + new tokens may fill the context, the last token captured at its last position', () => {
  const prompt = new Array(60).fill(1);
  // a capture feeds the last new token once more: it sits at position 63, the context's last
  const g = generate(model, [prompt], { maxNewTokens: 4, capturePositions: [[63]], stopTokens: [] })[0];
  assert.equal(g.tokens.length, 4);
  const want = full([...prompt, ...g.tokens]).hidden.subarray(63 * config.hiddenSize, 64 * config.hiddenSize);
  assert.ok(relErr(g.hidden.get(63)!, want) < 1e-4);
  assert.throws(() => generate(model, [prompt], { maxNewTokens: 5 }), /60-token prompt plus 5 new tokens/);
});

test(
  'a forward pass without gradients, which releases its activations as it goes and adds the residuals in place, ' +
    'equals one with them',
  () => {
    const ids = Int32Array.from([3, 9, 4, 17, 22, 5, 8, 11, 2, 40]);
    const recorded = model.forward(ids, 2, 5).read();
    const released = T.noGrad(() => {
      // twice, so that the second pass computes in the arrays the first one released
      model.forward(ids, 2, 5);
      return model.forward(ids, 2, 5).read();
    });
    assert.deepEqual(released, recorded);
  },
);

test('with a LoRA adapter on either residual projection, or both, or merged, inference equals the recorded one', () => {
  const ids = Int32Array.from([3, 9, 4, 17, 22, 5, 8, 11, 2, 40]);
  const cases: { targets: LoraTarget[]; merge: boolean }[] = [
    { targets: ['o_proj'], merge: false },
    { targets: ['down_proj'], merge: false },
    { targets: ['o_proj', 'down_proj'], merge: false },
    { targets: ['o_proj', 'down_proj'], merge: true },
  ];
  for (const { targets, merge } of cases) {
    const m = Qwen2Model.random(config, new T.Rng(9), 0.3);
    const rng = new T.Rng(4);
    attachLora(m, { rank: 4, alpha: 8, dropout: 0, targets }, rng);
    // B starts at 0; values that change the output, so that a dropped or doubled adapter shows
    for (const ad of m.adapters.values()) ad.b.data.set(ad.b.data.map(() => 0.3 * rng.normal()));
    if (merge) mergeLora(m);
    const recorded = m.forward(ids, 2, 5).read();
    const inference = T.noGrad(() => m.forward(ids, 2, 5).read());
    const e = relErr(inference, recorded);
    assert.ok(e <= 1e-6, `${targets.join('+')}${merge ? ' merged' : ''}: relErr ${e}`);
  }
});

test('decode steps reuse the previous steps’ memory instead of allocating', () => {
  const steps = generateSteps(model, [prompts[0], prompts[1]], { maxNewTokens: 12 });
  for (let i = 0; i < 3; i++) advance(steps);
  const created = hostPool.created;
  for (let i = 0; i < 6; i++) advance(steps);
  assert.equal(hostPool.created - created, 0, 'arrays allocated by six decode steps after warm-up');
});

test('an abandoned row stops where it is; the others generate what they would; the run ends with them', () => {
  const rows = [prompts[0], prompts[1]];
  const stopTokens = [generate(model, [rows[0]], { maxNewTokens: 6 })[0].tokens[5]];
  const alone = rows.map((p) => generate(model, [p], { maxNewTokens: 20, stopTokens })[0]);
  assert.ok(alone[1].tokens.length > alone[0].tokens.length + 3, 'row 1 alone outlasts row 0 (the case tested)');
  const run = (abandoned?: (row: number) => boolean): { tokens: number[][]; passes: number } => {
    const steps = generateSteps(model, rows, { maxNewTokens: 20, stopTokens, abandoned });
    for (let passes = 1; ; passes++) {
      const r = advance(steps);
      if (r.done) return { tokens: r.value.map((g) => g.tokens), passes };
    }
  };
  assert.equal(run().passes, alone[1].tokens.length + 1, 'kept, row 1 sets the length');
  let tokensOf1 = 0;
  const dropped = run((row) => row === 1 && ++tokensOf1 > 3);
  assert.deepEqual(dropped.tokens[0], alone[0].tokens, 'the row still wanted is unchanged');
  assert.deepEqual(dropped.tokens[1], alone[1].tokens.slice(0, 3), 'the abandoned row stops after its third token');
  assert.equal(dropped.passes, alone[0].tokens.length + 1, 'the generation ends with the row still wanted');
  // sampled rows share one stream of draws: there a row is never dropped, so the others' draws stay
  const sampled = { maxNewTokens: 8, temperature: 1, seed: 3 };
  const kept = generate(model, rows, sampled);
  const asked = generate(model, rows, { ...sampled, abandoned: (row) => row === 1 });
  assert.deepEqual(
    asked.map((g) => g.tokens),
    kept.map((g) => g.tokens),
  );
});

test('stopWhen ends its row after the token it names, finish=stop; the other rows generate what they would', () => {
  const plain = generate(model, prompts, { maxNewTokens: 10 });
  const seen: number[][] = [];
  const g = generate(model, prompts, {
    maxNewTokens: 10,
    stopWhen: (row, tokens) => {
      seen.push([row, tokens.length]);
      return row === 1 && tokens.length === 4;
    },
  });
  assert.deepEqual(g[1].tokens, plain[1].tokens.slice(0, 4));
  assert.equal(g[1].finish, 'stop');
  for (const r of [0, 2]) {
    assert.deepEqual(g[r].tokens, plain[r].tokens);
    assert.equal(g[r].finish, 'length');
  }
  assert.deepEqual(
    seen.filter(([row]) => row === 1).map(([, n]) => n),
    [1, 2, 3, 4],
    'asked after each of its tokens, with them all',
  );
});

test('maxNewTokens 0 generates nothing (finish=length); the prompt is still run for its captures', () => {
  const p = prompts[0];
  for (const temperature of [0, 1]) {
    const [g] = generate(model, [p], { maxNewTokens: 0, temperature, seed: 1, capturePositions: [[p.length - 1]] });
    assert.deepEqual(g.tokens, []);
    assert.deepEqual(g.logprobs, []);
    assert.equal(g.finish, 'length');
    const at = (p.length - 1) * config.hiddenSize;
    assert.ok(relErr(g.hidden.get(p.length - 1)!, full(p).hidden.subarray(at, at + config.hiddenSize)) < 1e-5);
  }
  let passes = 0;
  for (const steps = generateSteps(model, prompts, { maxNewTokens: 0 }); !advance(steps).done;) passes++;
  assert.equal(passes, 1, 'the prompts’ forward pass only');
});
