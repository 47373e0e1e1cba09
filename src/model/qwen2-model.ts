/**
 * The Qwen2 decoder built from tensor ops: embedding → N × (RMSNorm → GQA self-attention with RoPE
 * and q/k/v biases → residual → RMSNorm → SwiGLU MLP → residual) → final RMSNorm → LM head (tied to the
 * embedding when the config says so). Parameters carry Hugging Face names, so checkpoints map 1:1.
 *
 * Any linear projection may carry a LoRA adapter (y += scale·(x·Aᵀ)·Bᵀ); the model applies whatever
 * adapters are attached, the LoRA module decides which.
 */
import * as T from '../tensor/index.js';
import type { Rng, RopeTables, Tensor } from '../tensor/index.js';
import { type Qwen2Config, qwen2TensorSpecs } from './qwen2-config.js';

/** A low-rank adapter on one linear layer: a [rank, in], b [out, rank]. */
export interface LoraAdapter {
  a: Tensor;
  b: Tensor;
  scale: number;
  dropout: number;
  /** Folded into the base weight (W + scale·B·A): then the forward pass must not add it again. */
  merged: boolean;
}

/**
 * Per-layer keys and values of the positions processed so far, for incremental decoding (no gradients).
 * Each step writes its positions in place; the buffers are allocated once with room for `capacity`
 * positions and doubled only if a step needs more, so decoding n tokens does not copy the cache n times.
 */
export interface KVCache {
  /** Per layer: [batch, allocated positions, kvHeads, headDim], filled up to `length` (null before the first step). */
  keys: (Tensor | null)[];
  values: (Tensor | null)[];
  length: number;
  /** Positions to allocate at the first step (the prompt plus every token to generate). */
  capacity: number;
}

export interface ForwardOptions {
  /** Position of each input token, [batch·seqLen]; defaults to cache.length + t. */
  positions?: Int32Array;
  /** 1 = real token, 0 = padding, for every key position [batch, cache.length + seqLen]. */
  keyMask?: Uint8Array | null;
  /** Appends this step's keys/values and attends over all cached positions. */
  cache?: KVCache;
  /** Dropout randomness for LoRA adapters while training. */
  rng?: Rng;
}

export class Qwen2Model {
  readonly adapters = new Map<string, LoraAdapter>();
  private readonly rope: RopeTables;

  constructor(
    readonly config: Qwen2Config,
    readonly params: Map<string, Tensor>,
  ) {
    for (const { name, shape } of qwen2TensorSpecs(config)) {
      const p = params.get(name);
      if (!p) throw new Error(`Qwen2 weights: '${name}' is missing`);
      if (p.shape.join() !== shape.join()) {
        throw new Error(
          `Qwen2 weights: '${name}' has shape ${T.shapeStr(p.shape)}, the config needs ${T.shapeStr(shape)}`,
        );
      }
      p.name = name;
    }
    this.rope = T.ropeTables(config.headDim, config.maxPositionEmbeddings, config.ropeTheta);
  }

  /** Random weights (normal, std `std`; norms at 1, biases at 0), as a model before pretraining. */
  static random(config: Qwen2Config, rng: Rng, std = 0.02): Qwen2Model {
    const params = new Map<string, Tensor>();
    for (const { name, shape } of qwen2TensorSpecs(config)) {
      const t = name.endsWith('norm.weight')
        ? T.full(shape, 1)
        : name.endsWith('.bias')
          ? T.zeros(shape)
          : T.randn(shape, rng, std);
      t.requiresGrad = true;
      params.set(name, t);
    }
    return new Qwen2Model(config, params);
  }

  /** Parameters in checkpoint order. */
  parameters(): Tensor[] {
    return qwen2TensorSpecs(this.config).map(({ name }) => this.params.get(name)!);
  }

  private p(name: string): Tensor {
    return this.params.get(name)!;
  }

  /** x·Wᵀ + b for the named projection, plus its LoRA adapter's contribution when one is attached. */
  project(x: Tensor, prefix: string, rng?: Rng): Tensor {
    const y = T.linear(x, this.p(`${prefix}.weight`), this.params.get(`${prefix}.bias`));
    const ad = this.adapters.get(prefix);
    if (!ad || ad.merged) return y;
    const xin = rng && ad.dropout > 0 && T.isGradEnabled() ? T.dropout(x, ad.dropout, rng) : x;
    return T.add(y, T.scale(T.linear(T.linear(xin, ad.a), ad.b), ad.scale));
  }

  /**
   * Final hidden states (after the last RMSNorm), [batch, seqLen, hidden], for ids [batch·seqLen].
   */
  forward(ids: Int32Array, batch: number, seqLen: number, opts: ForwardOptions = {}): Tensor {
    const c = this.config;
    if (ids.length !== batch * seqLen)
      throw new Error(`forward: ${ids.length} ids for batch ${batch} × length ${seqLen}`);
    const past = opts.cache?.length ?? 0;
    const total = past + seqLen;
    if (total > c.maxPositionEmbeddings) {
      throw new Error(
        `the input needs ${total} positions but the model's context is ${c.maxPositionEmbeddings} ` +
          `(max_position_embeddings)`,
      );
    }
    if (opts.cache && T.isGradEnabled()) throw new Error('forward: the KV cache is for inference; run it under noGrad');
    const positions = opts.positions ?? defaultPositions(batch, seqLen, past);
    const keyMask = opts.keyMask ?? null;
    let h = T.embedding(this.p('model.embed_tokens.weight'), ids, [batch, seqLen]);
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const pre = `model.layers.${l}`;
      const x = T.rmsnorm(h, this.p(`${pre}.input_layernorm.weight`), c.rmsNormEps);
      const q = T.rope(
        T.reshape(this.project(x, `${pre}.self_attn.q_proj`, opts.rng), [
          batch,
          seqLen,
          c.numAttentionHeads,
          c.headDim,
        ]),
        this.rope,
        positions,
      );
      let k = T.rope(
        T.reshape(this.project(x, `${pre}.self_attn.k_proj`, opts.rng), [batch, seqLen, c.numKeyValueHeads, c.headDim]),
        this.rope,
        positions,
      );
      let v = T.reshape(this.project(x, `${pre}.self_attn.v_proj`, opts.rng), [
        batch,
        seqLen,
        c.numKeyValueHeads,
        c.headDim,
      ]);
      if (opts.cache) {
        k = writeCache(opts.cache, opts.cache.keys, l, k, past);
        v = writeCache(opts.cache, opts.cache.values, l, v, past);
      }
      const att = T.attention(q, k, v, { causal: true, keyMask, keyLen: total });
      h = T.add(
        h,
        this.project(
          T.reshape(att, [batch, seqLen, c.numAttentionHeads * c.headDim]),
          `${pre}.self_attn.o_proj`,
          opts.rng,
        ),
      );
      const y = T.rmsnorm(h, this.p(`${pre}.post_attention_layernorm.weight`), c.rmsNormEps);
      const gated = T.swiglu(
        this.project(y, `${pre}.mlp.gate_proj`, opts.rng),
        this.project(y, `${pre}.mlp.up_proj`, opts.rng),
      );
      h = T.add(h, this.project(gated, `${pre}.mlp.down_proj`, opts.rng));
    }
    if (opts.cache) opts.cache.length = total;
    return T.rmsnorm(h, this.p('model.norm.weight'), c.rmsNormEps);
  }

  /** Vocabulary logits for hidden states [..., hidden]. */
  logits(hidden: Tensor): Tensor {
    return T.linear(hidden, this.p(this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'));
  }

  /** An empty cache; `capacity` positions (prompt + new tokens) are allocated at the first step. */
  newCache(capacity = 0): KVCache {
    const n = this.config.numHiddenLayers;
    return {
      keys: new Array<Tensor | null>(n).fill(null),
      values: new Array<Tensor | null>(n).fill(null),
      length: 0,
      capacity,
    };
  }
}

/**
 * Writes one step's keys or values ([batch, steps, kvHeads, headDim]) at positions past.. of layer l's
 * buffer, allocating (or doubling) it when it has no room; returns the buffer.
 */
function writeCache(cache: KVCache, store: (Tensor | null)[], l: number, step: Tensor, past: number): Tensor {
  const [B, n, G, D] = step.shape;
  const row = G * D,
    need = past + n;
  const K = T.kernels();
  let buf = store[l];
  if (!buf || buf.shape[1] < need) {
    const had = buf?.shape[1] ?? 0;
    const cap = Math.max(need, cache.capacity, 2 * had);
    const grown = K.alloc(B * cap * row);
    if (buf) K.copy(buf.buf, 0, [had * row, 1], grown, 0, [cap * row, 1], [B, past * row], false);
    buf = new T.Tensor(grown, [B, cap, G, D]);
    store[l] = buf;
  }
  const cap = buf.shape[1];
  K.copy(step.buf, 0, [n * row, 1], buf.buf, past * row, [cap * row, 1], [B, n * row], false);
  return buf;
}

function defaultPositions(batch: number, seqLen: number, past: number): Int32Array {
  const pos = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) for (let t = 0; t < seqLen; t++) pos[b * seqLen + t] = past + t;
  return pos;
}
