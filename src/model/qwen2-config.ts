/**
 * config.json of Qwen2 / Qwen2.5 decoder models (Hugging Face `Qwen2ForCausalLM`, model_type `qwen2`).
 *
 * The architecture: token embedding; per layer RMSNorm -> GQA self-attention (q/k/v projections WITH
 * bias, output projection WITHOUT bias, RoPE in the rotate_half convention with base `rope_theta`) ->
 * residual -> RMSNorm -> SwiGLU MLP (gate, up, down; no biases) -> residual; final RMSNorm; LM head,
 * which is the embedding matrix itself when `tie_word_embeddings` is true.
 */
import { readModelJson } from './json-file.js';
import { ModelFileError } from './model-file-error.js';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { isJsonObject } from '../io/json-object.js';

export interface Qwen2Config {
  architectures: string[];
  modelType: 'qwen2';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** hidden_size / num_attention_heads unless config.json says otherwise (`head_dim`). */
  headDim: number;
  hiddenAct: 'silu';
  maxPositionEmbeddings: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  /** A single id in Qwen2.5 configs; a list is kept as a list. */
  eosTokenId: number | number[] | null;
  /** Storage dtype the checkpoint declares ("bfloat16", "float32", ...), or null when absent. */
  torchDtype: string | null;
  /** Every other key of config.json, kept so that writing the config back loses nothing. */
  extra: Record<string, unknown>;
}

const ARCHITECTURE = 'Qwen2ForCausalLM';
const MODEL_TYPE = 'qwen2';

/** Keys this module models; the rest go to `extra`. */
const MODELLED_KEYS = new Set([
  'architectures',
  'model_type',
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'hidden_act',
  'max_position_embeddings',
  'rope_theta',
  'rms_norm_eps',
  'tie_word_embeddings',
  'bos_token_id',
  'eos_token_id',
  'torch_dtype',
  'dtype',
]);

/**
 * Validates a parsed config.json. `file` names the source in error messages.
 * Refuses any architecture other than Qwen2 with one message naming what was found.
 */
export function parseQwen2Config(json: unknown, file: string): Qwen2Config {
  if (!isJsonObject(json)) throw new ModelFileError(file, 'config.json must be a JSON object.');
  const archs = json['architectures'];
  const modelType = json['model_type'];
  if (archs !== undefined && (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string'))) {
    throw new ModelFileError(file, '"architectures" must be a list of strings.');
  }
  const archList = (archs as string[] | undefined) ?? [];
  const foundArch = archList[0];
  // The architecture named first wins; model_type must agree with it when both are given.
  let found: string | null = null;
  if (foundArch !== undefined && foundArch !== ARCHITECTURE) found = JSON.stringify(foundArch);
  else if (modelType !== undefined && modelType !== MODEL_TYPE) found = `model_type ${JSON.stringify(modelType)}`;
  else if (foundArch === undefined && modelType === undefined) found = 'none (no "architectures" or "model_type")';
  if (found !== null) {
    throw new ModelFileError(
      file,
      `architecture ${found} is not supported; search-r3 works with Qwen2/Qwen2.5 models ` +
        `(architectures ["${ARCHITECTURE}"], model_type "${MODEL_TYPE}").`,
    );
  }

  const posInt = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (v === undefined) throw new ModelFileError(file, `"${key}" is missing; a Qwen2 config needs it.`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new ModelFileError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}.`);
    }
    return v;
  };
  const posNum = (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ModelFileError(file, `"${key}" must be a positive number, got ${JSON.stringify(v)}.`);
    }
    return v;
  };
  const tokenId = (key: string): number | null => {
    const v = json[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new ModelFileError(file, `"${key}" must be a token id (integer >= 0) or null, got ${JSON.stringify(v)}.`);
    }
    return v;
  };

  const hiddenSize = posInt('hidden_size');
  const numAttentionHeads = posInt('num_attention_heads');
  // transformers: a missing num_key_value_heads means plain multi-head attention.
  const numKeyValueHeads = posInt('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ModelFileError(
      file,
      `"num_attention_heads" (${numAttentionHeads}) must be a multiple of "num_key_value_heads" (${numKeyValueHeads}).`,
    );
  }
  if (json['head_dim'] === undefined && hiddenSize % numAttentionHeads !== 0) {
    throw new ModelFileError(
      file,
      `"hidden_size" (${hiddenSize}) must be a multiple of "num_attention_heads" (${numAttentionHeads}).`,
    );
  }
  const headDim = posInt('head_dim', hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) throw new ModelFileError(file, `the head dimension (${headDim}) must be even for RoPE.`);

  const hiddenAct = json['hidden_act'] ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new ModelFileError(file, `"hidden_act" is ${JSON.stringify(hiddenAct)}; Qwen2 models use "silu".`);
  }
  const ropeScaling = json['rope_scaling'];
  if (ropeScaling !== undefined && ropeScaling !== null) {
    throw new ModelFileError(
      file,
      `"rope_scaling" ${JSON.stringify(ropeScaling)} is not supported; remove it (plain RoPE is used up to ` +
        `max_position_embeddings).`,
    );
  }
  if (json['use_sliding_window'] === true) {
    throw new ModelFileError(
      file,
      '"use_sliding_window": true is not supported; set it to false (Qwen2.5 releases do).',
    );
  }
  const tie = json['tie_word_embeddings'] ?? false;
  if (typeof tie !== 'boolean')
    throw new ModelFileError(file, `"tie_word_embeddings" must be true or false, got ${JSON.stringify(tie)}.`);

  let eosTokenId: number | number[] | null;
  const eos = json['eos_token_id'];
  if (Array.isArray(eos)) {
    if (!eos.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      throw new ModelFileError(
        file,
        `"eos_token_id" must be a token id or a list of token ids, got ${JSON.stringify(eos)}.`,
      );
    }
    eosTokenId = eos as number[];
  } else {
    eosTokenId = tokenId('eos_token_id');
  }
  // transformers ≥ 4.56 writes "dtype"; older releases "torch_dtype" (written back as that, which both read)
  const dtypeKey = json['torch_dtype'] !== undefined ? 'torch_dtype' : 'dtype';
  const dtype = json[dtypeKey];
  if (dtype !== undefined && dtype !== null && typeof dtype !== 'string') {
    throw new ModelFileError(file, `"${dtypeKey}" must be a string, got ${JSON.stringify(dtype)}.`);
  }
  const ropeTheta = readRopeTheta(json, file);

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!MODELLED_KEYS.has(k)) extra[k] = v;

  return {
    architectures: archList.length > 0 ? archList : [ARCHITECTURE],
    modelType: MODEL_TYPE,
    vocabSize: posInt('vocab_size'),
    hiddenSize,
    intermediateSize: posInt('intermediate_size'),
    numHiddenLayers: posInt('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    hiddenAct: 'silu',
    maxPositionEmbeddings: posInt('max_position_embeddings', 32768),
    ropeTheta,
    rmsNormEps: posNum('rms_norm_eps', 1e-6),
    tieWordEmbeddings: tie,
    bosTokenId: tokenId('bos_token_id'),
    eosTokenId,
    torchDtype: typeof dtype === 'string' ? dtype : null,
    extra,
  };
}

/**
 * RoPE's base: "rope_theta", or transformers 5's "rope_parameters" ({ rope_theta, rope_type }), which also
 * carries what "rope_scaling" used to: any type but plain RoPE is refused, as rope_scaling is.
 */
function readRopeTheta(json: Record<string, unknown>, file: string): number {
  const top = json['rope_theta'];
  if (top !== undefined && (typeof top !== 'number' || !Number.isFinite(top) || top <= 0))
    throw new ModelFileError(file, `"rope_theta" must be a positive number, got ${JSON.stringify(top)}.`);
  const p = json['rope_parameters'];
  if (p === undefined || p === null) return top ?? 10000;
  if (!isJsonObject(p))
    throw new ModelFileError(file, `"rope_parameters" must be an object, got ${JSON.stringify(p)}.`);
  const type = p['rope_type'] ?? p['type'] ?? 'default';
  const unknown = Object.keys(p).filter((k) => !['rope_theta', 'rope_type', 'type'].includes(k));
  if (type !== 'default' || unknown.length > 0)
    throw new ModelFileError(
      file,
      `"rope_parameters" ${JSON.stringify(p)} is not supported; only plain RoPE ("rope_type": "default" with ` +
        `"rope_theta") is.`,
    );
  const theta = p['rope_theta'] ?? top ?? 10000;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0)
    throw new ModelFileError(
      file,
      `"rope_parameters.rope_theta" must be a positive number, got ${JSON.stringify(theta)}.`,
    );
  if (top !== undefined && top !== theta)
    throw new ModelFileError(file, `"rope_theta" ${top} and "rope_parameters.rope_theta" ${theta} disagree; keep one.`);
  return theta;
}

/**
 * The config.json object transformers' `Qwen2Config.from_pretrained` reads: snake_case keys, sorted
 * (as transformers writes them), `extra` keys included.
 */
export function qwen2ConfigToJSON(config: Qwen2Config): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...config.extra,
    architectures: config.architectures,
    model_type: config.modelType,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    hidden_act: config.hiddenAct,
    max_position_embeddings: config.maxPositionEmbeddings,
    rope_theta: config.ropeTheta,
    rms_norm_eps: config.rmsNormEps,
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
  };
  // head_dim is only written when it departs from the default, as transformers' own configs do.
  if (config.headDim !== config.hiddenSize / config.numAttentionHeads) out['head_dim'] = config.headDim;
  if (config.torchDtype !== null) out['torch_dtype'] = config.torchDtype;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k];
  return sorted;
}

/** Reads and validates `file` (a config.json). */
export async function readQwen2Config(file: string): Promise<Qwen2Config> {
  return parseQwen2Config(await readModelJson(file, 'a model folder needs config.json'), file);
}

/** Writes `config` to `file` (temp file + rename), formatted as transformers writes it. */
export async function writeQwen2Config(file: string, config: Qwen2Config): Promise<void> {
  await writeTextFileAtomically(file, JSON.stringify(qwen2ConfigToJSON(config), null, 2) + '\n');
}

/** A weight of the Hugging Face checkpoint: its name and numpy-order shape. */
export interface Qwen2TensorSpec {
  name: string;
  shape: number[];
  /** For each dimension, the config.json fields it comes from, in words (for messages). */
  from: string[];
}

/**
 * Every weight a Qwen2 checkpoint holds, in the Hugging Face naming and [out, in] layout, in forward
 * order. `lm_head.weight` only when the embeddings are not tied.
 */
export function qwen2TensorSpecs(config: Qwen2Config): Qwen2TensorSpec[] {
  const h = config.hiddenSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const f = config.intermediateSize;
  const derived = config.headDim === h / config.numAttentionHeads ? ' (hidden_size / num_attention_heads)' : '';
  const headDim = `head_dim ${config.headDim}${derived}`;
  const H = `"hidden_size" ${h}`,
    V = `"vocab_size" ${config.vocabSize}`,
    F = `"intermediate_size" ${f}`;
  const Q = `"num_attention_heads" ${config.numAttentionHeads} × ${headDim}`;
  const KV = `"num_key_value_heads" ${config.numKeyValueHeads} × ${headDim}`;
  const specs: Qwen2TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [config.vocabSize, h], from: [V, H] }];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    specs.push(
      { name: `${p}.input_layernorm.weight`, shape: [h], from: [H] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [q, h], from: [Q, H] },
      { name: `${p}.self_attn.q_proj.bias`, shape: [q], from: [Q] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, h], from: [KV, H] },
      { name: `${p}.self_attn.k_proj.bias`, shape: [kv], from: [KV] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, h], from: [KV, H] },
      { name: `${p}.self_attn.v_proj.bias`, shape: [kv], from: [KV] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, q], from: [H, Q] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h], from: [H] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [f, h], from: [F, H] },
      { name: `${p}.mlp.up_proj.weight`, shape: [f, h], from: [F, H] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, f], from: [H, F] },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [h], from: [H] });
  if (!config.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [config.vocabSize, h], from: [V, H] });
  return specs;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Why a stored tensor named like a layer beyond the config's does not fit config.json, naming the
 * field; null when the name is no such layer.
 */
export function extraLayerMismatch(config: Qwen2Config, name: string): string | null {
  const layer = /^model\.layers\.(\d+)\./.exec(name);
  if (!layer || Number(layer[1]) < config.numHiddenLayers) return null;
  return `"num_hidden_layers" is ${config.numHiddenLayers}, but the weights hold layer ${layer[1]} (tensor "${name}")`;
}

/** Why a stored tensor's shape does not fit its spec, naming the config field and the tensor; null when it fits. */
export function shapeMismatch(spec: Qwen2TensorSpec, shape: readonly number[]): string | null {
  if (shape.length !== spec.shape.length) {
    return `tensor "${spec.name}" has shape ${shapeText(shape)}, but config.json implies ${shapeText(spec.shape)}`;
  }
  const d = spec.shape.findIndex((n, i) => n !== shape[i]);
  if (d < 0) return null;
  return (
    `${spec.from[d]} makes dimension ${d} of tensor "${spec.name}" ${spec.shape[d]}, ` +
    `but the weights have ${shape[d]} (shape ${shapeText(shape)})`
  );
}

/**
 * Tensors a checkpoint may hold beyond the model's, which readers skip as transformers does: an lm_head
 * saved beside tied embeddings, and RoPE's inverse frequencies (recomputed from rope_theta).
 */
export function isSkippedTensor(config: Qwen2Config, name: string): boolean {
  return (name === 'lm_head.weight' && config.tieWordEmbeddings) || name.endsWith('.rotary_emb.inv_freq');
}

/** Why weights that lack some of the config's tensors do not fit it, in words; null when none is missing. */
export function missingTensorsMismatch(config: Qwen2Config, present: ReadonlySet<string>): string | null {
  const missing = qwen2TensorSpecs(config)
    .filter((s) => !present.has(s.name))
    .map((s) => s.name);
  if (missing.length === 0) return null;
  const first = missing[0]!;
  const what = missing.length > 1 ? `"${first}" and ${missing.length - 1} more are missing` : `"${first}" is missing`;
  const layer = /^model\.layers\.(\d+)\./.exec(first);
  if (layer && ![...present].some((n) => n.startsWith(`model.layers.${layer[1]}.`))) {
    return `"num_hidden_layers" is ${config.numHiddenLayers}, but the weights have no layer ${layer[1]} (${what})`;
  }
  if (first === 'lm_head.weight') return '"tie_word_embeddings" is false, but the weights have no "lm_head.weight"';
  return `tensor ${what}`;
}

/** The one-sentence error for a config.json that disagrees with the weights beside it. */
export function configMismatchError(configFile: string, why: string, weights: string): ModelFileError {
  return new ModelFileError(configFile, `${why}; config.json does not match the weights in ${weights}.`);
}

/** The sizes of a decoder that decide its parameter count. */
export type Qwen2Shape = Pick<
  Qwen2Config,
  'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads'
>;

/**
 * Parameters of a Qwen2 decoder (q/k/v biases, RMSNorm weights), as train lm counts them: with tied embeddings
 * unless `tied` is false, when the LM head is a matrix of its own.
 */
export function qwen2Parameters(m: Qwen2Shape, vocabSize: number, tied = true): number {
  const d = m.hiddenSize,
    kv = (d / m.numAttentionHeads) * m.numKeyValueHeads;
  const layer = d * d + d + 2 * (d * kv + kv) + d * d + 3 * d * m.intermediateSize + 2 * d;
  return (tied ? 1 : 2) * vocabSize * d + m.numHiddenLayers * layer + d;
}
