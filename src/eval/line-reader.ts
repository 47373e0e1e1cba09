import { createReadStream, existsSync, statSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { EvalInputError } from './input-error.js';

export interface NumberedLine {
  text: string;
  /** 1-based, as editors and error messages count. */
  line: number;
}

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

const LF = 0x0a;
const CR = 0x0d;

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${+(bytes / (1 << 20)).toFixed(1)} MiB` : `${bytes} bytes`;
}

/**
 * Streams a text file line by line (any size), so that errors can name the line; a `.gz` file is gunzipped on the
 * fly. Lines end at \n, \r\n or a lone \r; only the line being read is held, and one longer than `maxLineBytes`
 * is refused by its number. Invalid UTF-8 becomes U+FFFD.
 */
export async function* readLines(file: string, opts: ReadLinesOptions = {}): AsyncGenerator<NumberedLine> {
  if (!existsSync(file)) throw new EvalInputError('file not found; check the path', file);
  if (!statSync(file).isFile()) throw new EvalInputError('is not a regular file', file);
  const maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const raw = createReadStream(file);
  const input = /\.gz$/i.test(file) ? raw.pipe(createGunzip()) : raw;
  // pipe() does not forward the file stream's errors to the gunzip stream read here.
  if (input !== raw) raw.on('error', (e) => input.destroy(e));
  let line = 0;
  // the start of the line being read, when it began in an earlier chunk
  let held: Buffer[] = [];
  let heldBytes = 0;
  // the previous chunk ended in \r: a \n opening this one ends no second line
  let afterCR = false;
  const tooLong = (): EvalInputError =>
    new EvalInputError(
      `line ${line + 1} is longer than ${mib(maxLineBytes)} (no line break in it); a line is one record: ` +
        'check that this is a JSON-lines or text file with one record per line, and split a record this long',
      file,
    );
  const take = (piece: Buffer): NumberedLine => {
    const bytes = held.length === 0 ? piece : Buffer.concat([...held, piece]);
    held = [];
    heldBytes = 0;
    line++;
    const text = bytes.toString('utf8');
    // A UTF-8 byte-order mark would otherwise become part of the first id.
    return { text: line === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, line };
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = afterCR && chunk[0] === LF ? 1 : 0;
      afterCR = false;
      let lf = chunk.indexOf(LF, start);
      let cr = chunk.indexOf(CR, start);
      while (lf >= 0 || cr >= 0) {
        const end = cr < 0 || (lf >= 0 && lf < cr) ? lf : cr;
        if (heldBytes + end - start > maxLineBytes) throw tooLong();
        yield take(chunk.subarray(start, end));
        start = end + 1;
        if (end === cr) {
          if (start === chunk.length) afterCR = true;
          else if (chunk[start] === LF) start++;
          cr = chunk.indexOf(CR, start);
        }
        if (lf >= 0 && lf < start) lf = chunk.indexOf(LF, start);
      }
      if (start < chunk.length) {
        heldBytes += chunk.length - start;
        if (heldBytes > maxLineBytes) throw tooLong();
        held.push(chunk.subarray(start));
      }
    }
    if (heldBytes > 0) yield take(Buffer.alloc(0));
  } catch (e) {
    if (e instanceof EvalInputError) throw e;
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
