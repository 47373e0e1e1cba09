/**
 * A BM25 index saved to one file, so that a process opening a search index reads it rather than analysing every
 * document again (seconds at 50k documents, minutes at millions). The file holds Bm25Index.state() as typed arrays,
 * read straight into the arrays the index uses (no JSON of millions of numbers), behind a header saying what it
 * reflects: the format, the document set (a generation of the caller's and an identity of where it comes from),
 * the analyzer's identity and the BM25 parameters. A file that does not match all of them is stale; one whose
 * length, SHA-256 or structure is wrong is damaged. Either way it is never read into an index.
 *
 * Layout (little-endian): the 8 bytes MAGIC, a u32 header length, the header (JSON, padded with spaces to 4 bytes),
 * the SHA-256 of those three (so a damaged header is told from a stale one before the rest is read), the Int32
 * sections SECTIONS names in that order, the ids then the terms as one UTF-8 text (padded to 4 bytes), and the
 * SHA-256 of everything before it.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { writeFileAtomicallySync } from '../io/atomic-file.js';
import { readExactlySync } from '../io/read-exactly.js';
import type { Analyzer } from './analyzer.js';
import { Bm25Index, type Bm25Options, type Bm25State } from './bm25.js';

const MAGIC = Buffer.from('SR3BM25\n', 'latin1');
/** Raised when the layout or the meaning of a section changes. */
const FORMAT = 1;
const DIGEST_BYTES = 32;

/** What a saved index must reflect to be read: the caller's document set, and the analyzer and parameters. */
export interface Bm25FileKey {
  /** The version of the documents the index was built from (a counter every change of them raises). */
  generation: number;
  /** Which document set the generation counts in (a counter that starts again elsewhere must not match). */
  source: string;
  /** How many documents the index holds. */
  documents: number;
}

interface Header extends Bm25FileKey {
  format: number;
  analyzer: string;
  k1: number;
  b: number;
  luceneLengths: boolean;
  terms: number;
  postings: number;
  /** Bytes of the UTF-8 text of ids and terms. */
  textBytes: number;
}

/** The Int32 sections in file order, and how many values each holds. */
const SECTIONS = [
  ['postingStart', (h: Header) => h.terms + 1],
  ['postingDocs', (h: Header) => h.postings],
  ['postingTfs', (h: Header) => h.postings],
  ['lengths', (h: Header) => h.documents],
  ['idRank', (h: Header) => h.documents],
  ['idLengths', (h: Header) => h.documents],
  ['termLengths', (h: Header) => h.terms],
] as const;
type SectionName = (typeof SECTIONS)[number][0];

export type Bm25FileRead =
  | { index: Bm25Index }
  /** No file there. */
  | { missing: true }
  /** A sound file of other documents, another analyzer, parameters or format: rebuilt without a word. */
  | { stale: string }
  /** Not a file this module wrote whole: rebuilt, and the caller says so. */
  | { damaged: string };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const pad4 = (n: number): number => (n + 3) & ~3;

function parameters(options: Bm25Options): { k1: number; b: number; luceneLengths: boolean } {
  return { k1: options.k1 ?? 0.9, b: options.b ?? 0.4, luceneLengths: options.luceneLengths ?? true };
}

/**
 * Saves `index` (its changes folded in: Bm25Index.state()) as `file`, atomically: a reader sees the old file or the
 * new one, and two processes saving at once leave one of the two whole. Throws what the file system throws.
 */
export function writeBm25File(file: string, index: Bm25Index, key: Bm25FileKey, analyzer: Analyzer): void {
  if (endianness() !== 'LE') throw new Error('BM25 index files are written on little-endian machines only');
  const s = index.state();
  const text = s.ids.join('') + s.terms.join('');
  // UTF-8 would turn a lone surrogate into U+FFFD, and the string read back would be another one
  if (LONE_SURROGATE.test(text)) throw new RangeError('an id or term holds a lone UTF-16 surrogate');
  const textBuf = Buffer.from(text, 'utf8');
  const header: Header = {
    format: FORMAT,
    ...key,
    documents: s.ids.length,
    analyzer: analyzer.identity,
    k1: s.k1,
    b: s.b,
    luceneLengths: s.luceneLengths,
    terms: s.terms.length,
    postings: s.postingDocs.length,
    textBytes: textBuf.length,
  };
  const json = JSON.stringify(header);
  const headerBuf = Buffer.alloc(pad4(Buffer.byteLength(json)), ' ');
  headerBuf.write(json, 'utf8');
  const lengthBuf = Buffer.alloc(4);
  lengthBuf.writeUInt32LE(headerBuf.length);
  const sections: Record<SectionName, Int32Array> = {
    postingStart: s.postingStart,
    postingDocs: s.postingDocs,
    postingTfs: s.postingTfs,
    lengths: s.lengths,
    idRank: s.idRank,
    idLengths: Int32Array.from(s.ids, (id) => id.length),
    termLengths: Int32Array.from(s.terms, (t) => t.length),
  };
  writeFileAtomicallySync(file, (tmp) => {
    const fd = openSync(tmp, 'w');
    try {
      const hash = createHash('sha256');
      const put = (bytes: Uint8Array): void => {
        hash.update(bytes);
        // writeFileSync on a descriptor writes every byte (one writeSync may write fewer and say so only in its count)
        writeFileSync(fd, bytes);
      };
      put(MAGIC);
      put(lengthBuf);
      put(headerBuf);
      put(hash.copy().digest());
      for (const [name] of SECTIONS) {
        const a = sections[name];
        put(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      }
      put(textBuf);
      put(new Uint8Array(pad4(textBuf.length) - textBuf.length));
      writeFileSync(fd, hash.digest());
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * The index saved in `file` when it reflects `key` and was made by `analyzer` with `options`; otherwise why not.
 * The header is read first, so a stale file costs one small read; a matching one is hashed as it is read.
 */
export function readBm25File(
  file: string,
  key: Bm25FileKey,
  analyzer: Analyzer,
  options: Bm25Options = {},
): Bm25FileRead {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    throw e;
  }
  try {
    return readOpen(fd, key, analyzer, parameters(options));
  } finally {
    closeSync(fd);
  }
}

function readOpen(
  fd: number,
  key: Bm25FileKey,
  analyzer: Analyzer,
  params: ReturnType<typeof parameters>,
): Bm25FileRead {
  const size = fstatSync(fd).size;
  const hash = createHash('sha256');
  let at = 0;
  const read = (bytes: Uint8Array, hashed = true): boolean => {
    if (!readExactlySync(fd, bytes, at)) return false;
    at += bytes.length;
    if (hashed) hash.update(bytes);
    return true;
  };
  const start = Buffer.alloc(MAGIC.length + 4);
  if (!read(start) || !start.subarray(0, MAGIC.length).equals(MAGIC)) return { damaged: 'not a BM25 index file' };
  const headerBytes = start.readUInt32LE(MAGIC.length);
  if (headerBytes > size - at) return { damaged: 'it is cut short' };
  const headerBuf = Buffer.alloc(headerBytes);
  const headerDigest = Buffer.alloc(DIGEST_BYTES);
  if (!read(headerBuf) || !read(headerDigest, false)) return { damaged: 'it is cut short' };
  if (!headerDigest.equals(hash.copy().digest())) return { damaged: 'its header does not match its checksum' };
  hash.update(headerDigest);
  const header = parseHeader(headerBuf);
  if (!header) return { damaged: 'its header is not readable' };
  const why = staleness(header, key, analyzer, params);
  if (why) return { stale: why };
  const want = at + SECTIONS.reduce((sum, [, count]) => sum + 4 * count(header), 0) + pad4(header.textBytes);
  if (size !== want + DIGEST_BYTES)
    return { damaged: `it holds ${size} bytes where its header calls for ${want + DIGEST_BYTES}` };
  const arrays = {} as Record<SectionName, Int32Array>;
  for (const [name, count] of SECTIONS) {
    const a = new Int32Array(count(header));
    read(new Uint8Array(a.buffer));
    arrays[name] = a;
  }
  const textBuf = Buffer.alloc(pad4(header.textBytes));
  read(textBuf);
  const digest = Buffer.alloc(DIGEST_BYTES);
  read(digest, false);
  if (!digest.equals(hash.digest())) return { damaged: 'its checksum does not match its content' };
  const text = textBuf.toString('utf8', 0, header.textBytes);
  const ids = splitText(text, 0, arrays.idLengths);
  const terms = splitText(text, ids.end, arrays.termLengths);
  if (!ids.strings || !terms.strings || terms.end !== text.length)
    return { damaged: 'its ids and terms do not match their lengths' };
  const state: Bm25State = { ...params, ...arrays, ids: ids.strings, terms: terms.strings };
  try {
    return { index: Bm25Index.restore(state, analyzer) };
  } catch (e) {
    if (e instanceof RangeError) return { damaged: e.message };
    throw e;
  }
}

function parseHeader(buf: Buffer): Header | undefined {
  let h: Partial<Header>;
  try {
    h = JSON.parse(buf.toString('utf8')) as Partial<Header>;
  } catch {
    return undefined;
  }
  const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  const sound =
    h !== null &&
    typeof h === 'object' &&
    count(h.format) &&
    count(h.generation) &&
    typeof h.source === 'string' &&
    count(h.documents) &&
    typeof h.analyzer === 'string' &&
    typeof h.k1 === 'number' &&
    typeof h.b === 'number' &&
    typeof h.luceneLengths === 'boolean' &&
    count(h.terms) &&
    count(h.postings) &&
    count(h.textBytes);
  return sound ? (h as Header) : undefined;
}

/** Why a sound header's index is not the one asked for (undefined: it is). */
function staleness(
  h: Header,
  key: Bm25FileKey,
  analyzer: Analyzer,
  params: ReturnType<typeof parameters>,
): string | undefined {
  if (h.format !== FORMAT) return `format ${h.format}, not ${FORMAT}`;
  if (h.source !== key.source) return 'it was saved for another index';
  if (h.generation !== key.generation) return `it reflects generation ${h.generation}, not ${key.generation}`;
  if (h.documents !== key.documents) return `it holds ${h.documents} documents, not ${key.documents}`;
  if (h.analyzer !== analyzer.identity) return 'it was made by another analyzer';
  if (h.k1 !== params.k1 || h.b !== params.b || h.luceneLengths !== params.luceneLengths)
    return 'it was made with other BM25 parameters';
  return undefined;
}

/** `lengths.length` strings cut from `text` from `from` on, each lengths[i] UTF-16 units long. */
function splitText(text: string, from: number, lengths: Int32Array): { strings?: string[]; end: number } {
  const strings: string[] = new Array<string>(lengths.length);
  let at = from;
  for (let i = 0; i < lengths.length; i++) {
    const n = lengths[i]!;
    if (n < 0 || at + n > text.length) return { end: at };
    strings[i] = text.slice(at, at + n);
    at += n;
  }
  return { strings, end: at };
}
