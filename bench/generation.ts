/**
 * `npm run bench:gen`: prefill and decode tokens/s and the time to embed a 512-token text, ours vs
 * llama.cpp (node-llama-cpp, F32 GGUF) on the same random model of the Qwen2.5-0.5B shape, same thread
 * count, in one run, with ratios.
 *
 * Options (env): BENCH_THREADS (2), BENCH_PROMPT (512), BENCH_DECODE (32).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import * as T from '../src/tensor/index.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import { generate } from '../src/model/generate.js';
import { ggufTokenizerFromTokenizerJson, writeQwen2Gguf } from '../src/model/gguf.js';
import { readQwenReferenceFiles } from '../test/helpers/qwen-reference-tokenizer.js';
import { tinyQwen2Config } from '../test/helpers/tiny-qwen2.js';

const threads = Number(process.env.BENCH_THREADS ?? 2);
const promptLen = Number(process.env.BENCH_PROMPT ?? 512);
const decodeLen = Number(process.env.BENCH_DECODE ?? 32);
process.env.SEARCH_R3_THREADS ??= String(threads);

/** Qwen2.5-0.5B's shape (494M parameters, tied embeddings). */
const config = tinyQwen2Config({
  vocabSize: 151936,
  hiddenSize: 896,
  numAttentionHeads: 14,
  numKeyValueHeads: 2,
  headDim: 64,
  intermediateSize: 4864,
  numHiddenLayers: 24,
  maxPositionEmbeddings: 4096,
  ropeTheta: 1000000,
  tieWordEmbeddings: true,
});

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

interface Figures {
  prefill: number;
  decode: number;
  embed: number;
}

function ours(model: Qwen2Model, prompt: number[]): Figures {
  T.setBackend('native');
  const ids = Int32Array.from(prompt);
  T.noGrad(() => model.logits(T.slice(model.forward(ids.subarray(0, 16), 1, 16), 1, 15, 16))); // warm-up
  let t0 = performance.now();
  T.noGrad(() => model.logits(T.slice(model.forward(ids, 1, prompt.length), 1, prompt.length - 1, prompt.length)));
  const prefill = prompt.length / seconds(t0);
  // decode: generation time minus its own prefill of a 1-token prompt, per token
  t0 = performance.now();
  generate(model, [prompt.slice(0, 1)], { maxNewTokens: decodeLen });
  const decode = decodeLen / seconds(t0);
  t0 = performance.now();
  T.noGrad(() => model.forward(ids, 1, prompt.length));
  const embed = seconds(t0);
  return { prefill, decode, embed };
}

async function llamaCpp(gguf: string, prompt: number[]): Promise<Figures> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({
    modelPath: gguf,
    gpuLayers: 0,
    useMmap: false,
    defaultContextFlashAttention: false,
  });
  try {
    const ctx = await model.createContext({
      contextSize: 1024,
      threads,
      batchSize: 512,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    } as Parameters<typeof model.createContext>[0]);
    const seq = ctx.getSequence();
    await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 16) as Token[]);
    seq.eraseContextTokenRanges([{ start: 0, end: seq.nextTokenIndex }]);
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt as Token[]);
    const prefill = prompt.length / seconds(t0);
    seq.eraseContextTokenRanges([{ start: 0, end: seq.nextTokenIndex }]);
    t0 = performance.now();
    let n = 0;
    for await (const _ of seq.evaluate(prompt.slice(0, 1) as Token[], { temperature: 0, yieldEogToken: true }))
      if (++n >= decodeLen) break;
    const decode = decodeLen / seconds(t0);
    await ctx.dispose();
    const ectx = await model.createEmbeddingContext({ contextSize: 1024, threads, batchSize: 512 });
    t0 = performance.now();
    await ectx.getEmbeddingFor(prompt as Token[]);
    const embed = seconds(t0);
    await ectx.dispose();
    return { prefill, decode, embed };
  } finally {
    await model.dispose();
  }
}

async function main(): Promise<void> {
  console.log(
    `model: random weights, Qwen2.5-0.5B shape (24 layers, d 896, 14/2 heads, FFN 4864, vocab 151936); ` +
      `${threads} threads; prompt ${promptLen}, decode ${decodeLen}`,
  );
  let t0 = performance.now();
  const model = Qwen2Model.random(config, new T.Rng(1), 0.02);
  for (const p of model.parameters()) p.requiresGrad = false;
  const { tokenizerJson } = readQwenReferenceFiles();
  const tok = ggufTokenizerFromTokenizerJson(tokenizerJson, config.vocabSize);
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-bench-gen-'));
  const gguf = path.join(dir, 'model-f32.gguf');
  try {
    await writeQwen2Gguf(gguf, {
      config,
      fileType: 'F32',
      name: 'bench',
      tensors: new Map(model.parameters().map((p) => [p.name!, { shape: [...p.shape], data: p.data }])),
      tokenizer: { ...tok, eosTokenId: null, bosTokenId: null, padTokenId: null, chatTemplate: null },
    });
    console.log(`(model built and written as F32 GGUF in ${seconds(t0).toFixed(0)} s)`);
    const rng = new T.Rng(2);
    const prompt = Array.from({ length: promptLen }, () => 1000 + rng.int(100000));
    const a = ours(model, prompt);
    const b = await llamaCpp(gguf, prompt);
    const row = (name: string, f: Figures): string =>
      `${name.padEnd(22)} ${f.prefill.toFixed(1).padStart(9)} ${f.decode.toFixed(2).padStart(9)} ` +
      `${(f.embed * 1000).toFixed(0).padStart(10)}`;
    console.log(
      `${''.padEnd(22)} ${'prefill'.padStart(9)} ${'decode'.padStart(9)} ${'embed ms'.padStart(10)}   ` +
        `(tokens/s; embed = ${promptLen}-token text)`,
    );
    console.log(row('search-r3 (native)', a));
    console.log(row('llama.cpp F32', b));
    console.log(
      `ratios (ours / llama.cpp): prefill ${(a.prefill / b.prefill).toFixed(2)}, decode ` +
        `${(a.decode / b.decode).toFixed(2)}, embed speed ${(b.embed / a.embed).toFixed(2)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
