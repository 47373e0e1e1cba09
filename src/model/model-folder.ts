/**
 * A Hugging Face model folder as one unit: config.json + tokenizer files + safetensors weights in,
 * a Qwen2Model and its Tokenizer out, and back. Weights stream tensor by tensor straight into the
 * model's parameters, so a checkpoint is never held twice in memory.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import * as T from '../tensor/index.js';
import { ModelFileError } from './model-file-error.js';
import {
  type Qwen2Config,
  configMismatchError,
  extraLayerMismatch,
  missingTensorsMismatch,
  qwen2TensorSpecs,
  readQwen2Config,
  shapeMismatch,
  writeQwen2Config,
} from './qwen2-config.js';
import { Qwen2Model } from './qwen2-model.js';
import { type SafetensorsDtype, readSafetensorsFolder, saveSafetensorsFolder } from './safetensors.js';
import type { TensorData } from './tensor-data.js';
import { Tokenizer } from './tokenizer.js';

export interface LoadedModel {
  dir: string;
  config: Qwen2Config;
  model: Qwen2Model;
  tokenizer: Tokenizer;
}

export interface LoadOptions {
  /** Parameters require gradients (for training); default false. */
  trainable?: boolean;
}

/** Loads a Qwen2/Qwen2.5 model folder; every problem is a ModelFileError naming the file. */
export async function loadModelFolder(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!existsSync(dir)) throw new ModelFileError(dir, 'no such folder; give the path of a Hugging Face model folder.');
  const configFile = path.join(dir, 'config.json');
  if (!existsSync(configFile)) throw new ModelFileError(configFile, 'is missing; a model folder needs config.json.');
  const config = await readQwen2Config(configFile);
  const tokenizer = await Tokenizer.fromFolder(dir);
  const specs = new Map(qwen2TensorSpecs(config).map((s) => [s.name, s]));
  const unfit = (why: string, weights: string): ModelFileError => configMismatchError(configFile, why, weights);
  const params = new Map<string, T.Tensor>();
  for await (const t of readSafetensorsFolder(dir)) {
    const spec = specs.get(t.name);
    if (!spec) {
      // Tied checkpoints sometimes also store lm_head.weight; anything else unknown is an error.
      if (t.name === 'lm_head.weight' && config.tieWordEmbeddings) continue;
      const extra = extraLayerMismatch(config, t.name);
      if (extra) throw unfit(extra, t.file);
      throw new ModelFileError(t.file, `weight "${t.name}" is not part of a Qwen2 model with this config.json.`);
    }
    const mismatch = shapeMismatch(spec, t.shape);
    if (mismatch) throw unfit(mismatch, t.file);
    // a flipped exponent bit makes NaN or Inf, which would only surface as a failing op much later
    if (!t.data.every(Number.isFinite)) {
      const why = 'the file is damaged, or was saved from a diverged run';
      throw new ModelFileError(t.file, `weight "${t.name}" holds NaN or Inf values: ${why}.`);
    }
    params.set(t.name, new T.Tensor(t.data, t.shape, opts.trainable ?? false, t.name));
  }
  const missing = missingTensorsMismatch(config, new Set(params.keys()));
  if (missing) throw unfit(missing, dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFileError(
      path.join(dir, 'tokenizer.json'),
      `has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocabSize}.`,
    );
  }
  return { dir, config, model: new Qwen2Model(config, params), tokenizer };
}

export interface SaveOptions {
  /** Storage dtype of the weights (norms included); default F32. */
  dtype?: SafetensorsDtype;
}

/** Writes config.json, tokenizer files and safetensors weights that transformers can load. */
export async function saveModelFolder(
  dir: string,
  m: { model: Qwen2Model; tokenizer: Tokenizer },
  opts: SaveOptions = {},
): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const config = { ...m.model.config, torchDtype: dtypeName(opts.dtype ?? 'F32') };
  await writeQwen2Config(path.join(dir, 'config.json'), config);
  await m.tokenizer.save(dir);
  const tensors = m.model
    .parameters()
    .map((p): [string, TensorData] => [p.name!, { shape: [...p.shape], data: p.data }]);
  await saveSafetensorsFolder(dir, tensors, { dtype: opts.dtype ?? 'F32' });
}

function dtypeName(d: SafetensorsDtype): string {
  return d === 'F32' ? 'float32' : d === 'F16' ? 'float16' : 'bfloat16';
}

/**
 * Adds special tokens (e.g. <|embed_token|>) to the tokenizer and grows the embedding (and an untied
 * LM head) when a new id lies beyond the model's vocabulary. New rows start at the mean embedding, so
 * the new token begins as an "average" token rather than noise. Returns the token ids.
 */
export function addSpecialTokens(
  m: { model: Qwen2Model; tokenizer: Tokenizer },
  tokens: string[],
): { model: Qwen2Model; ids: number[] } {
  const { ids } = m.tokenizer.addSpecialTokens(tokens);
  const c = m.model.config;
  const need = m.tokenizer.vocabSize;
  if (need <= c.vocabSize) return { model: m.model, ids };
  const grown = new Map(m.model.params);
  const grow = (name: string): void => {
    const old = m.model.params.get(name)!;
    const d = c.hiddenSize;
    const data = new Float32Array(need * d);
    data.set(old.data);
    const mean = new Float64Array(d);
    for (let r = 0; r < c.vocabSize; r++) for (let i = 0; i < d; i++) mean[i] += old.data[r * d + i] / c.vocabSize;
    for (let r = c.vocabSize; r < need; r++) for (let i = 0; i < d; i++) data[r * d + i] = mean[i];
    grown.set(name, new T.Tensor(data, [need, d], old.requiresGrad, name));
  };
  grow('model.embed_tokens.weight');
  if (!c.tieWordEmbeddings) grow('lm_head.weight');
  return { model: new Qwen2Model({ ...c, vocabSize: need }, grown), ids };
}
