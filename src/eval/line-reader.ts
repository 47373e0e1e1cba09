import { createReadStream, existsSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { EvalInputError } from './input-error.js';

export interface NumberedLine {
  text: string;
  /** 1-based, as editors and error messages count. */
  line: number;
}

/**
 * Streams a text file line by line (any size), so that errors can name the line; a `.gz` file is gunzipped on the fly.
 */
export async function* readLines(file: string): AsyncGenerator<NumberedLine> {
  if (!existsSync(file)) throw new EvalInputError('file not found; check the path', file);
  if (!statSync(file).isFile()) throw new EvalInputError('is not a regular file', file);
  const raw = createReadStream(file);
  const input = /\.gz$/i.test(file) ? raw.pipe(createGunzip()) : raw;
  // pipe() does not forward the file stream's errors to the gunzip stream that readline listens to.
  if (input !== raw) raw.on('error', (e) => input.destroy(e));
  input.setEncoding('utf8');
  const rl = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line++;
      // A UTF-8 byte-order mark would otherwise become part of the first id.
      yield { text: line === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, line };
    }
  } catch (e) {
    if (e instanceof EvalInputError) throw e;
    // A cut or corrupt .gz fails here, after the lines before the damage were read.
    throw new EvalInputError(`cannot be read after line ${line} (${(e as Error).message})`, file);
  }
}

/** Splits a whitespace-separated line into fields, as trec_eval does (spaces or tabs, any number). */
export function splitFields(text: string): string[] {
  const t = text.trim();
  return t === '' ? [] : t.split(/\s+/);
}
