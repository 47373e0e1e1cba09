import { closeSync, createReadStream, existsSync, openSync, readSync, statSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { BYTE_UNITS, NotUtf8LineError, splitLines, type NumberedLine } from '../io/line-split.js';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';
import { EvalInputError } from './input-error.js';

export type { NumberedLine };

/**
 * The longest line readLines takes, in bytes. A line is held whole before it is parsed, so without a bound one
 * line with no break (a file that is not JSON lines, or a document of a whole archive) would grow until the
 * process dies on V8's string limit (about 512 MiB) without saying which file did it. No document a model
 * embeds or BM25 ranks is this long.
 */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

export interface ReadLinesOptions {
  /** Refuse a line longer than this many bytes (default MAX_LINE_BYTES). */
  maxLineBytes?: number;
}

/**
 * Why a folder, pipe or device is refused: a reader may read its file more than once (to size what it holds, to
 * check before it writes), which a pipe such as bash's <(...) cannot give.
 */
const NOT_A_REGULAR_FILE =
  'is not a regular file (a folder, or a pipe such as <(...), which is read only once); save it to a file and ' +
  'name that';

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${+(bytes / (1 << 20)).toFixed(1)} MiB` : `${bytes} bytes`;
}

/** Whether `file` starts as gzip does (1f 8b): one that does is damaged gzip, not a plain file named .gz. */
function gzipMagic(file: string): boolean {
  const head = Buffer.alloc(2);
  const fd = openSync(file, 'r');
  try {
    return readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/**
 * Streams a text file line by line (any size), so that errors can name the line; a `.gz` file is gunzipped on the
 * fly. Lines end at \n, \r\n or a lone \r; only the line being read is held, and one longer than `maxLineBytes`
 * is refused by its number, as is one that is not UTF-8.
 */
export async function* readLines(file: string, opts: ReadLinesOptions = {}): AsyncGenerator<NumberedLine> {
  if (!existsSync(file)) throw new EvalInputError('file not found; check the path', file);
  if (!statSync(file).isFile()) throw new EvalInputError(NOT_A_REGULAR_FILE, file);
  const maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const raw = createReadStream(file);
  const input = /\.gz$/i.test(file) ? raw.pipe(createGunzip()) : raw;
  // pipe() does not forward the file stream's errors to the gunzip stream read here.
  if (input !== raw) raw.on('error', (e) => input.destroy(e));
  const tooLong = (line: number): EvalInputError =>
    new EvalInputError(
      `line ${line} is longer than ${mib(maxLineBytes)} (no line break in it); a line is one record: ` +
        'check that this is a JSON-lines or text file with one record per line, and split a record this long',
      file,
    );
  let line = 0;
  try {
    for await (const l of splitLines(input as AsyncIterable<Buffer>, BYTE_UNITS, maxLineBytes, tooLong)) {
      line = l.line;
      yield line === 1 ? { text: withoutByteOrderMark(l.text), line } : l;
    }
  } catch (e) {
    if (e instanceof EvalInputError) throw e;
    if (e instanceof NotUtf8LineError) {
      const why = 'is not UTF-8 text; save the file as UTF-8 (a gzip-compressed file must be named .gz)';
      throw new EvalInputError(why, file, line + 1);
    }
    // A file named .gz that holds no gzip at all fails at its first bytes; say so, not where the damage is.
    if (input !== raw && line === 0 && (e as NodeJS.ErrnoException).code === 'Z_DATA_ERROR' && !gzipMagic(file)) {
      throw new EvalInputError(
        `is not gzip-compressed (${(e as Error).message}), though its name ends in .gz; compress it, or name a ` +
          'plain file without .gz',
        file,
      );
    }
    // A cut or corrupt .gz fails here, after the lines before the damage were read.
    throw new EvalInputError(`cannot be read after line ${line} (${(e as Error).message})`, file);
  } finally {
    // A reader that stops early (its caller threw, or a line was refused) ends only the stream it iterates; the
    // file stream under a gunzip would stay paused with its file descriptor open.
    input.destroy();
    raw.destroy();
  }
}

/**
 * How many lines readLines yields for a plain (not gzipped) `file`, counted from its bytes without decoding: a
 * reader that sizes its storage by it holds each record once, where storage grown as records come holds up to
 * twice their size while it grows.
 */
export function countLines(file: string): number {
  const fd = openSync(file, 'r');
  const chunk = Buffer.alloc(1 << 20);
  let breaks = 0;
  let lastByte = -1;
  try {
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0;) {
      const bytes = chunk.subarray(0, n);
      // \r\n is one break: count every \n, and each \r that no \n follows (also across chunks)
      if (lastByte === 0x0d && bytes[0] !== 0x0a) breaks++;
      for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) breaks++;
      for (let i = bytes.indexOf(0x0d); i >= 0 && i < n - 1; i = bytes.indexOf(0x0d, i + 1)) {
        if (bytes[i + 1] !== 0x0a) breaks++;
      }
      lastByte = bytes[n - 1]!;
    }
  } finally {
    closeSync(fd);
  }
  if (lastByte === 0x0d) breaks++;
  // a last line without a break is a line too
  return lastByte === -1 ? 0 : breaks + (lastByte === 0x0a || lastByte === 0x0d ? 0 : 1);
}

/** Splits a whitespace-separated line into fields, as trec_eval does (spaces or tabs, any number). */
export function splitFields(text: string): string[] {
  const t = text.trim();
  return t === '' ? [] : t.split(/\s+/);
}
