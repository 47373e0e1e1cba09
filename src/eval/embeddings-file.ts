import { closeSync, existsSync, fstatSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { inexactNumericId } from './beir.js';
import type { EmbeddingMatrix } from './dense-search.js';
import { EvalInputError } from './input-error.js';
import { jsonLineObject } from './json-line.js';
import { countLines, readLines } from './line-reader.js';
import { writeFileAtomicallySync } from '../io/atomic-file.js';
import { readExactlySync } from '../io/read-exactly.js';
import { writeTextFileAtomic } from './run.js';
import { makeFolderSync } from '../io/make-folder.js';

/**
 * Precomputed embeddings for dense evaluation, from any source, in one of two formats:
 *  - `X.npy`: a 2-D little-endian float32 C-order array (numpy.save of a float32 matrix), with the ids in the
 *    sidecar `X.ids.txt`, one per line, row order;
 *  - `X.jsonl`: one `{"id": "...", "vector": [..]}` object per line.
 */
export function idsSidecarPath(npyPath: string): string {
  return npyPath.replace(/\.npy$/i, '') + '.ids.txt';
}

/**
 * Where the header of the .npy file that starts with `lead` (its first 12 bytes, or all of a shorter file) ends:
 * its length is stored after the magic and the version, in 2 bytes (version 1) or 4. -1 when `lead` is too short.
 */
function npyHeaderEnd(lead: Buffer, file: string): number {
  if (lead.length < 10 || lead.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new EvalInputError('not a .npy file (missing the \\x93NUMPY magic)', file);
  }
  const start = lead[6] === 1 ? 10 : 12;
  if (lead.length < start) return -1;
  return start + (start === 10 ? lead.readUInt16LE(8) : lead.readUInt32LE(8));
}

/** The shape and the data's offset of a .npy file, from a buffer holding at least its header. */
function parseNpyHeader(buf: Buffer, file: string): { shape: number[]; dataOffset: number } {
  const end = npyHeaderEnd(buf, file);
  const start = buf[6] === 1 ? 10 : 12;
  const headerLen = end - start;
  if (end < 0 || end > buf.length) {
    throw new EvalInputError(`ends inside its header (${buf.length} bytes): the file is cut short`, file);
  }
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== '<f4')
    throw new EvalInputError(`dtype '${descr}' is not little-endian float32 ('<f4'); save float32`, file);
  if (fortran !== 'False')
    throw new EvalInputError('array is Fortran-ordered; save it C-ordered (np.ascontiguousarray)', file);
  const shape = (shapeText ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.length !== 2 || !shape.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new EvalInputError(`shape (${shapeText}) is not 2-D (rows, dim)`, file);
  }
  return { shape, dataOffset: start + headerLen };
}

async function readIds(file: string): Promise<string[]> {
  const ids: string[] = [];
  const seen = new Set<string>();
  for await (const { text, line } of readLines(file)) {
    const id = text.trim();
    if (id === '') continue;
    if (seen.has(id)) throw new EvalInputError(`id '${id}' appears twice`, file, line);
    seen.add(id);
    ids.push(id);
  }
  return ids;
}

/**
 * Refuses a non-finite component (NaN, ±Infinity, or a JSON number beyond float32): its row would score NaN
 * against everything and silently drop out of every ranking.
 */
function checkFinite(m: EmbeddingMatrix, file: string): EmbeddingMatrix {
  const bad = firstNonFinite(m.data);
  if (bad >= 0) {
    const id = m.ids[Math.floor(bad / m.dim)];
    throw new EvalInputError(
      `the vector of id '${id}' has a non-finite value (${m.data[bad]}) at ${bad % m.dim}`,
      file,
    );
  }
  return m;
}

/**
 * The index of the first NaN or ±Infinity in `data`, or -1. x − x is 0 for every finite x and NaN otherwise: a
 * plain loop on it checks 700k × 768 floats in a fraction of a second, where findIndex with a callback takes
 * seconds.
 */
function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

/**
 * The header and the float32 data of a .npy file, read in pieces into one array: a file over 2 GiB (700k vectors
 * of 768 floats) is read as a smaller one is, where readFileSync refuses it.
 */
function readNpyFile(file: string): { rows: number; dim: number; data: Float32Array } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const read = (bytes: number, at = 0): Buffer => {
      const buf = Buffer.alloc(Math.max(0, Math.min(bytes, size - at)));
      readExactlySync(fd, buf, at);
      return buf;
    };
    const lead = read(12);
    const { shape, dataOffset } = parseNpyHeader(read(Math.max(npyHeaderEnd(lead, file), lead.length)), file);
    const [rows, dim] = shape as [number, number];
    if (size - dataOffset !== rows * dim * 4) {
      throw new EvalInputError(`holds ${size - dataOffset} data bytes, expected ${rows} × ${dim} × 4`, file);
    }
    const data = new Float32Array(rows * dim);
    readExactlySync(fd, new Uint8Array(data.buffer), dataOffset);
    return { rows, dim, data };
  } finally {
    closeSync(fd);
  }
}

export async function readNpyEmbeddings(file: string): Promise<EmbeddingMatrix> {
  if (!existsSync(file)) throw new EvalInputError('file not found; check the path', file);
  if (!statSync(file).isFile()) throw new EvalInputError('is not a file; name the .npy file', file);
  const { rows, dim, data } = readNpyFile(file);
  const idsFile = idsSidecarPath(file);
  if (!existsSync(idsFile)) throw new EvalInputError(`needs its ids beside it in ${idsFile}, one id per line`, file);
  const ids = await readIds(idsFile);
  if (ids.length !== rows) throw new EvalInputError(`has ${ids.length} ids for ${rows} rows`, idsFile);
  return checkFinite({ ids, dim, data }, file);
}

/**
 * Reads `{"id", "vector"}` lines into one float32 matrix sized from the file's line count when the first vector
 * gives the width: the vectors are held once, as float32 (a million 768-wide vectors: 3 GB), not as JavaScript
 * number arrays copied into the matrix at the end (three times that).
 */
export async function readJsonlEmbeddings(file: string): Promise<EmbeddingMatrix> {
  const ids: string[] = [];
  const seen = new Set<string>();
  let data: Float32Array = new Float32Array(0);
  let dim = -1;
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    const parsed = jsonLineObject(text, line, 'embedding');
    if ('problem' in parsed) throw new EvalInputError(parsed.problem, file, line);
    const obj: { id?: unknown; vector?: unknown } = parsed.obj;
    const inexact = typeof obj.id === 'number' ? inexactNumericId(obj.id) : null;
    if (inexact !== null) throw new EvalInputError(inexact, file, line);
    const id = typeof obj.id === 'number' ? String(obj.id) : obj.id;
    if (typeof id !== 'string' || id === '') throw new EvalInputError("missing 'id'", file, line);
    if (!Array.isArray(obj.vector) || !obj.vector.every((x) => typeof x === 'number')) {
      throw new EvalInputError("'vector' must be an array of numbers", file, line);
    }
    if (obj.vector.length === 0) throw new EvalInputError("'vector' is empty", file, line);
    if (dim < 0) {
      dim = obj.vector.length;
      data = new Float32Array(Math.max(1, countLines(file) - line + 1) * dim);
    }
    if (obj.vector.length !== dim) {
      throw new EvalInputError(`vector has ${obj.vector.length} numbers, earlier ones ${dim}`, file, line);
    }
    if (seen.has(id)) throw new EvalInputError(`id '${id}' appears twice`, file, line);
    seen.add(id);
    // a file that grew after it was counted still reads whole
    if ((ids.length + 1) * dim > data.length) data = grown(data, 2 * data.length);
    data.set(obj.vector as number[], ids.length * dim);
    ids.push(id);
  }
  if (ids.length === 0) throw new EvalInputError('no embeddings found', file);
  // blank lines were counted as rows
  if (ids.length * dim < data.length) data = data.slice(0, ids.length * dim);
  return checkFinite({ ids, dim, data }, file);
}

function grown(data: Float32Array, length: number): Float32Array {
  const bigger = new Float32Array(length);
  bigger.set(data);
  return bigger;
}

/** The files readEmbeddings reads for `file`: a .npy with its ids sidecar, or the file alone. */
export function embeddingsFiles(file: string): string[] {
  return /\.npy$/i.test(file) ? [file, idsSidecarPath(file)] : [file];
}

/** Reads embeddings by extension: .npy (+ .ids.txt) or .jsonl. */
export async function readEmbeddings(file: string): Promise<EmbeddingMatrix> {
  if (/\.npy$/i.test(file)) return readNpyEmbeddings(file);
  if (/\.jsonl$/i.test(file)) return readJsonlEmbeddings(file);
  throw new EvalInputError('embeddings must be a .npy file (with a .ids.txt sidecar) or a .jsonl file', file);
}

/** Writes embeddings as .npy + .ids.txt (atomically), the format readNpyEmbeddings reads. */
export function writeNpyEmbeddings(file: string, m: EmbeddingMatrix): void {
  const rows = m.ids.length;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${m.dim}), }`;
  // Pad so that the data starts on a 64-byte boundary, newline-terminated, as numpy writes it.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.from(m.data.buffer, m.data.byteOffset, rows * m.dim * 4);
  makeFolderSync(dirname(file));
  writeFileAtomicallySync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
  writeTextFileAtomic(idsSidecarPath(file), m.ids.join('\n') + '\n');
}
