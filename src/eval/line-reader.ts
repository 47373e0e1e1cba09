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
  if (!statSync(file).isFile()) throw new EvalInputError('is not a regular file', file);
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

/** Splits a whitespace-separated line into fields, as trec_eval does (spaces or tabs, any number). */
export function splitFields(text: string): string[] {
  const t = text.trim();
  return t === '' ? [] : t.split(/\s+/);
}
