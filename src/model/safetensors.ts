/**
 * safetensors I/O (https://github.com/huggingface/safetensors, format section of its README):
 * 8-byte little-endian header length N, N bytes of JSON header
 * `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}` (offsets relative to
 * the end of the header), then the raw little-endian tensor bytes.
 *
 * Loading converts F32/F16/BF16 to Float32Array tensor by tensor: each tensor's bytes are read with
 * fs.read straight into its Float32Array (F32) or through one small reusable scratch buffer (16-bit
 * types), so a model never sits in memory twice (a 1.5B bf16 model: 3 GB on disk, 6 GB as f32).
 * A reader may instead keep chosen 16-bit tensors as they are stored (a HalfArray, read straight
 * into its bits), for frozen weights that the kernels widen as they read them.
 * Folders are a single `model.safetensors` or shards listed by `model.safetensors.index.json`.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readModelJson } from './json-file.js';
import { ModelFileError } from './model-file-error.js';
import { writeFileAtomically, writeTextFileAtomically } from '../io/atomic-file.js';
import { numel, type NamedTensor, type TensorData, type TensorView } from './tensor-data.js';
import { HalfArray, decodeBf16, decodeF16, encodeBf16, encodeF16, hostKernels, widenHalf } from '../tensor/index.js';
import { makeFolder } from '../io/make-folder.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

export type { TensorData, TensorView, NamedTensor } from './tensor-data.js';

/** A tensor as read from a file, with the file it came from (for messages). */
export interface StoredTensor extends NamedTensor {
  file: string;
}

/** A tensor as read from a file, 16-bit ones possibly kept in their stored precision. */
export interface StoredWeight {
  name: string;
  shape: number[];
  data: Float32Array | HalfArray;
  file: string;
}

/**
 * Refuses a weight holding NaN or Inf: a flipped exponent bit makes one, and it would only surface as a
 * failing op much later (or, exported, in another program).
 */
export function checkFiniteWeight(t: StoredWeight): void {
  const k = hostKernels();
  if (t.data instanceof HalfArray ? k.halfAllFinite(t.data) : k.allFinite(t.data)) return;
  const why = 'the file is damaged, or was saved from a diverged run';
  throw new ModelFileError(t.file, `weight "${t.name}" holds NaN or Inf values: ${why}.`);
}

const DAMAGED = 'the file is damaged: download or save it again.';

/** Which 16-bit tensors a reader keeps as stored (true) instead of widening them to float32. */
export type KeepHalf = (name: string, shape: readonly number[]) => boolean;

const WIDEN_ALL: KeepHalf = () => false;

/** One tensor as the header describes it; offsets are absolute positions in the file. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  /** In file order (ascending offsets). */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
}

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';
/** transformers' default `max_shard_size` ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5e9;

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length is usually huge). */
const MAX_HEADER_BYTES = 100_000_000;
/** fs.read moves at most 2 GiB per call. */
const MAX_READ_BYTES = 1 << 30;
/** Size of the scratch buffer used to convert 16-bit tensors (elements, even). */
const SCRATCH_ELEMENTS = 8 << 20;

function assertLittleEndianHost(): void {
  if (os.endianness() !== 'LE') throw new Error('safetensors I/O needs a little-endian machine.');
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads exactly `length` bytes at `position` into `target`, in pieces fs.read accepts. */
async function readExactly(
  fh: FileHandle,
  file: string,
  target: Uint8Array,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(target.length - done, MAX_READ_BYTES);
    const { bytesRead } = await fh.read(target, done, want, position + done);
    if (bytesRead === 0) throw new ModelFileError(file, `is truncated: ${what} ends past the end of the file.`);
    done += bytesRead;
  }
}

/** Reads and validates the header of a .safetensors file. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await openForReading(file);
  try {
    return await readHeaderFrom(fh, file);
  } finally {
    await fh.close();
  }
}

async function openForReading(file: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    throw new ModelFileError(
      file,
      `cannot open the weights file (${(err as NodeJS.ErrnoException).code ?? String(err)}).`,
    );
  }
  // a folder opens on Linux and fails only when read
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw new ModelFileError(file, 'is not a file: the weights must be a .safetensors file.');
  }
  return fh;
}

async function readHeaderFrom(fh: FileHandle, file: string): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  if (size < 8)
    throw new ModelFileError(file, `is not a safetensors file: ${size} bytes, shorter than the 8-byte header length.`);
  const lenBytes = new Uint8Array(8);
  await readExactly(fh, file, lenBytes, 0, 'the header length');
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(size - 8)) {
    throw new ModelFileError(
      file,
      `is truncated or not a safetensors file: the header length (${headerLen} bytes) runs past the end of ` +
        `the file (${size} bytes).`,
    );
  }
  const n = Number(headerLen);
  if (n > MAX_HEADER_BYTES)
    throw new ModelFileError(
      file,
      `has a ${n}-byte header, over the ${MAX_HEADER_BYTES}-byte limit; the file is probably corrupt.`,
    );
  const headerBytes = new Uint8Array(n);
  await readExactly(fh, file, headerBytes, 8, 'the header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw new ModelFileError(file, `has a corrupt header: it is not valid UTF-8 JSON (${(err as Error).message}).`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelFileError(file, 'has a corrupt header: it must be a JSON object.');
  }
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new ModelFileError(file, 'has a corrupt header: "__metadata__" must be an object of strings.');
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string')
          throw new ModelFileError(file, `has a corrupt header: "__metadata__"."${k}" must be a string.`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push(parseEntry(file, name, raw, dataStart, dataSize));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  // as the reference reader requires, the tensors fill the data section end to end: bytes between them or
  // after the last are a damaged file (or two joined), not something to skip
  let at = dataStart;
  for (let i = 0; i < entries.length; i++) {
    const cur = entries[i]!;
    if (cur.begin < at)
      throw new ModelFileError(
        file,
        `has a corrupt header: tensors "${entries[i - 1]!.name}" and "${cur.name}" overlap.`,
      );
    if (cur.begin > at)
      throw new ModelFileError(
        file,
        `has ${cur.begin - at} bytes before tensor "${cur.name}" that no tensor holds; ${DAMAGED}`,
      );
    at = cur.end;
  }
  if (size > at) throw new ModelFileError(file, `has ${size - at} bytes after its last tensor; ${DAMAGED}`);
  return { file, entries, metadata };
}

function parseEntry(file: string, name: string, raw: unknown, dataStart: number, dataSize: number): SafetensorsEntry {
  const bad = (why: string): ModelFileError => new ModelFileError(file, `tensor "${name}": ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('its header entry must be an object.');
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string') throw bad('"dtype" is missing.');
  if (!(dtype in DTYPE_BYTES)) {
    throw bad(`dtype ${dtype} is not supported (F32, F16 and BF16 are); convert the checkpoint to one of those.`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) throw bad('"shape" must be a list of non-negative integers.');
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
    throw bad('"data_offsets" must be [begin, end] with non-negative integers.');
  }
  const [begin, end] = offsets as [number, number];
  const bytes = numel(shape) * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (end < begin || end - begin !== bytes) {
    throw bad(
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ` +
        `${bytes}; the header is corrupt.`,
    );
  }
  if (end > dataSize) {
    throw bad(
      `data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes): the file is ` +
        `truncated or corrupt.`,
    );
  }
  return {
    name,
    dtype: dtype as SafetensorsDtype,
    shape: shape as number[],
    begin: dataStart + begin,
    end: dataStart + end,
  };
}

/**
 * Converts one tensor's bytes from the file into a new Float32Array without staging the whole tensor,
 * or, for a 16-bit tensor to keep, reads them into a HalfArray.
 */
async function readEntry(
  fh: FileHandle,
  file: string,
  e: SafetensorsEntry,
  scratch: () => Uint16Array,
  keep: KeepHalf,
): Promise<Float32Array | HalfArray> {
  const n = numel(e.shape);
  const what = `tensor "${e.name}"`;
  if (e.dtype !== 'F32' && keep(e.name, e.shape)) {
    const bits = new Uint16Array(n);
    await readExactly(fh, file, new Uint8Array(bits.buffer), e.begin, what);
    return new HalfArray(e.dtype === 'BF16' ? 'bf16' : 'f16', bits);
  }
  const out = new Float32Array(n);
  if (e.dtype === 'F32') {
    await readExactly(fh, file, new Uint8Array(out.buffer), e.begin, what);
    return out;
  }
  const buf = scratch();
  for (let i = 0; i < n; i += buf.length) {
    const m = Math.min(buf.length, n - i);
    const chunk = buf.subarray(0, m);
    await readExactly(fh, file, new Uint8Array(chunk.buffer, 0, m * 2), e.begin + i * 2, what);
    if (e.dtype === 'BF16') decodeBf16(chunk, out.subarray(i, i + m));
    else decodeF16(chunk, out.subarray(i, i + m));
  }
  return out;
}

/**
 * Streams the tensors of one .safetensors file in file order, each converted to float32.
 * `include` skips tensors (without reading their bytes) when it returns false.
 */
export function readSafetensors(file: string, include?: (name: string) => boolean): AsyncGenerator<StoredTensor> {
  // nothing is kept in 16 bits, so every tensor is float32
  return streamFile(file, include, WIDEN_ALL) as AsyncGenerator<StoredTensor>;
}

async function* streamFile(
  file: string,
  include: ((name: string) => boolean) | undefined,
  keep: KeepHalf,
): AsyncGenerator<StoredWeight> {
  assertLittleEndianHost();
  const fh = await openForReading(file);
  try {
    const header = await readHeaderFrom(fh, file);
    let scratchBuf: Uint16Array | undefined;
    const scratch = (): Uint16Array => (scratchBuf ??= new Uint16Array(SCRATCH_ELEMENTS));
    for (const e of header.entries) {
      if (include && !include(e.name)) continue;
      const data = await readEntry(fh, file, e, scratch, keep);
      yield { name: e.name, shape: [...e.shape], data, file };
    }
  } finally {
    await fh.close();
  }
}

/** Loads all tensors of one .safetensors file. */
export async function loadSafetensors(file: string): Promise<Map<string, TensorData>> {
  const out = new Map<string, TensorData>();
  for await (const t of readSafetensors(file)) out.set(t.name, { shape: t.shape, data: t.data });
  return out;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** The shard files of a sharded checkpoint and which tensor each holds, validated. */
export interface SafetensorsIndex {
  /** Shard file names (relative to the folder), sorted. */
  shards: string[];
  weightMap: Map<string, string>;
}

export async function readSafetensorsIndex(indexFile: string): Promise<SafetensorsIndex> {
  const json = await readModelJson(indexFile, `a sharded checkpoint needs its ${INDEX_FILE_NAME}`);
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new ModelFileError(indexFile, '"weight_map" must be an object mapping tensor names to shard files.');
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string' || shard === '' || path.basename(shard) !== shard) {
      throw new ModelFileError(
        indexFile,
        `"weight_map"."${name}" must name a shard file in the same folder, got ${JSON.stringify(shard)}.`,
      );
    }
    weightMap.set(name, shard);
  }
  return { shards: [...new Set(weightMap.values())].sort(), weightMap };
}

/**
 * Streams every tensor of a checkpoint folder, each converted to float32: `model.safetensors` if
 * present (transformers' order of preference), else the shards listed in `model.safetensors.index.json`.
 */
export function readSafetensorsFolder(dir: string): AsyncGenerator<StoredTensor> {
  return readSafetensorsFolderWeights(dir, WIDEN_ALL) as AsyncGenerator<StoredTensor>;
}

/**
 * The weight files of a folder, each with the tensors to take from it (null: all) and `take(name)`, which
 * says whether a tensor of that file is one to take and refuses one the index does not list anywhere (a
 * damaged index would otherwise read as weights missing from the model).
 */
async function folderFiles(
  dir: string,
): Promise<{ file: string; expected: Set<string> | null; take: (name: string) => boolean }[]> {
  const single = path.join(dir, SINGLE_FILE_NAME);
  if (await exists(single)) return [{ file: single, expected: null, take: () => true }];
  const indexFile = path.join(dir, INDEX_FILE_NAME);
  if (!(await exists(indexFile))) {
    throw new ModelFileError(
      dir,
      `holds neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}; point to a Hugging Face model folder with ` +
        `safetensors weights.`,
    );
  }
  const index = await readSafetensorsIndex(indexFile);
  const files = [];
  for (const shard of index.shards) {
    const file = path.join(dir, shard);
    if (!(await exists(file))) {
      throw new ModelFileError(indexFile, `lists shard "${shard}", which is missing from ${dir}.`);
    }
    const expected = new Set([...index.weightMap].filter(([, s]) => s === shard).map(([n]) => n));
    const take = (name: string): boolean => {
      if (expected.has(name)) return true;
      if (index.weightMap.has(name)) return false;
      throw new ModelFileError(
        indexFile,
        `does not list tensor "${name}", which ${shard} holds; the index is damaged: save or download it again.`,
      );
    };
    files.push({ file, expected, take });
  }
  return files;
}

/** The header entries of every tensor of a checkpoint folder (reads no tensor data), e.g. to size a load. */
export async function readSafetensorsFolderEntries(dir: string): Promise<SafetensorsEntry[]> {
  const entries: SafetensorsEntry[] = [];
  for (const { file, take } of await folderFiles(dir)) {
    const header = await readSafetensorsHeader(file);
    entries.push(...header.entries.filter((e) => take(e.name)));
  }
  return entries;
}

/** readSafetensorsFolder, keeping the 16-bit tensors `keep` chooses in their stored precision. */
export async function* readSafetensorsFolderWeights(dir: string, keep: KeepHalf): AsyncGenerator<StoredWeight> {
  for (const { file: shardPath, expected, take } of await folderFiles(dir)) {
    if (expected === null) {
      yield* streamFile(shardPath, undefined, keep);
      continue;
    }
    for await (const t of streamFile(shardPath, take, keep)) {
      expected.delete(t.name);
      yield t;
    }
    if (expected.size > 0) {
      const missing = [...expected][0]!;
      throw new ModelFileError(
        shardPath,
        `lacks tensor "${missing}" that ${INDEX_FILE_NAME} places in ` +
          `it${expected.size > 1 ? ` (and ${expected.size - 1} more)` : ''}.`,
      );
    }
  }
}

/** Loads every tensor of a checkpoint folder (single file or sharded) into float32. */
export async function loadSafetensorsFolder(dir: string): Promise<Map<string, TensorData>> {
  const out = new Map<string, TensorData>();
  for await (const t of readSafetensorsFolder(dir)) out.set(t.name, { shape: t.shape, data: t.data });
  return out;
}

export interface SaveSafetensorsOptions {
  /** Storage dtype, for all tensors or per tensor. Default F32. */
  dtype?: SafetensorsDtype | ((name: string, shape: readonly number[]) => SafetensorsDtype);
  /** `__metadata__`; default {format: "pt"}, which transformers requires to load the file. */
  metadata?: Record<string, string>;
}

function resolveDtype(opt: SaveSafetensorsOptions['dtype'], name: string, shape: readonly number[]): SafetensorsDtype {
  const d = typeof opt === 'function' ? opt(name, shape) : (opt ?? 'F32');
  if (!(d in DTYPE_BYTES))
    throw new Error(`safetensors: cannot save tensor "${name}" as ${String(d)}; use F32, F16 or BF16.`);
  return d;
}

function checkTensor(name: string, t: TensorView): void {
  if (name === '__metadata__' || name === '') throw new Error(`safetensors: "${name}" cannot be a tensor name.`);
  if (!t.shape.every(isNonNegInt) || numel(t.shape) !== t.data.length) {
    throw new Error(`safetensors: tensor "${name}" has shape ${JSON.stringify(t.shape)} but ${t.data.length} values.`);
  }
}

/** Header bytes, padded with spaces so that the data starts 8-byte aligned (as the reference writer does). */
function buildHeader(
  tensors: ReadonlyArray<readonly [string, TensorView, SafetensorsDtype]>,
  metadata: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t, dtype] of tensors) {
    const bytes = t.data.length * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.length - done, MAX_READ_BYTES));
    done += bytesWritten;
  }
}

/** Writes one tensor's values as `dtype`, converting through a scratch buffer a chunk at a time. */
async function writeTensor(
  fh: FileHandle,
  t: TensorView,
  dtype: SafetensorsDtype,
  scratch: () => Uint16Array,
  wide: () => Float32Array,
): Promise<void> {
  const d = t.data;
  const stored = d instanceof HalfArray ? (d.dtype === 'bf16' ? 'BF16' : 'F16') : 'F32';
  if (stored === dtype) {
    const view = d instanceof HalfArray ? d.bits : d;
    await writeAll(fh, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    return;
  }
  for (let i = 0; i < d.length; i += SCRATCH_ELEMENTS) {
    const m = Math.min(SCRATCH_ELEMENTS, d.length - i);
    let values: Float32Array;
    if (d instanceof HalfArray) {
      values = wide().subarray(0, m);
      widenHalf(d.subarray(i, i + m), values);
    } else {
      values = d.subarray(i, i + m);
    }
    if (dtype === 'F32') {
      await writeAll(fh, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      continue;
    }
    const chunk = scratch().subarray(0, m);
    if (dtype === 'BF16') encodeBf16(values, chunk);
    else encodeF16(values, chunk);
    await writeAll(fh, new Uint8Array(chunk.buffer, 0, m * 2));
  }
}

/** Writes `tensors` (insertion order kept) to one .safetensors file, via temp file + rename. */
export async function saveSafetensors(
  file: string,
  tensors: Iterable<readonly [string, TensorView]>,
  options: SaveSafetensorsOptions = {},
): Promise<void> {
  assertLittleEndianHost();
  const list: [string, TensorView, SafetensorsDtype][] = [];
  const seen = new Set<string>();
  for (const [name, t] of tensors) {
    checkTensor(name, t);
    if (seen.has(name)) throw new Error(`safetensors: tensor "${name}" is given twice.`);
    seen.add(name);
    list.push([name, t, resolveDtype(options.dtype, name, t.shape)]);
  }
  const header = buildHeader(list, options.metadata ?? { format: 'pt' });
  await writeFileAtomically(file, async (tmp) => {
    const fh = await fsp.open(tmp, 'w');
    try {
      await writeAll(fh, header);
      let scratch: Uint16Array | undefined;
      let wide: Float32Array | undefined;
      for (const [, t, dtype] of list) {
        const narrowBuffer = (): Uint16Array => (scratch ??= new Uint16Array(SCRATCH_ELEMENTS));
        await writeTensor(fh, t, dtype, narrowBuffer, () => (wide ??= new Float32Array(SCRATCH_ELEMENTS)));
      }
    } finally {
      await fh.close();
    }
  });
}

export interface SaveSafetensorsFolderOptions extends SaveSafetensorsOptions {
  /** A checkpoint bigger than this is split into shards plus an index. Default 5 GB, as transformers. */
  maxShardBytes?: number;
}

/**
 * Writes a checkpoint's weights into `dir` the way transformers' save_pretrained does:
 * `model.safetensors`, or `model-0000i-of-0000n.safetensors` shards plus `model.safetensors.index.json`
 * when the total exceeds `maxShardBytes`. Weight files of the other layout left from an earlier save
 * are removed, so the folder loads unambiguously. Returns the file names written.
 */
export async function saveSafetensorsFolder(
  dir: string,
  tensors: Iterable<readonly [string, TensorView]>,
  options: SaveSafetensorsFolderOptions = {},
): Promise<string[]> {
  const maxShard = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const list = [...tensors];
  const seen = new Set<string>();
  for (const [name, t] of list) {
    checkTensor(name, t);
    if (seen.has(name)) throw new Error(`safetensors: tensor "${name}" is given twice.`);
    seen.add(name);
  }
  const bytesOf = ([name, t]: readonly [string, TensorView]): number =>
    t.data.length * DTYPE_BYTES[resolveDtype(options.dtype, name, t.shape)];
  const total = list.reduce((s, e) => s + bytesOf(e), 0);
  await makeFolder(dir);
  const shardPattern = /^model-\d{5}-of-\d{5}\.safetensors$/;
  const stale = (await fsp.readdir(dir)).filter(
    (f) => shardPattern.test(f) || f === INDEX_FILE_NAME || f === SINGLE_FILE_NAME,
  );

  if (total <= maxShard) {
    await saveSafetensors(path.join(dir, SINGLE_FILE_NAME), list, options);
    for (const f of stale) if (f !== SINGLE_FILE_NAME) await fsp.rm(path.join(dir, f), { force: true });
    return [SINGLE_FILE_NAME];
  }
  // Greedy packing in the given order; a tensor bigger than the limit gets a shard of its own.
  const groups: (readonly [string, TensorView])[][] = [];
  let current: (readonly [string, TensorView])[] = [];
  let currentBytes = 0;
  for (const e of list) {
    const b = bytesOf(e);
    if (current.length > 0 && currentBytes + b > maxShard) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(e);
    currentBytes += b;
  }
  if (current.length > 0) groups.push(current);
  const names = groups.map(
    (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`,
  );
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < groups.length; i++) {
    await saveSafetensors(path.join(dir, names[i]!), groups[i]!, options);
    for (const [name] of groups[i]!) weightMap[name] = names[i]!;
  }
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k]!;
  const index = { metadata: { total_size: total }, weight_map: sortedMap };
  await writeTextFileAtomically(path.join(dir, INDEX_FILE_NAME), JSON.stringify(index, null, 2) + '\n');
  for (const f of stale)
    if (!names.includes(f) && f !== INDEX_FILE_NAME) await fsp.rm(path.join(dir, f), { force: true });
  return [...names, INDEX_FILE_NAME];
}
