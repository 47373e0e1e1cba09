/** Qwen/Qwen2.5-1.5B-Instruct's config.json, as released on the Hugging Face Hub (Search-R3.0-Small keeps it). */
export const QWEN2_5_1_5B_CONFIG = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  hidden_act: 'silu', hidden_size: 1536, initializer_range: 0.02, intermediate_size: 8960,
  max_position_embeddings: 32768, max_window_layers: 21, model_type: 'qwen2', num_attention_heads: 12,
  num_hidden_layers: 28, num_key_value_heads: 2, rms_norm_eps: 1e-06, rope_theta: 1000000.0, sliding_window: 32768,
  tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.43.1', use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};
