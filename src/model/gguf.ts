/**
 * GGUF export for llama.cpp: Qwen2 models and LoRA adapters.
 *
 * Layout (GGUF v3, little-endian): magic "GGUF", version, tensor count, metadata count; metadata
 * key/values; tensor infos (name, dims, ggml type, offset into the data section); padding to the
 * alignment (32); tensor data, each tensor starting aligned. Dims are the numpy shape reversed
 * (ne[0] is the contiguous dimension). Names, keys and the treatment of each tensor follow llama.cpp's
 * converters (convert_hf_to_gguf.py / convert_lora_to_gguf.py): Qwen2 needs no q/k permutation; a
 * missing `output.weight` means tied embeddings; norms and biases stay F32 whatever the file type.
 */
import { existsSync, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomically } from '../io/atomic-file.js';
import { makeFolder, removeFoldersMadeSync } from '../io/make-folder.js';
import { HalfArray, f16BitsFromFloat32Bits, encodeF16, widenHalf } from '../tensor/index.js';
import { ModelFileError } from './model-file-error.js';
import { QWEN2_PRETOKENIZER_PATTERN } from './byte-level-bpe.js';
import { readPeftLoraConfig } from './peft-config.js';
import { ChatTemplate, chatTemplateSource } from './chat-template.js';
import {
  checkTokenizerConfig,
  checkTokenizerJson,
  mergePairs,
  readTokenizerFolder,
  specialTokenContent,
  TOKENIZER_CONFIG_JSON,
  TOKENIZER_JSON,
  type TokenizerConfig,
  type TokenizerFolder,
  type TokenizerJson,
} from './tokenizer-json.js';
import {
  configMismatchError,
  extraLayerMismatch,
  isSkippedTensor,
  missingTensorsMismatch,
  qwen2TensorSpecs,
  readQwen2Config,
  shapeMismatch,
  type Qwen2Config,
} from './qwen2-config.js';
import {
  INDEX_FILE_NAME,
  SINGLE_FILE_NAME,
  checkFiniteWeight,
  loadSafetensors,
  readSafetensorsFolderWeights,
} from './safetensors.js';
import { numel, type TensorData, type TensorView } from './tensor-data.js';
import { isJsonObject } from '../io/json-object.js';

// ---------------------------------------------------------------------------------------------
// Generic GGUF writing

export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml tensor types we write, with their ggml enum values. */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlType = keyof typeof GGML_TYPE;

/** Q8_0: blocks of 32 values along ne[0], each an f16 scale and 32 int8 (34 bytes). */
export const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** GGUF metadata value types (gguf_type). */
const VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof VALUE_TYPE, 'array'>;

export type GgufValue =
  | { type: Exclude<GgufScalarType, 'bool' | 'string'>; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: Exclude<GgufScalarType, 'bool' | 'string'>; value: readonly number[] }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'bool'; value: readonly boolean[] };

/** Metadata in the order it is written. */
export type GgufMetadata = Map<string, GgufValue>;

export interface GgufTensor {
  name: string;
  /** numpy-order shape; written reversed. */
  shape: readonly number[];
  type: GgmlType;
  /** float32 values, or the 16-bit patterns of a weight held in f16/bf16 (converted to `type` as written). */
  data: Float32Array | HalfArray;
  /**
   * The error for values beyond what `type` stores, given the tensor's largest magnitude (by default one
   * that names the GGUF tensor): the writer refuses them rather than write Inf.
   */
  outOfRange?: (top: number) => Error;
}

export const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
export const f32 = (value: number): GgufValue => ({ type: 'float32', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });

/** Appends little-endian values to a growing buffer. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly utf8 = new TextEncoder();

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(v), true);
    this.length += 8;
  }
  string(s: string): void {
    const bytes = this.utf8.encode(s);
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function checkScalar(key: string, type: string, v: number): void {
  const ranges: Record<string, [number, number]> = {
    uint8: [0, 0xff],
    int8: [-0x80, 0x7f],
    uint16: [0, 0xffff],
    int16: [-0x8000, 0x7fff],
    uint32: [0, 0xffffffff],
    int32: [-0x80000000, 0x7fffffff],
    uint64: [0, Number.MAX_SAFE_INTEGER],
    int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  };
  const r = ranges[type];
  if (r && (!Number.isInteger(v) || v < r[0] || v > r[1]))
    throw new Error(`GGUF: metadata "${key}" = ${v} is not a valid ${type}.`);
}

function writeScalar(w: ByteWriter, key: string, type: GgufScalarType, v: number | string | boolean): void {
  if (typeof v === 'number') checkScalar(key, type, v);
  switch (type) {
    case 'uint8':
      w.u8(v as number);
      break;
    case 'int8':
      w.i8(v as number);
      break;
    case 'uint16':
      w.u16(v as number);
      break;
    case 'int16':
      w.i16(v as number);
      break;
    case 'uint32':
      w.u32(v as number);
      break;
    case 'int32':
      w.i32(v as number);
      break;
    case 'float32':
      w.f32(v as number);
      break;
    case 'float64':
      w.f64(v as number);
      break;
    case 'uint64':
      w.u64(v as number);
      break;
    case 'int64':
      w.i64(v as number);
      break;
    case 'bool':
      w.u8(v ? 1 : 0);
      break;
    case 'string':
      w.string(v as string);
      break;
  }
}

/** Bytes a tensor takes in the data section (before alignment padding). */
export function ggmlTensorBytes(type: GgmlType, shape: readonly number[]): number {
  const n = numel(shape);
  if (type === 'F32') return 4 * n;
  if (type === 'F16') return 2 * n;
  return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
}

function checkTensor(t: GgufTensor): void {
  if (numel(t.shape) !== t.data.length) {
    throw new Error(`GGUF: tensor "${t.name}" has shape ${JSON.stringify(t.shape)} but ${t.data.length} values.`);
  }
  if (t.type === 'Q8_0' && (t.shape.length === 0 || t.shape[t.shape.length - 1]! % Q8_0_BLOCK !== 0)) {
    throw new Error(`GGUF: tensor "${t.name}" cannot be Q8_0: its row length must be a multiple of ${Q8_0_BLOCK}.`);
  }
  if (t.shape.length > 4) throw new Error(`GGUF: tensor "${t.name}" has ${t.shape.length} dims; ggml allows 4.`);
}

/** GGUF header (everything before the data section), already padded to the alignment. */
export function buildGgufHeader(
  metadata: GgufMetadata,
  tensors: readonly GgufTensor[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): Uint8Array {
  const w = new ByteWriter();
  w.u32(0x46554747); // "GGUF" read as a little-endian u32
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  const meta = new Map(metadata);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) meta.set('general.alignment', u32(alignment));
  w.u64(meta.size);
  for (const [key, v] of meta) {
    w.string(key);
    w.u32(VALUE_TYPE[v.type]);
    if (v.type === 'array') {
      w.u32(VALUE_TYPE[v.itemType]);
      w.u64(v.value.length);
      for (const item of v.value) writeScalar(w, key, v.itemType, item);
    } else {
      writeScalar(w, key, v.type, v.value);
    }
  }
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    checkTensor(t);
    if (names.has(t.name)) throw new Error(`GGUF: tensor "${t.name}" is given twice.`);
    names.add(t.name);
    w.string(t.name);
    w.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) w.u64(t.shape[i]!);
    w.u32(GGML_TYPE[t.type]);
    w.u64(offset);
    offset += ggmlTensorBytes(t.type, t.shape);
    offset += (alignment - (offset % alignment)) % alignment;
  }
  w.padTo(alignment);
  return w.bytes();
}

const roundHalfAway = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x));

/**
 * Q8_0 blocks of `src` (length a multiple of 32): scale d = max|x| / 127 stored as f16, q = round(x / d)
 * with ties away from zero, as ggml's quantize_row_q8_0_ref (in float32 arithmetic).
 */
export function quantizeQ8_0(src: Float32Array): Uint8Array {
  return quantizeQ8_0Measuring(src).bytes;
}

/** quantizeQ8_0, with the largest magnitude among `src`'s values: the largest block maximum, found anyway. */
function quantizeQ8_0Measuring(src: Float32Array): { bytes: Uint8Array; top: number } {
  const blocks = src.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  let top = 0;
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let i = 0; i < Q8_0_BLOCK; i++) amax = Math.max(amax, Math.abs(src[base + i]!));
    top = Math.max(top, amax);
    const d = Math.fround(amax / 127);
    const id = d === 0 ? 0 : Math.fround(1 / d);
    asFloat[0] = d;
    const o = b * Q8_0_BLOCK_BYTES;
    view.setUint16(o, f16BitsFromFloat32Bits(bits[0]!), true);
    for (let i = 0; i < Q8_0_BLOCK; i++) view.setInt8(o + 2 + i, roundHalfAway(Math.fround(src[base + i]! * id)));
  }
  return { bytes: out, top };
}

/** The largest finite f16. */
const F16_MAX = 65504;

/** The largest magnitude each type stores: a Q8_0 block's scale, its largest value / 127, is an f16 too. */
const TYPE_RANGE: Record<GgmlType, number> = { F32: Infinity, F16: F16_MAX, Q8_0: F16_MAX * 127 };

/** The largest magnitude among `d`'s values (for a message: the writer measures as it converts). */
function maxAbs(d: Float32Array | HalfArray): number {
  let top = 0;
  if (d instanceof Float32Array) {
    for (let i = 0; i < d.length; i++) top = Math.max(top, Math.abs(d[i]!));
    return top;
  }
  const piece = new Float32Array(Math.min(d.length, ENCODE_PIECE));
  for (let i = 0; i < d.length; i += piece.length) {
    const values = piece.subarray(0, Math.min(piece.length, d.length - i));
    widenHalf(d.subarray(i, i + values.length), values);
    for (let j = 0; j < values.length; j++) top = Math.max(top, Math.abs(values[j]!));
  }
  return top;
}

/** Elements converted per piece when a tensor is written (a multiple of the Q8_0 block). */
const ENCODE_PIECE = 1 << 22;

const bytesOf = (a: Float32Array | Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Float32 values as `type` stores them, with their largest magnitude (0 for F32, which holds any). */
function encodePiece(values: Float32Array, type: GgmlType): { bytes: Uint8Array; top: number } {
  if (type === 'F32') return { bytes: bytesOf(values), top: 0 };
  if (type === 'Q8_0') return quantizeQ8_0Measuring(values);
  const h = new Uint16Array(values.length);
  const top = encodeF16(values, h);
  return { bytes: bytesOf(h), top };
}

/**
 * A tensor's bytes in the data section, a piece at a time, so a large one is never held twice converted.
 * A value beyond what its type stores is refused as it is converted, which measures it anyway, rather than
 * in a pass of its own; f16 weights written as F16 fit by definition and are not converted.
 */
function* encodeTensor(t: GgufTensor): Generator<Uint8Array> {
  const d = t.data;
  const asStored = d instanceof HalfArray ? t.type === 'F16' && d.dtype === 'f16' : t.type === 'F32';
  if (asStored) {
    yield bytesOf(d instanceof HalfArray ? d.bits : d);
    return;
  }
  for (let i = 0; i < d.length; i += ENCODE_PIECE) {
    const end = Math.min(d.length, i + ENCODE_PIECE);
    let values: Float32Array;
    if (d instanceof HalfArray) {
      values = new Float32Array(end - i);
      widenHalf(d.subarray(i, end), values);
    } else {
      values = d.subarray(i, end);
    }
    const { bytes, top } = encodePiece(values, t.type);
    if (top > TYPE_RANGE[t.type]) throw outOfRangeError(t);
    yield bytes;
  }
}

/** A weight of `file` (`what`: 'weight "..."') too large for `type`, refused in the user's terms. */
function rangeRefusal(file: string, what: string, type: GgmlType): (top: number) => Error {
  return (top) =>
    new ModelFileError(
      file,
      `${what} holds values up to ${top} in magnitude, beyond what ${type} stores (the GGUF would hold Inf ` +
        'there); export with --type f32.',
    );
}

/** The refusal of a tensor holding values beyond what its type stores, naming the largest. */
function outOfRangeError(t: GgufTensor): Error {
  const top = maxAbs(t.data);
  if (t.outOfRange) return t.outOfRange(top);
  const why = `holds values up to ${top} in magnitude, beyond what ${t.type} stores`;
  return new Error(`GGUF export: tensor "${t.name}" ${why}.`);
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.length - done, 1 << 30));
    done += bytesWritten;
  }
}

/**
 * Writes a GGUF file (temp file + rename), making its folder when missing; tensors are encoded one at a time.
 * A tensor refused as it is encoded (values beyond its type) fails the write, and the temp file goes with it
 * (and the folders made for it): nothing lands at `file`.
 */
export async function writeGguf(
  file: string,
  metadata: GgufMetadata,
  tensors: readonly GgufTensor[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): Promise<void> {
  if (os.endianness() !== 'LE') throw new Error('GGUF export needs a little-endian machine.');
  const header = buildGgufHeader(metadata, tensors, alignment);
  const zeros = new Uint8Array(alignment);
  // made as the write starts, and removed again when it fails (a tensor refused as it is encoded): a refused
  // export leaves no empty folder behind
  const folder = path.dirname(path.resolve(file));
  const made = await makeFolder(folder);
  try {
    await writeFileAtomically(file, async (tmp) => {
      const fh = await fsp.open(tmp, 'w');
      try {
        await writeAll(fh, header);
        for (const t of tensors) {
          let written = 0;
          for (const bytes of encodeTensor(t)) {
            await writeAll(fh, bytes);
            written += bytes.length;
          }
          const pad = (alignment - (written % alignment)) % alignment;
          if (pad > 0) await writeAll(fh, zeros.subarray(0, pad));
        }
      } finally {
        await fh.close();
      }
    });
  } catch (err) {
    removeFoldersMadeSync(folder, made);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Qwen2 models

/** Output precision of an exported model, as llama.cpp's `--outtype`. */
export type GgufFileType = 'F32' | 'F16' | 'Q8_0';
/** llama_ftype values for general.file_type. */
const LLAMA_FTYPE: Record<GgufFileType, number> = { F32: 0, F16: 1, Q8_0: 7 };

/** llama.cpp token types (tokenizer.ggml.token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** The tokenizer as GGUF stores it: one entry per embedding row, in id order. */
export interface GgufTokenizer {
  tokens: string[];
  tokenTypes: number[];
  /** BPE merges, "left right". */
  merges: string[];
  bosTokenId?: number | null;
  eosTokenId?: number | null;
  padTokenId?: number | null;
  /** Jinja chat template (from chat_template.jinja or tokenizer_config.json). */
  chatTemplate?: string | null;
}

/** convert_hf_to_gguf.py's rule for added tokens not flagged special that still act as control tokens. */
function looksSpecial(token: string): boolean {
  return (token.startsWith('<|') && token.endsWith('|>')) || token === '<pad>' || token === '<mask>';
}

const isByteLevel = (p: unknown): boolean =>
  isJsonObject(p) && p['type'] === 'ByteLevel' && p['add_prefix_space'] === false && p['use_regex'] === false;

const isQwen2Split = (p: unknown): boolean =>
  isJsonObject(p) &&
  p['type'] === 'Split' &&
  isJsonObject(p['pattern']) &&
  p['pattern']['Regex'] === QWEN2_PRETOKENIZER_PATTERN &&
  p['behavior'] === 'Isolated' &&
  p['invert'] === false;

/** A field's value for a message, cut short: a pre-tokenizer holds a long regex. */
function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? 'nothing';
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

/**
 * What in tokenizer.json makes llama.cpp's "qwen2" pre-tokenization differ from the file's own, or null. llama.cpp
 * splits with Qwen2's pattern and maps bytes, and applies no normalizer: the file must do exactly that. NFC passes
 * (Qwen2's own normalizer, which llama.cpp's converter exports as "qwen2" too): text already in NFC, as nearly
 * all text is, tokenizes the same.
 */
function qwen2PreTokenizationMismatch(json: TokenizerJson): string | null {
  const { normalizer, pre_tokenizer: pre } = json;
  if (normalizer !== null && normalizer !== undefined && !(isJsonObject(normalizer) && normalizer['type'] === 'NFC'))
    return `normalizer is ${shortJson(normalizer)}, which llama.cpp does not apply`;
  const steps = isJsonObject(pre) && pre['type'] === 'Sequence' ? pre['pretokenizers'] : null;
  const qwen2 = "not Qwen2's (a Split on Qwen2's pattern, then ByteLevel with add_prefix_space and use_regex false)";
  if (!Array.isArray(steps) || steps.length !== 2) return `pre_tokenizer is ${shortJson(pre)}, ${qwen2}`;
  // name the step that differs: the Split's pattern alone would fill a message
  const wrong = [isQwen2Split(steps[0]), isByteLevel(steps[1])].indexOf(false);
  return wrong < 0 ? null : `pre_tokenizer.pretokenizers[${wrong}] is ${shortJson(steps[wrong])}, ${qwen2}`;
}

/** What a GGUF holds of a tokenizer.json alone. */
type GgufVocabulary = Pick<GgufTokenizer, 'tokens' | 'tokenTypes' | 'merges'>;

/**
 * Tokens, token types and merges from a parsed Hugging Face tokenizer.json (byte-level BPE), padded to
 * `vocabSize` (the model's embedding rows) with `[PADn]` UNUSED entries as llama.cpp's converter does.
 * Vocabulary entries are NORMAL; added tokens CONTROL when special (or `<|...|>`), else USER_DEFINED.
 * The file must pre-tokenize as Qwen2's, since the GGUF tells llama.cpp to ("qwen2").
 */
export function ggufTokenizerFromTokenizerJson(
  json: unknown,
  vocabSize: number,
  file = TOKENIZER_JSON,
): GgufVocabulary {
  return ggufVocabulary(checkTokenizerJson(json, file), vocabSize, file);
}

/** ggufTokenizerFromTokenizerJson of a tokenizer.json that checkTokenizerJson has already checked. */
function ggufVocabulary(checked: TokenizerJson, vocabSize: number, file: string): GgufVocabulary {
  const unlikeQwen2 = qwen2PreTokenizationMismatch(checked);
  if (unlikeQwen2 !== null) {
    const llama = 'llama.cpp tokenizes as Qwen2 does (tokenizer.ggml.pre "qwen2") and would give other tokens';
    throw new ModelFileError(file, `${unlikeQwen2}; ${llama}, so only Qwen2-style tokenizers can be exported to GGUF.`);
  }

  const tokens: (string | undefined)[] = new Array(vocabSize).fill(undefined);
  const types: number[] = new Array(vocabSize).fill(TOKEN_TYPE.UNUSED);
  // checkTokenizerJson has made sure that no id is given to two different strings
  const place = (token: string, id: number, type: number, where: string): void => {
    if (id >= vocabSize) {
      throw new ModelFileError(
        file,
        `${where} "${token}" has id ${id}, beyond the model's ${vocabSize} embedding rows (config.json vocab_size).`,
      );
    }
    tokens[id] = token;
    types[id] = type;
  };
  for (const [token, id] of Object.entries(checked.model.vocab)) place(token, id, TOKEN_TYPE.NORMAL, 'token');
  for (const a of checked.added_tokens) {
    const type = a.special === true || looksSpecial(a.content) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
    place(a.content, a.id, type, 'added token');
  }
  const merges = mergePairs(checked.model).map(([a, b]) => `${a} ${b}`);
  return { tokens: tokens.map((t, i) => t ?? `[PAD${i}]`), tokenTypes: types, merges };
}

/**
 * The whole GGUF tokenizer from a model folder's tokenizer.json and tokenizer_config.json, resolving
 * special ids as llama.cpp's converter (gguf-py SpecialVocab) does: a `<x>_token` of
 * tokenizer_config.json names the token, else config.json's `<x>_token_id` is used (Qwen2.5-Instruct:
 * bos 151643 from config.json, eos "<|im_end|>" 151645, pad "<|endoftext|>" 151643). A list of named
 * chat templates contributes its "default" one.
 */
export function ggufTokenizerFromFiles(
  tokenizerJson: unknown,
  tokenizerConfig: unknown,
  config: Qwen2Config,
  files: { tokenizerJson?: string; tokenizerConfig?: string } = {},
): GgufTokenizer {
  const jsonFile = files.tokenizerJson ?? TOKENIZER_JSON;
  const configFile = files.tokenizerConfig ?? TOKENIZER_CONFIG_JSON;
  const base = ggufTokenizerFromTokenizerJson(tokenizerJson, config.vocabSize, jsonFile);
  const tc = checkTokenizerConfig(tokenizerConfig, configFile);
  return withSpecialTokens(base, tc, config, jsonFile, configFile, configFile);
}

/**
 * The GGUF tokenizer of a tokenizer folder as readTokenizerFolder returns it: that has checked both files
 * already, and a Qwen-sized tokenizer.json takes a tenth of a second to check again.
 */
function ggufTokenizerFromFolder(tok: TokenizerFolder, config: Qwen2Config): GgufTokenizer {
  const base = ggufVocabulary(tok.tokenizerJson, config.vocabSize, tok.files.json);
  const templateFile = tok.files.chatTemplate ?? tok.files.config;
  return withSpecialTokens(base, tok.tokenizerConfig, config, tok.files.json, tok.files.config, templateFile);
}

/** `base` with the special ids and chat template of a checked tokenizer_config.json (see ggufTokenizerFromFiles). */
function withSpecialTokens(
  base: GgufVocabulary,
  tc: TokenizerConfig,
  config: Qwen2Config,
  jsonFile: string,
  configFile: string,
  /** Where the chat template was read from (chat_template.jinja, or the config), for its refusal. */
  templateFile: string,
): GgufTokenizer {
  const idOf = new Map<string, number>();
  base.tokens.forEach((t, i) => {
    if (base.tokenTypes[i] !== TOKEN_TYPE.UNUSED && !idOf.has(t)) idOf.set(t, i);
  });
  const special = (kind: 'bos' | 'eos' | 'pad', fallback: number | null): number | null => {
    const content = specialTokenContent(tc[`${kind}_token`]);
    if (content === null) return fallback;
    const id = idOf.get(content);
    if (id === undefined)
      throw new ModelFileError(configFile, `"${kind}_token" ${JSON.stringify(content)} is not a token of ${jsonFile}.`);
    return id;
  };
  const chatTemplate = chatTemplateSource(tc);
  // parsed here, so that no GGUF carries a template an engine would refuse only when asked to chat
  if (chatTemplate !== null) new ChatTemplate(chatTemplate, {}, templateFile);
  return {
    ...base,
    bosTokenId: special('bos', config.bosTokenId),
    eosTokenId: special('eos', firstEosTokenId(config)),
    padTokenId: special('pad', null),
    chatTemplate,
  };
}

/** HF checkpoint name -> GGUF tensor name for Qwen2 (null: not exported, e.g. rotary inv_freq). */
export function qwen2GgufTensorName(hfName: string): string | null {
  const top: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (hfName in top) return top[hfName]!;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  if (!m) return null;
  const layer: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  };
  const rest = layer[m[2]!];
  return rest === undefined ? null : `blk.${m[1]}.${rest}`;
}

/**
 * Storage type of one tensor for a file type: vectors (norms, biases) stay F32, as llama.cpp's converter keeps them.
 */
function tensorType(fileType: GgufFileType, shape: readonly number[]): GgmlType {
  if (shape.length <= 1 || fileType === 'F32') return 'F32';
  if (fileType === 'Q8_0' && shape[shape.length - 1]! % Q8_0_BLOCK === 0) return 'Q8_0';
  return 'F16'; // F16, or Q8_0 that does not fit whole blocks (the converter falls back the same way)
}

function shapeText(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Metadata key for the fingerprint of the model folder a GGUF was exported from (search-r3 export gguf). */
export const GGUF_SOURCE_MODEL_KEY = 'search_r3.source_model';

/** llama_pooling_type LLAMA_POOLING_TYPE_LAST. */
export const LLAMA_POOLING_LAST = 3;

function qwen2Hyperparameters(config: Qwen2Config): [string, GgufValue][] {
  return [
    ['qwen2.context_length', u32(config.maxPositionEmbeddings)],
    ['qwen2.embedding_length', u32(config.hiddenSize)],
    ['qwen2.block_count', u32(config.numHiddenLayers)],
    ['qwen2.feed_forward_length', u32(config.intermediateSize)],
    ['qwen2.attention.head_count', u32(config.numAttentionHeads)],
    ['qwen2.attention.head_count_kv', u32(config.numKeyValueHeads)],
    ['qwen2.rope.freq_base', f32(config.ropeTheta)],
    ['qwen2.attention.layer_norm_rms_epsilon', f32(config.rmsNormEps)],
    // an embedding context's vector is the final-norm state of the last token: <|embed_token|> in Search-R3's prompts
    ['qwen2.pooling_type', u32(LLAMA_POOLING_LAST)],
  ];
}

export interface Qwen2GgufOptions {
  config: Qwen2Config;
  /** Hugging Face names (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...). */
  tensors: ReadonlyMap<string, TensorView>;
  tokenizer: GgufTokenizer;
  /** Default F16. */
  fileType?: GgufFileType;
  /** general.name */
  name?: string;
  /** Where the config, weights and tokenizer came from, for messages (default: their usual names). */
  files?: Partial<ModelFiles>;
  /** Further metadata, written after the rest (e.g. search_r3.* keys). */
  extraMetadata?: GgufMetadata;
}

/** The files of a Hugging Face model folder that messages name. */
export interface ModelFiles {
  config: string;
  weights: string;
  tokenizer: string;
}

const DEFAULT_FILES: ModelFiles = { config: 'config.json', weights: 'model.safetensors', tokenizer: 'tokenizer.json' };

/** The metadata and tensor list of a Qwen2 model GGUF, validated against the config. */
export function qwen2GgufContents(opts: Qwen2GgufOptions): { metadata: GgufMetadata; tensors: GgufTensor[] } {
  const { config, tensors, tokenizer } = opts;
  const files: ModelFiles = { ...DEFAULT_FILES, ...opts.files };
  const fileType = opts.fileType ?? 'F16';
  const unfit = (why: string): ModelFileError => configMismatchError(files.config, why, files.weights);
  if (config.headDim * config.numAttentionHeads !== config.hiddenSize) {
    // llama.cpp's qwen2 graph sizes attn_q/attn_output as hidden x hidden, so it cannot run this model.
    const heads = `head_dim ${config.headDim} × "num_attention_heads" ${config.numAttentionHeads}`;
    const why = `${heads} is not "hidden_size" ${config.hiddenSize}`;
    throw new ModelFileError(files.config, `${why}; llama.cpp's qwen2 architecture cannot load such a model.`);
  }
  const specs = qwen2TensorSpecs(config);
  const expected = new Set(specs.map((s) => s.name));
  for (const name of tensors.keys()) {
    if (expected.has(name)) continue;
    if (isSkippedTensor(config, name)) continue;
    const extra = extraLayerMismatch(config, name);
    if (extra) throw unfit(extra);
    throw new ModelFileError(files.weights, `tensor "${name}" is not part of a Qwen2 model with this config.json.`);
  }
  const missing = missingTensorsMismatch(config, new Set(tensors.keys()));
  if (missing) throw unfit(missing);
  const out: GgufTensor[] = [];
  for (const spec of specs) {
    const t = tensors.get(spec.name)!;
    const mismatch = shapeMismatch(spec, t.shape);
    if (mismatch) throw unfit(mismatch);
    const type = tensorType(fileType, spec.shape);
    const outOfRange = rangeRefusal(files.weights, `weight "${spec.name}"`, type);
    out.push({ name: qwen2GgufTensorName(spec.name)!, shape: spec.shape, type, data: t.data, outOfRange });
  }

  const n = config.vocabSize;
  if (tokenizer.tokens.length !== n || tokenizer.tokenTypes.length !== n) {
    const counts = `has ${tokenizer.tokens.length} tokens and ${tokenizer.tokenTypes.length} token types`;
    throw new ModelFileError(files.tokenizer, `${counts}, but "vocab_size" in ${files.config} is ${n}.`);
  }
  const eosFromConfig = firstEosTokenId(config);
  const ids: [string, number | null | undefined][] = [
    ['tokenizer.ggml.bos_token_id', tokenizer.bosTokenId === undefined ? config.bosTokenId : tokenizer.bosTokenId],
    ['tokenizer.ggml.eos_token_id', tokenizer.eosTokenId === undefined ? eosFromConfig : tokenizer.eosTokenId],
    ['tokenizer.ggml.padding_token_id', tokenizer.padTokenId],
  ];
  const metadata: GgufMetadata = new Map<string, GgufValue>([
    ['general.architecture', str('qwen2')],
    ['general.type', str('model')],
  ]);
  if (opts.name !== undefined) metadata.set('general.name', str(opts.name));
  metadata.set('general.file_type', u32(LLAMA_FTYPE[fileType]));
  metadata.set('general.quantization_version', u32(2));
  for (const [k, v] of qwen2Hyperparameters(config)) metadata.set(k, v);
  metadata.set('tokenizer.ggml.model', str('gpt2'));
  metadata.set('tokenizer.ggml.pre', str('qwen2'));
  metadata.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokenizer.tokens });
  metadata.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: tokenizer.tokenTypes });
  metadata.set('tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: tokenizer.merges });
  for (const [key, id] of ids) {
    if (id === null || id === undefined) continue;
    if (!Number.isInteger(id) || id < 0 || id >= n) throw tokenIdRefusal(key, id, n, config, files.config);
    metadata.set(key, u32(id));
  }
  // Qwen2 prompts carry no BOS; without this key llama.cpp's tokenizer would decide for us.
  metadata.set('tokenizer.ggml.add_bos_token', bool(false));
  if (tokenizer.chatTemplate) metadata.set('tokenizer.chat_template', str(tokenizer.chatTemplate));
  for (const [k, v] of opts.extraMetadata ?? []) metadata.set(k, v);
  return { metadata, tensors: out };
}

/** config.json's EOS id as llama.cpp's converter takes it: the first of a list. */
function firstEosTokenId(config: Qwen2Config): number | null {
  return Array.isArray(config.eosTokenId) ? (config.eosTokenId[0] ?? null) : config.eosTokenId;
}

/**
 * Why a special-token id beyond the vocabulary is refused. An id tokenizer_config.json names is one of its
 * tokens, so such an id is config.json's bos_token_id or eos_token_id, which the tokenizer left the GGUF to:
 * that field is named, as the user's to fix. Any other is a caller's GgufTokenizer, a bug.
 */
function tokenIdRefusal(key: string, id: number, n: number, config: Qwen2Config, configFile: string): Error {
  const field =
    key === 'tokenizer.ggml.bos_token_id' && id === config.bosTokenId
      ? 'bos'
      : key === 'tokenizer.ggml.eos_token_id' && id === firstEosTokenId(config)
        ? 'eos'
        : null;
  if (field === null) return new Error(`GGUF export: ${key} ${id} is not a token id below ${n}.`);
  return new ModelFileError(
    configFile,
    `"${field}_token_id" ${id} is not a token id of this model ("vocab_size" is ${n}); set it to the id of its ` +
      `${field.toUpperCase()} token, or to null.`,
  );
}

/** Writes a Qwen2 model as GGUF for llama.cpp (temp file + rename). */
export async function writeQwen2Gguf(file: string, opts: Qwen2GgufOptions): Promise<void> {
  const { metadata, tensors } = qwen2GgufContents(opts);
  await writeGguf(file, metadata, tensors);
}

// ---------------------------------------------------------------------------------------------
// LoRA adapters

/** One adapted weight W [out, in]: W' = W + (alpha / r) · B · A. */
export interface LoraPair {
  /** lora_A: [r, in] */
  a: TensorData;
  /** lora_B: [out, r] */
  b: TensorData;
}

/**
 * Groups PEFT-named tensors (`base_model.model.<weight>.lora_A.weight` / `.lora_B.weight`) into pairs
 * keyed by the adapted weight's checkpoint name (`model.layers.0.self_attn.q_proj.weight`).
 */
export function loraPairsFromPeft(
  tensors: ReadonlyMap<string, TensorData>,
  file = ADAPTER_WEIGHTS,
): Map<string, LoraPair> {
  const partial = new Map<string, Partial<LoraPair>>();
  for (const [name, t] of tensors) {
    const m = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(name);
    if (!m) throw new ModelFileError(file, `tensor "${name}" is not a PEFT lora_A/lora_B weight.`);
    const base = `${m[1]}.weight`;
    const p = partial.get(base) ?? {};
    if (m[2] === 'A') p.a = t;
    else p.b = t;
    partial.set(base, p);
  }
  const out = new Map<string, LoraPair>();
  for (const [base, p] of partial) {
    if (!p.a || !p.b) throw new ModelFileError(file, `"${base}" has lora_${p.a ? 'B' : 'A'} missing.`);
    out.set(base, { a: p.a, b: p.b });
  }
  return out;
}

export interface Qwen2LoraGgufOptions {
  config: Qwen2Config;
  /** Keyed by the adapted weight's checkpoint name, e.g. model.layers.0.self_attn.q_proj.weight. */
  adapters: ReadonlyMap<string, LoraPair>;
  /** lora_alpha; llama.cpp scales B·A by alpha / r (r = rows of A). */
  alpha: number;
  /** Default F32. */
  fileType?: 'F32' | 'F16';
  name?: string;
  /** The adapter's weights file, for messages (default adapter_model.safetensors). */
  file?: string;
}

const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** The metadata and tensor list of a LoRA adapter GGUF (convert_lora_to_gguf.py's layout). */
export function qwen2LoraGgufContents(opts: Qwen2LoraGgufOptions): { metadata: GgufMetadata; tensors: GgufTensor[] } {
  const { config, adapters, alpha } = opts;
  const fileType = opts.fileType ?? 'F32';
  const file = opts.file ?? ADAPTER_WEIGHTS;
  if (!Number.isFinite(alpha) || alpha <= 0) throw new Error(`LoRA: alpha must be a positive number, got ${alpha}.`);
  const specs = new Map(qwen2TensorSpecs(config).map((s) => [s.name, s.shape]));
  const tensors: GgufTensor[] = [];
  // Write in the model's tensor order so files are reproducible whatever the map order.
  const names = [...adapters.keys()].sort((x, y) => orderOf(specs, x) - orderOf(specs, y));
  for (const base of names) {
    const { a, b } = adapters.get(base)!;
    const shape = specs.get(base);
    const gname = qwen2GgufTensorName(base);
    if (!shape || shape.length !== 2 || gname === null) {
      throw new ModelFileError(file, `"${base}" is not a weight matrix of the base model (its config.json).`);
    }
    if (base === 'model.embed_tokens.weight' || base === 'lm_head.weight') {
      throw new ModelFileError(file, `adapters on "${base}" are not supported by the GGUF export.`);
    }
    const [out, inp] = shape as [number, number];
    const r = a.shape[0];
    if (
      a.shape.length !== 2 ||
      b.shape.length !== 2 ||
      a.shape[1] !== inp ||
      b.shape[0] !== out ||
      b.shape[1] !== r ||
      !r
    ) {
      const got = `got A ${shapeText(a.shape)}, B ${shapeText(b.shape)}`;
      throw new ModelFileError(file, `"${base}" ${shapeText(shape)} needs A [r, ${inp}] and B [${out}, r]; ${got}.`);
    }
    // GGUF dims reversed: lora_a ne = [in, r], lora_b ne = [r, out] — what llama_adapter_lora_init checks.
    for (const [part, m] of [
      ['lora_a', a],
      ['lora_b', b],
    ] as const) {
      const outOfRange = rangeRefusal(file, `the adapter's ${part === 'lora_a' ? 'A' : 'B'} of "${base}"`, fileType);
      tensors.push({ name: `${gname}.${part}`, shape: m.shape, type: fileType, data: m.data, outOfRange });
    }
  }
  const metadata: GgufMetadata = new Map<string, GgufValue>([
    ['general.architecture', str('qwen2')],
    ['general.type', str('adapter')],
  ]);
  if (opts.name !== undefined) metadata.set('general.name', str(opts.name));
  metadata.set('general.file_type', u32(LLAMA_FTYPE[fileType]));
  metadata.set('general.quantization_version', u32(2));
  metadata.set('adapter.type', str('lora'));
  metadata.set('adapter.lora.alpha', f32(alpha));
  return { metadata, tensors };
}

function orderOf(specs: Map<string, number[]>, name: string): number {
  let i = 0;
  for (const k of specs.keys()) {
    if (k === name) return i;
    i++;
  }
  return i;
}

/** Writes a Qwen2 LoRA adapter as GGUF, loadable with llama.cpp's `--lora` (temp file + rename). */
export async function writeQwen2LoraGguf(file: string, opts: Qwen2LoraGgufOptions): Promise<void> {
  const { metadata, tensors } = qwen2LoraGgufContents(opts);
  await writeGguf(file, metadata, tensors);
}

// ---------------------------------------------------------------------------------------------
// From Hugging Face folders

/**
 * Converts a Hugging Face Qwen2 folder (config.json, model.safetensors or shards, tokenizer.json,
 * tokenizer_config.json) into one GGUF file, like llama.cpp's convert_hf_to_gguf.py.
 */
export async function exportQwen2GgufFromFolder(
  modelDir: string,
  outFile: string,
  opts: { fileType?: GgufFileType; name?: string; extraMetadata?: GgufMetadata } = {},
): Promise<void> {
  const config = await readQwen2Config(path.join(modelDir, 'config.json'));
  // the folder as our Tokenizer reads it: chat_template.jinja, where there is one, holds the chat template
  const tok = await readTokenizerFolder(modelDir);
  const tokenizer = ggufTokenizerFromFolder(tok, config);
  // matrices stay in their stored 16 bits until written: a bf16 checkpoint is held once, at its own size
  const tensors = new Map<string, TensorView>();
  const matrices = (_name: string, shape: readonly number[]): boolean => shape.length === 2;
  for await (const t of readSafetensorsFolderWeights(modelDir, matrices)) {
    checkFiniteWeight(t);
    tensors.set(t.name, t);
  }
  const single = path.join(modelDir, SINGLE_FILE_NAME);
  const weights = existsSync(single) ? single : path.join(modelDir, INDEX_FILE_NAME);
  const files = { config: path.join(modelDir, 'config.json'), weights, tokenizer: tok.files.json };
  const name = opts.name ?? path.basename(path.resolve(modelDir));
  const { fileType, extraMetadata } = opts;
  await writeQwen2Gguf(outFile, { config, tensors, tokenizer, fileType, name, files, extraMetadata });
}

/**
 * Converts a PEFT LoRA folder (adapter_config.json, adapter_model.safetensors) for a Qwen2 base model
 * into a GGUF adapter, like llama.cpp's convert_lora_to_gguf.py. rsLoRA (scale alpha/sqrt(r)) is
 * written with alpha·sqrt(r), since llama.cpp scales by alpha/r.
 */
export async function exportQwen2LoraGgufFromFolder(
  adapterDir: string,
  baseConfig: Qwen2Config,
  outFile: string,
  opts: { fileType?: 'F32' | 'F16'; name?: string } = {},
): Promise<void> {
  const peft = await readPeftLoraConfig(adapterDir);
  const { rank: r, alpha } = peft;
  const weightsFile = path.join(adapterDir, ADAPTER_WEIGHTS);
  const weights = await loadSafetensors(weightsFile);
  for (const [name, t] of weights) checkFiniteWeight({ name, shape: t.shape, data: t.data, file: weightsFile });
  const adapters = loraPairsFromPeft(weights, weightsFile);
  for (const [base, { a }] of adapters) {
    if (a.shape[0] !== r)
      throw new ModelFileError(weightsFile, `"${base}" has rank ${a.shape[0]}, but adapter_config.json says r = ${r}.`);
  }
  const ggufAlpha = peft.rslora ? alpha * Math.sqrt(r) : alpha;
  const { fileType, name } = opts;
  const config = baseConfig;
  await writeQwen2LoraGguf(outFile, { config, adapters, alpha: ggufAlpha, fileType, name, file: weightsFile });
}
