/**
 * Splitting a stream of chunks into numbered lines, for readers that hold raw bytes (decoded one line at a time)
 * and readers that hold text already decoded. Both need the same rules, so that a file splits into the same lines
 * whichever reader takes it: a line ends at \n, \r\n or a lone \r (as node:readline splits), also where a chunk
 * ends between the \r and the \n.
 */

import { isUtf8 } from 'node:buffer';

export interface NumberedLine {
  text: string;
  /** 1-based, as editors and error messages count. */
  line: number;
}

/**
 * How splitLines reads one kind of chunk, whose `length` counts its units: bytes of a Buffer, UTF-16 units of a
 * string.
 */
export interface LineUnits<C extends { readonly length: number }> {
  /** The unit at `i`; undefined past the end. */
  at(chunk: C, i: number): number | undefined;
  /** The index of the next `unit` at or after `from`, or -1. */
  indexOf(chunk: C, unit: number, from: number): number;
  slice(chunk: C, start: number, end: number): C;
  /** The text of a line from its pieces, in order (one, unless the line began in an earlier chunk). */
  text(pieces: readonly C[]): string;
}

/**
 * A line whose bytes are not UTF-8, thrown by BYTE_UNITS before the line is counted: the reader names the number
 * after the last line it was given.
 */
export class NotUtf8LineError extends Error {
  constructor() {
    super('a line is not UTF-8');
    this.name = 'NotUtf8LineError';
  }
}

/**
 * Bytes, decoded a line at a time; a character split across chunks is whole. Invalid UTF-8 is refused
 * (NotUtf8LineError): decoded to U+FFFD, a Latin-1 or UTF-16 file, or a gzip file read as text, would be taken as
 * replacement characters without a word.
 */
export const BYTE_UNITS: LineUnits<Buffer> = {
  at: (chunk, i) => chunk[i],
  indexOf: (chunk, unit, from) => chunk.indexOf(unit, from),
  slice: (chunk, start, end) => chunk.subarray(start, end),
  text: (pieces) => {
    const bytes = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    if (!isUtf8(bytes)) throw new NotUtf8LineError();
    return bytes.toString('utf8');
  },
};

/** Text already decoded. */
export const TEXT_UNITS: LineUnits<string> = {
  at: (chunk, i) => (i < chunk.length ? chunk.charCodeAt(i) : undefined),
  indexOf: (chunk, unit, from) => chunk.indexOf(String.fromCharCode(unit), from),
  slice: (chunk, start, end) => chunk.slice(start, end),
  text: (pieces) => pieces.join(''),
};

const LF = 0x0a;
const CR = 0x0d;

/**
 * The lines of `chunks`, one at a time. Only the line being read is held (the readers' bounds say why), and a line
 * longer than `maxLineLength` units, its break not counted, is refused with `tooLong(its number)` after the lines
 * before it were given.
 */
export async function* splitLines<C extends { readonly length: number }>(
  chunks: AsyncIterable<C>,
  units: LineUnits<C>,
  maxLineLength: number,
  tooLong: (line: number) => Error,
): AsyncGenerator<NumberedLine> {
  let line = 0;
  // the start of the line being read, when it began in an earlier chunk
  let held: C[] = [];
  let heldLength = 0;
  // the previous chunk ended in \r: a \n opening this one ends no second line
  let afterCR = false;
  // the line held, ended by `piece` (none at the end of the input)
  const take = (piece?: C): NumberedLine => {
    if (piece !== undefined) held.push(piece);
    const text = units.text(held);
    held = [];
    heldLength = 0;
    return { text, line: ++line };
  };
  for await (const chunk of chunks) {
    let start = afterCR && units.at(chunk, 0) === LF ? 1 : 0;
    afterCR = false;
    let lf = units.indexOf(chunk, LF, start);
    let cr = units.indexOf(chunk, CR, start);
    while (lf >= 0 || cr >= 0) {
      const end = cr < 0 || (lf >= 0 && lf < cr) ? lf : cr;
      if (heldLength + end - start > maxLineLength) throw tooLong(line + 1);
      yield take(units.slice(chunk, start, end));
      start = end + 1;
      if (end === cr) {
        if (start === chunk.length) afterCR = true;
        else if (units.at(chunk, start) === LF) start++;
        cr = units.indexOf(chunk, CR, start);
      }
      if (lf >= 0 && lf < start) lf = units.indexOf(chunk, LF, start);
    }
    if (start < chunk.length) {
      heldLength += chunk.length - start;
      if (heldLength > maxLineLength) throw tooLong(line + 1);
      held.push(units.slice(chunk, start, chunk.length));
    }
  }
  if (heldLength > 0) yield take();
}
