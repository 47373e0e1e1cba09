import { createReadStream, existsSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { EvalInputError } from './input-error.js';

export interface NumberedLine {
  text: string;
  /** 1-based, as editors and error messages count. */
  line: number;
}

/** Streams a text file line by line (any size), so that errors can name the line. */
export async function* readLines(file: string): AsyncGenerator<NumberedLine> {
  if (!existsSync(file)) throw new EvalInputError('file not found; check the path', file);
  if (!statSync(file).isFile()) throw new EvalInputError('is not a regular file', file);
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    // A UTF-8 byte-order mark would otherwise become part of the first id.
    yield { text: line === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, line };
  }
}

/** Splits a whitespace-separated line into fields, as trec_eval does (spaces or tabs, any number). */
export function splitFields(text: string): string[] {
  const t = text.trim();
  return t === '' ? [] : t.split(/\s+/);
}
