/**
 * The Qwen2 decoder built from tensor ops: embedding → N × (RMSNorm → GQA self-attention with RoPE
 * and q/k/v biases → residual → RMSNorm → SwiGLU MLP → residual) → final RMSNorm → LM head (tied to the
 * embedding when the config says so). Parameters carry Hugging Face names, so checkpoints map 1:1.
 *
 * Any linear projection may carry a LoRA adapter (y += scale·(x·Aᵀ)·Bᵀ); the model applies whatever
 * adapters are attached, the LoRA module decides which.
 */
import * as T from '../tensor/index.js';
import type { LinearCrossEntropyOptions, Rng, RopeTables, Tensor } from '../tensor/index.js';
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

/** What every layer of one forward pass shares. */
interface Step {
  batch: number;
  seqLen: number;
  /** Positions already in the cache. */
  past: number;
  positions: Int32Array;
  keyMask: Uint8Array | null;
  cache: KVCache | undefined;
  rng: Rng | undefined;
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
    const down = T.linear(xin, ad.a),
      up = T.linear(down, ad.b),
      scaled = T.scale(up, ad.scale);
    const out = T.add(y, scaled);
    T.recycle(y, down, up, scaled);
    return out;
  }

  /**
   * Final hidden states (after the last RMSNorm), [batch, seqLen, hidden], for ids [batch·seqLen].
   * Without gradients, every activation is released as soon as it is used, so a decode step reuses the
   * previous step's memory (see Tensor.release).
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
    const step: Step = {
      batch,
      seqLen,
      past,
      positions: opts.positions ?? defaultPositions(batch, seqLen, past),
      keyMask: opts.keyMask ?? null,
      cache: opts.cache,
      rng: opts.rng,
    };
    let h = T.embedding(this.p('model.embed_tokens.weight'), ids, [batch, seqLen]);
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const next = this.layer(l, h, step);
      if (next !== h) T.recycle(h);
      h = next;
    }
    if (opts.cache) opts.cache.length = total;
    const out = T.rmsnorm(h, this.p('model.norm.weight'), c.rmsNormEps);
    T.recycle(h);
    return out;
  }

  /**
   * h + the named projection of x: a residual connection. Without gradients, and with no LoRA adapter to
   * add, the product accumulates onto h's own buffer (linearAccumulate), one dispatch instead of a product
   * and an add, and returns h itself, whose old values are then gone.
   */
  private residual(h: Tensor, x: Tensor, prefix: string, rng?: Rng): Tensor {
    const ad = this.adapters.get(prefix);
    if (!T.isGradEnabled() && (!ad || ad.merged)) {
      return T.linearAccumulate(h, x, this.p(`${prefix}.weight`), this.params.get(`${prefix}.bias`));
    }
    const y = this.project(x, prefix, rng);
    const out = T.add(h, y);
    T.recycle(y);
    return out;
  }

  /**
   * Decoder layer l on hidden states h: attention and MLP blocks, each with its residual connection.
   * Without gradients the result may be h itself, updated in place (see residual).
   */
  private layer(l: number, h: Tensor, s: Step): Tensor {
    const c = this.config,
      pre = `model.layers.${l}`;
    const heads = (t: Tensor, n: number): Tensor => T.reshape(t, [s.batch, s.seqLen, n, c.headDim]);
    const x = T.rmsnorm(h, this.p(`${pre}.input_layernorm.weight`), c.rmsNormEps);
    const qFlat = this.project(x, `${pre}.self_attn.q_proj`, s.rng),
      kFlat = this.project(x, `${pre}.self_attn.k_proj`, s.rng),
      vFlat = this.project(x, `${pre}.self_attn.v_proj`, s.rng);
    const qHeads = heads(qFlat, c.numAttentionHeads),
      kHeads = heads(kFlat, c.numKeyValueHeads),
      v = heads(vFlat, c.numKeyValueHeads);
    const q = T.rope(qHeads, this.rope, s.positions),
      k = T.rope(kHeads, this.rope, s.positions);
    const keys = s.cache ? writeCache(s.cache, s.cache.keys, l, k, s.past) : k;
    const values = s.cache ? writeCache(s.cache, s.cache.values, l, v, s.past) : v;
    const att = T.attention(q, keys, values, { causal: true, keyMask: s.keyMask, keyLen: s.past + s.seqLen });
    T.recycle(x, qFlat, kFlat, vFlat, qHeads, kHeads, v, q, k);
    const attFlat = T.reshape(att, [s.batch, s.seqLen, c.numAttentionHeads * c.headDim]);
    const h1 = this.residual(h, attFlat, `${pre}.self_attn.o_proj`, s.rng);
    T.recycle(att, attFlat);
    const y = T.rmsnorm(h1, this.p(`${pre}.post_attention_layernorm.weight`), c.rmsNormEps);
    const gate = this.project(y, `${pre}.mlp.gate_proj`, s.rng),
      up = this.project(y, `${pre}.mlp.up_proj`, s.rng);
    const gated = T.swiglu(gate, up);
    const out = this.residual(h1, gated, `${pre}.mlp.down_proj`, s.rng);
    T.recycle(y, gate, up, gated);
    if (h1 !== h && h1 !== out) T.recycle(h1);
    return out;
  }

  /** Vocabulary logits for hidden states [..., hidden]. */
  logits(hidden: Tensor): Tensor {
    return T.linear(hidden, this.head());
  }

  /**
   * crossEntropy(logits(hidden), targets), mean or sum, without the logits of every row at once
   * (linearCrossEntropy): what pretraining's loss costs in memory is a chunk's logits, not the batch's.
   */
  lmLoss(hidden: Tensor, targets: Int32Array, opts?: LinearCrossEntropyOptions): Tensor {
    const d = hidden.shape[hidden.ndim - 1];
    return T.linearCrossEntropy(T.reshape(hidden, [hidden.size / d, d]), this.head(), targets, opts);
  }

  /** The output projection [vocab, hidden]: the embedding when they are tied. */
  private head(): Tensor {
    return this.p(this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
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
