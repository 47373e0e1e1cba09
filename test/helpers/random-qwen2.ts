/**
 * Random Qwen2 weights as plain typed arrays (Hugging Face names), for file-format and cross-runtime
 * tests. Scales are chosen so that a tiny random model's greedy decoding is not degenerate: the
 * attention and MLP branches write into the residual stream at least as strongly as the embedding,
 * norms scatter around 1 and biases are visible.
 */
import { ggufTokenizerFromTokenizerJson, type GgufTokenizer } from '../../src/model/gguf.js';
import { parseQwen2Config, qwen2TensorSpecs, type Qwen2Config } from '../../src/model/qwen2-config.js';
import { makeTinyTokenizer } from './tiny-tokenizer.js';
import type { TokenizerConfig, TokenizerJson } from '../../src/model/tokenizer-json.js';
import { numel, type TensorData } from '../../src/model/tensor-data.js';
import { SeededRandom } from './seeded-random.js';

export interface RandomQwen2Scales {
  embed: number;
  /** std of a projection with fan-in n is `proj / sqrt(n)`. */
  proj: number;
  bias: number;
  /** norms are 1 + N(0, norm²). */
  norm: number;
}

export const DEFAULT_SCALES: RandomQwen2Scales = { embed: 1, proj: 1, bias: 0.2, norm: 0.1 };

export function randomQwen2Weights(
  config: Qwen2Config,
  seed: number,
  scales: RandomQwen2Scales = DEFAULT_SCALES,
): Map<string, TensorData> {
  const rng = new SeededRandom(seed);
  const out = new Map<string, TensorData>();
  for (const { name, shape } of qwen2TensorSpecs(config)) {
    const n = numel(shape);
    let data: Float32Array;
    if (name.endsWith('norm.weight')) data = rng.normalArray(n, scales.norm, 1);
    else if (name.endsWith('.bias')) data = rng.normalArray(n, scales.bias);
    else if (name === 'model.embed_tokens.weight') data = rng.normalArray(n, scales.embed);
    else data = rng.normalArray(n, scales.proj / Math.sqrt(shape[1]!));
    out.set(name, { shape: [...shape], data });
  }
  return out;
}

/** Scales under which the tiny model's greedy continuations are varied (checked in the llama.cpp tests). */
export const VARIED_SCALES: RandomQwen2Scales = { embed: 0.3, proj: 2, bias: 0.2, norm: 0.1 };

export interface TinyQwen2Fixture {
  config: Qwen2Config;
  tensors: Map<string, TensorData>;
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfig;
  chatTemplate: string;
  ggufTokenizer: GgufTokenizer;
}

/**
 * A tiny random Qwen2 (hidden 64, 2 layers, 4 heads / 2 KV heads, SwiGLU 128) with a 300-token
 * byte-level BPE tokenizer padded to 320 embedding rows (as Qwen pads its vocabulary), rope_theta 1e6.
 * `configJson` patches the config.json it is parsed from.
 */
export function tinyQwen2Fixture(
  seed: number,
  configJson: Record<string, unknown> = {},
  scales = VARIED_SCALES,
): TinyQwen2Fixture {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  const id = (t: string): number => tokenizerJson.added_tokens.find((a) => a.content === t)!.id;
  const config = parseQwen2Config(
    {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      vocab_size: 320,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      rope_theta: 1e6,
      rms_norm_eps: 1e-6,
      max_position_embeddings: 512,
      tie_word_embeddings: true,
      bos_token_id: id('<|endoftext|>'),
      eos_token_id: id('<|im_end|>'),
      torch_dtype: 'float32',
      ...configJson,
    },
    'tiny config.json',
  );
  const chatTemplate = String(tokenizerConfig.chat_template);
  const ggufTokenizer: GgufTokenizer = {
    ...ggufTokenizerFromTokenizerJson(tokenizerJson, config.vocabSize),
    padTokenId: id('<|endoftext|>'),
    chatTemplate,
  };
  return {
    config,
    tensors: randomQwen2Weights(config, seed, scales),
    tokenizerJson,
    tokenizerConfig,
    chatTemplate,
    ggufTokenizer,
  };
}
