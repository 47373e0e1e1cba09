/**
 * The GGUF writer validated end to end, independently of our own forward: a tiny random Qwen2 is
 * written as safetensors (read by a PyTorch reference forward) and as GGUF (run by llama.cpp), and the
 * two must agree on the last-token final-norm hidden state and on greedy continuations.
 *
 * Greedy rule (tie-tolerant): llama.cpp's 32 tokens must equal PyTorch's, except that a first
 * difference is accepted at a step where PyTorch's top-2 logit gap is below NEAR_TIE (float32
 * rounding can then legitimately pick either); later tokens are not compared, their prefixes differ.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeQwen2Gguf, type GgufFileType } from '../../src/model/gguf.js';
import { writeQwen2Config } from '../../src/model/qwen2-config.js';
import { saveSafetensors } from '../../src/model/safetensors.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { cosine, openLlamaCppModel, type LlamaCppModel } from '../helpers/llama-cpp.js';
import { runOracle } from '../helpers/python-oracle.js';
import { tinyQwen2Fixture, type TinyQwen2Fixture } from '../helpers/random-qwen2.js';

const N_NEW = 32;
const NEAR_TIE = 1e-3;

interface OracleResult {
  last_hidden: number[];
  greedy: number[];
  gaps: number[];
}

let dir = '';
const chat =
  '<|im_start|>system\nPlease represent user queries.<|im_end|>\n<|im_start|>user\nwhat is a GGUF ' +
  'file?<|im_end|>\n<|im_start|>assistant\n';

function prompts(fx: TinyQwen2Fixture): number[][] {
  const tok = Tokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig);
  return [
    tok.encode(chat),
    tok.encode('The quick brown fox jumps over the lazy dog.'),
    [5, 17, 123, 250, 3, 77, 299, 41],
    [296, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120],
  ];
}

/** Writes the fixture for both runtimes and asks PyTorch for the reference answers. */
async function prepare(
  fx: TinyQwen2Fixture,
  name: string,
  fileTypes: GgufFileType[],
): Promise<{ ps: number[][]; ref: OracleResult[]; gguf: Record<string, string> }> {
  const weights = path.join(dir, `${name}.safetensors`);
  const config = path.join(dir, `${name}.config.json`);
  await saveSafetensors(weights, fx.tensors);
  await writeQwen2Config(config, fx.config);
  const gguf: Record<string, string> = {};
  for (const fileType of fileTypes) {
    gguf[fileType] = path.join(dir, `${name}.${fileType}.gguf`);
    await writeQwen2Gguf(gguf[fileType]!, {
      config: fx.config,
      tensors: fx.tensors,
      tokenizer: fx.ggufTokenizer,
      fileType,
    });
  }
  const ps = prompts(fx);
  const { results } = await runOracle<{ results: OracleResult[] }>('qwen2_forward.py', {
    config,
    weights,
    prompts: ps,
    n_new: N_NEW,
  });
  return { ps, ref: results, gguf };
}

/** Checks llama.cpp's continuation against PyTorch's under the tie-tolerant rule; returns the agreeing length. */
function assertGreedyAgrees(label: string, ours: number[], ref: OracleResult, tie = NEAR_TIE): number {
  assert.equal(ours.length, ref.greedy.length, `${label}: generated ${ours.length} tokens`);
  for (let i = 0; i < ref.greedy.length; i++) {
    if (ours[i] === ref.greedy[i]) continue;
    assert.ok(
      ref.gaps[i]! < tie,
      `${label}: step ${i}: llama.cpp ${ours[i]} vs PyTorch ${ref.greedy[i]} with top-2 gap ${ref.gaps[i]} ` +
        `(>= ${tie})\n` +
        `llama.cpp ${ours.join(',')}\nPyTorch   ${ref.greedy.join(',')}`,
    );
    return i;
  }
  return ref.greedy.length;
}

let tied: Awaited<ReturnType<typeof prepare>>;
let tiedFx: TinyQwen2Fixture;
const models: LlamaCppModel[] = [];

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gguf-llama-'));
  tiedFx = tinyQwen2Fixture(1234);
  tied = await prepare(tiedFx, 'tied', ['F32', 'F16', 'Q8_0']);
});

after(async () => {
  for (const m of models) await m.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function open(file: string): Promise<LlamaCppModel> {
  const m = await openLlamaCppModel(file);
  models.push(m);
  return m;
}

test('the reference continuations are varied, so agreement means something', () => {
  for (const [i, r] of tied.ref.entries()) {
    assert.ok(
      new Set(r.greedy).size >= 8,
      `prompt ${i}: only ${new Set(r.greedy).size} distinct tokens in ${r.greedy.join(',')}`,
    );
  }
});

test('F32 GGUF in llama.cpp = PyTorch: last hidden state (cos >= 0.9999) and 32 greedy tokens', async () => {
  const m = await open(tied.gguf['F32']!);
  for (const [i, p] of tied.ps.entries()) {
    const h = await m.lastHidden(p);
    assert.equal(h.length, 64);
    const cos = cosine(h, tied.ref[i]!.last_hidden);
    assert.ok(cos >= 0.9999, `prompt ${i}: cosine ${cos}`);
    const g = await m.greedy(p, N_NEW);
    assertGreedyAgrees(`prompt ${i}`, g, tied.ref[i]!);
    assert.deepEqual(await m.greedy(p, N_NEW), g, 'greedy decoding is deterministic');
  }
});

test(
  'llama.cpp tokenizes text like our tokenizer (tokens, ' + 'merges, pre-tokenizer and special tokens exported right)',
  async () => {
    const m = await open(tied.gguf['F32']!);
    const tok = Tokenizer.fromJSON(tiedFx.tokenizerJson, tiedFx.tokenizerConfig);
    for (const text of [
      chat,
      'The quick brown fox jumps over the lazy dog.',
      "  it's 2024:\n\ttabs, ÜNICODE 漢字 and emoji 🙂<|embed_token|>.",
    ]) {
      assert.deepEqual(m.model.tokenize(text, true).map(Number), tok.encode(text), JSON.stringify(text));
      assert.equal(m.model.detokenize(m.model.tokenize(text, true), true), text);
    }
  },
);

test('F16 and Q8_0 GGUFs load and stay close to PyTorch', async () => {
  for (const [fileType, minCos] of [
    ['F16', 0.9999],
    ['Q8_0', 0.99],
  ] as const) {
    const m = await open(tied.gguf[fileType]!);
    for (const [i, p] of tied.ps.entries()) {
      const cos = cosine(await m.lastHidden(p), tied.ref[i]!.last_hidden);
      assert.ok(cos >= minCos, `${fileType} prompt ${i}: cosine ${cos}`);
      const g = await m.greedy(p, N_NEW);
      assert.deepEqual(await m.greedy(p, N_NEW), g, `${fileType}: greedy decoding is deterministic`);
      assert.equal(g[0], tied.ref[i]!.greedy[0], `${fileType} prompt ${i}: first greedy token`);
    }
  }
});

test('untied LM head (output.weight): F32 agrees with PyTorch', async () => {
  const fx = tinyQwen2Fixture(99, { tie_word_embeddings: false });
  const u = await prepare(fx, 'untied', ['F32']);
  const m = await open(u.gguf['F32']!);
  for (const [i, p] of u.ps.entries()) {
    const cos = cosine(await m.lastHidden(p), u.ref[i]!.last_hidden);
    assert.ok(cos >= 0.9999, `prompt ${i}: cosine ${cos}`);
    assertGreedyAgrees(`prompt ${i}`, await m.greedy(p, N_NEW), u.ref[i]!);
  }
});
