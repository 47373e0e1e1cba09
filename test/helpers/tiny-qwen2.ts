import type { Qwen2Config } from '../../src/model/qwen2-config.js';

/** A small Qwen2 config for tests and benchmarks; any field may be overridden. */
export function tinyQwen2Config(o: Partial<Qwen2Config> = {}): Qwen2Config {
  const hiddenSize = o.hiddenSize ?? 32,
    numAttentionHeads = o.numAttentionHeads ?? 4;
  return {
    architectures: ['Qwen2ForCausalLM'],
    modelType: 'qwen2',
    vocabSize: 64,
    hiddenSize,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads,
    numKeyValueHeads: 2,
    headDim: hiddenSize / numAttentionHeads,
    hiddenAct: 'silu',
    maxPositionEmbeddings: 128,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    bosTokenId: null,
    eosTokenId: null,
    torchDtype: 'float32',
    extra: {},
    ...o,
  };
}

/** The snake_case fields the Python reference model reads. */
export function pythonConfig(c: Qwen2Config): Record<string, unknown> {
  return {
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    num_hidden_layers: c.numHiddenLayers,
    max_position_embeddings: c.maxPositionEmbeddings,
    rope_theta: c.ropeTheta,
    rms_norm_eps: c.rmsNormEps,
    tie_word_embeddings: c.tieWordEmbeddings,
  };
}
