/**
 * A Hugging Face model folder as one unit: config.json + tokenizer files + safetensors weights in,
 * a Qwen2Model and its Tokenizer out, and back. Weights stream tensor by tensor straight into the
 * model's parameters, so a checkpoint is never held twice in memory. Frozen weight matrices stored
 * in f16 or bf16 stay in 16 bits (half the memory of float32; the kernels widen them as they read);
 * trainable weights, norms and biases are float32. A folder whose weights would not fit in the
 * machine's memory is refused before any weight is read. A LoRA adapter folder (PEFT layout) loads as its base
 * with the adapter merged, so that every command takes a LoRA run's final/ where it takes a model folder.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import * as T from '../tensor/index.js';
import { loadLoraAdapter, mergeLora } from './lora.js';
import { modelFolderExists, modelFolderHolds } from './json-file.js';
import { ModelFileError } from './model-file-error.js';
import { adapterBase } from './model-fingerprint.js';
import { PEFT_CONFIG_FILE, isAdapterFolder } from './peft-config.js';
import {
  type Qwen2Config,
  configMismatchError,
  extraLayerMismatch,
  isSkippedTensor,
  missingTensorsMismatch,
  qwen2TensorSpecs,
  readQwen2Config,
  shapeMismatch,
  writeQwen2Config,
} from './qwen2-config.js';
import { Qwen2Model } from './qwen2-model.js';
import { checkFitsInMemory } from './memory.js';
import {
  type KeepHalf,
  type SafetensorsDtype,
  checkFiniteWeight,
  readSafetensorsFolderEntries,
  readSafetensorsFolderWeights,
  saveSafetensorsFolder,
} from './safetensors.js';
import type { TensorView } from './tensor-data.js';
import { TOKENIZER_JSON } from './tokenizer-json.js';
import { Tokenizer } from './tokenizer.js';
import { makeFolder } from '../io/make-folder.js';

export interface LoadedModel {
  dir: string;
  config: Qwen2Config;
  model: Qwen2Model;
  tokenizer: Tokenizer;
  /** When `dir` is a LoRA adapter folder: the base model folder the adapter was merged onto. */
  base?: string;
}

export interface LoadOptions {
  /** Parameters require gradients (for training); default false. */
  trainable?: boolean;
  /**
   * How frozen weight matrices are held: 'file' (default) keeps f16/bf16 ones in 16 bits, 'f32' widens
   * every weight. Trainable weights (and all norms and biases) are float32 either way.
   */
  precision?: 'file' | 'f32';
  /** Bytes the weights may take; default the memory available on this machine now. */
  memoryLimit?: number;
  /** Called with the tokenizer before any weight is read, to refuse a folder early (by throwing). */
  checkTokenizer?: (tokenizer: Tokenizer) => void;
  /** For a LoRA adapter folder: its base model folder, instead of the one its adapter_config.json names. */
  base?: string;
}

/** Whether `dir` holds a model that loadModelFolder loads: a model folder, or a LoRA adapter folder. */
export function isModelFolder(dir: string): boolean {
  return modelFolderHolds(dir, 'config.json') || modelFolderHolds(dir, PEFT_CONFIG_FILE);
}

const DTYPE_BYTES = { F32: 4, F16: 2, BF16: 2 } as const;

/** Refuses a folder whose weights, held as `keep` says, need more memory than there is. */
async function checkWeightsFit(
  dir: string,
  config: Qwen2Config,
  keep: KeepHalf,
  limit: number | undefined,
): Promise<void> {
  const specs = new Set(qwen2TensorSpecs(config).map((s) => s.name));
  let bytes = 0;
  for (const e of await readSafetensorsFolderEntries(dir)) {
    if (!specs.has(e.name)) continue; // a tied lm_head is skipped; anything else unknown fails the load
    const n = e.shape.reduce((a, b) => a * b, 1);
    bytes += n * (e.dtype !== 'F32' && keep(e.name, e.shape) ? DTYPE_BYTES[e.dtype] : 4);
  }
  checkFitsInMemory(dir, 'its weights as loaded', bytes, limit);
}

/** Why a file given as a model folder is not one, and what to give instead. */
function notAFolder(file: string): string {
  const gguf = file.endsWith('.gguf') ? ' (a GGUF runs with --engine llama.cpp --gguf, beside its model folder)' : '';
  const folder = 'the folder that holds config.json and the weights, or a LoRA adapter folder';
  return `is a file, not a model folder; give ${folder}${gguf}.`;
}

/** Loads a Qwen2/Qwen2.5 model folder; every problem is a ModelFileError naming the file. */
export async function loadModelFolder(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!modelFolderExists(dir))
    throw new ModelFileError(dir, 'no such folder; give the path of a Hugging Face model folder.');
  if (!statSync(dir).isDirectory()) throw new ModelFileError(dir, notAFolder(dir));
  if (isAdapterFolder(dir)) return loadAdapterFolder(dir, opts);
  const configFile = path.join(dir, 'config.json');
  if (!existsSync(configFile)) throw new ModelFileError(configFile, 'is missing; a model folder needs config.json.');
  const config = await readQwen2Config(configFile);
  const tokenizer = await Tokenizer.fromFolder(dir);
  opts.checkTokenizer?.(tokenizer);
  const specs = new Map(qwen2TensorSpecs(config).map((s) => [s.name, s]));
  const unfit = (why: string, weights: string): ModelFileError => configMismatchError(configFile, why, weights);
  const trainable = opts.trainable ?? false;
  const keep: KeepHalf = (_name, shape) => !trainable && (opts.precision ?? 'file') === 'file' && shape.length === 2;
  await checkWeightsFit(dir, config, keep, opts.memoryLimit);
  const params = new Map<string, T.Tensor>();
  for await (const t of readSafetensorsFolderWeights(dir, keep)) {
    const spec = specs.get(t.name);
    if (!spec) {
      if (isSkippedTensor(config, t.name)) continue;
      const extra = extraLayerMismatch(config, t.name);
      if (extra) throw unfit(extra, t.file);
      throw new ModelFileError(t.file, `weight "${t.name}" is not part of a Qwen2 model with this config.json.`);
    }
    const mismatch = shapeMismatch(spec, t.shape);
    if (mismatch) throw unfit(mismatch, t.file);
    checkFiniteWeight(t);
    params.set(t.name, new T.Tensor(t.data, t.shape, trainable, t.name));
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

/**
 * A LoRA adapter folder as the model it stands for: its base loaded as `opts` say (a base that is itself an
 * adapter folder included), the embedding grown to the adapter's tokenizer as fine-tuning grew it, and every
 * adapter merged, W + (alpha/r)·B·A. A weight the base holds in 16 bits is merged in float32 and rounded back to
 * them, so the model is the one that the merged folder written in the base's dtype (export merged) loads as.
 */
async function loadAdapterFolder(dir: string, opts: LoadOptions): Promise<LoadedModel> {
  const { base: given, ...baseOpts } = opts;
  const base = await adapterBase(dir, given);
  // the tokenizer fine-tuning saved beside the adapter; an adapter trained elsewhere may leave it to its base
  const own = existsSync(path.join(dir, TOKENIZER_JSON)) ? await Tokenizer.fromFolder(dir) : null;
  if (own) opts.checkTokenizer?.(own);
  const loaded = await loadModelFolder(base.dir, own ? { ...baseOpts, checkTokenizer: undefined } : baseOpts);
  const tokenizer = own ?? loaded.tokenizer;
  const model = withVocabulary(loaded.model, tokenizer.vocabSize);
  await loadLoraAdapter(dir, model);
  const rounded = new Map<string, T.HalfDtype>();
  for (const mod of model.adapters.keys()) {
    const name = `${mod}.weight`;
    const w = model.params.get(name)!;
    if (w.dtype === 'f32') continue;
    rounded.set(name, w.dtype);
    model.params.set(name, w.float32());
  }
  mergeLora(model);
  for (const [name, dtype] of rounded) {
    const wide = model.params.get(name)!;
    model.params.set(name, new T.Tensor(T.HalfArray.from(wide.read(), dtype), wide.shape, false, name));
    wide.release();
  }
  for (const ad of model.adapters.values()) {
    ad.a.release();
    ad.b.release();
  }
  model.adapters.clear();
  // loading the adapter froze every weight
  for (const p of model.parameters()) p.requiresGrad = opts.trainable ?? false;
  return { dir, config: model.config, model, tokenizer, base: base.dir };
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
  await makeFolder(dir);
  const config = { ...m.model.config, torchDtype: dtypeName(opts.dtype ?? 'F32') };
  await writeQwen2Config(path.join(dir, 'config.json'), config);
  await m.tokenizer.save(dir);
  const tensors = m.model
    .parameters()
    .map((p): [string, TensorView] => [p.name!, { shape: p.shape, data: p.readValues() }]);
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
  return { model: withVocabulary(m.model, m.tokenizer.vocabSize), ids };
}

/** `model` with room for `need` token ids: the embedding (and an untied LM head) grown with mean rows. */
function withVocabulary(model: Qwen2Model, need: number): Qwen2Model {
  const c = model.config;
  if (need <= c.vocabSize) return model;
  const grown = new Map(model.params);
  const grow = (name: string): void => {
    const old = model.params.get(name)!;
    grown.set(name, new T.Tensor(withMeanRows(old, need), [need, c.hiddenSize], old.requiresGrad, name));
  };
  grow('model.embed_tokens.weight');
  if (!c.tieWordEmbeddings) grow('lm_head.weight');
  return new Qwen2Model({ ...c, vocabSize: need }, grown);
}

/** A [vocab, d] table grown to `rows` rows, each new row the mean of the old ones, in the table's precision. */
function withMeanRows(old: T.Tensor, rows: number): Float32Array | T.HalfArray {
  const [vocab, d] = old.shape;
  const mean = new Float64Array(d);
  const row = new Float32Array(d);
  const values = old.readValues();
  for (let r = 0; r < vocab; r++) {
    if (values instanceof Float32Array) row.set(values.subarray(r * d, (r + 1) * d));
    else T.widenHalf(values.subarray(r * d, (r + 1) * d), row);
    for (let i = 0; i < d; i++) mean[i] += row[i] / vocab;
  }
  const meanRow = Float32Array.from(mean);
  if (values instanceof Float32Array) {
    const data = new Float32Array(rows * d);
    data.set(values);
    for (let r = vocab; r < rows; r++) data.set(meanRow, r * d);
    return data;
  }
  const bits = new Uint16Array(rows * d);
  bits.set(values.bits);
  const narrow = T.HalfArray.from(meanRow, values.dtype).bits;
  for (let r = vocab; r < rows; r++) bits.set(narrow, r * d);
  return new T.HalfArray(values.dtype, bits);
}
