import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { makeTinyTokenizer } from './tiny-tokenizer.js';
import type { Qwen2Config } from '../../src/model/qwen2-config.js';
import { tinyQwen2Config } from './tiny-qwen2.js';

/** A tiny random Qwen2 model with a real (tiny) byte-level BPE tokenizer that knows <|embed_token|>. */
export function tinyModel(
  seed = 1,
  o: Partial<Qwen2Config> = {},
  vocabSize = 300,
): { model: Qwen2Model; tokenizer: Tokenizer } {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize });
  const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const config = tinyQwen2Config({ vocabSize: tokenizer.vocabSize, maxPositionEmbeddings: 256, ...o });
  return { model: Qwen2Model.random(config, new T.Rng(seed), 0.1), tokenizer };
}
