/**
 * A tiny Search-R3 model folder (a real tiny byte-level BPE tokenizer with <|embed_token|>, random Qwen2
 * weights, by default at scales whose greedy continuations are varied, stored in F16) and its GGUF exports, as
 * `search-r3 export gguf` writes them (last-token pooling, the folder's fingerprint recorded).
 */
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { GGUF_SOURCE_MODEL_KEY, exportQwen2GgufFromFolder, str, type GgufFileType } from '../../src/model/gguf.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { modelFingerprint } from '../../src/model/model-fingerprint.js';
import { VARIED_SCALES, randomQwen2Weights } from './random-qwen2.js';
import { tinyQwen2Config } from './tiny-qwen2.js';
import { makeTinyTokenizer } from './tiny-tokenizer.js';

export async function ggufModelFolder(dir: string, seed = 1, scales = VARIED_SCALES): Promise<string> {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const config = tinyQwen2Config({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 64,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    intermediateSize: 128,
    maxPositionEmbeddings: 512,
    ropeTheta: 1e6,
  });
  const weights = randomQwen2Weights(config, seed, scales);
  const params = new Map([...weights].map(([name, t]) => [name, new T.Tensor(t.data, t.shape)]));
  await saveModelFolder(dir, { model: new Qwen2Model(config, params), tokenizer }, { dtype: 'F16' });
  return dir;
}

/** Writes `<dir>/model-<type>.gguf` as `search-r3 export gguf --type <type>` does; returns its path. */
export async function exportGguf(dir: string, fileType: GgufFileType): Promise<string> {
  const out = path.join(dir, `model-${fileType.toLowerCase()}.gguf`);
  const extraMetadata = new Map([[GGUF_SOURCE_MODEL_KEY, str(await modelFingerprint(dir))]]);
  await exportQwen2GgufFromFolder(dir, out, { fileType, extraMetadata });
  return out;
}
