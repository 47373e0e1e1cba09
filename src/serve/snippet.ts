/**
 * A hit's snippet with the query's terms marked: the words of the text whose analysed form (BM25's
 * analyzer: lower case, stop words out, Porter stems) is one of the query's terms, so what is marked is
 * what BM25 matched. The snippet is a window of the text around the first marked word.
 */
import { type Analyzer, createAnalyzer } from '../eval/analyzer.js';

export interface Snippet {
  text: string;
  /** [start, end) offsets into `text` of the marked words, in order: UTF-16 code units, as JavaScript indexes. */
  marks: [number, number][];
  /** Whether text was left out before or after the window. */
  cut: { before: boolean; after: boolean };
}

/** Letters and digits with inner apostrophes: the unit each mark covers (the analyzer then decides). */
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu;

let shared: Analyzer | null = null;
const analyzer = (): Analyzer => (shared ??= createAnalyzer());

export function queryTerms(query: string): Set<string> {
  return new Set(analyzer().analyze(query));
}

/** A window of at most `maxChars` characters of `text` (whitespace runs as one space) with `terms` marked. */
export function snippet(text: string, terms: ReadonlySet<string>, maxChars = 300): Snippet {
  const flat = text.replace(/\s+/g, ' ').trim();
  const words = [...flat.matchAll(WORD)].map((m) => ({ start: m.index!, end: m.index! + m[0].length, word: m[0] }));
  const hit = (w: { word: string }): boolean =>
    terms.size > 0 &&
    analyzer()
      .analyze(w.word)
      .some((t) => terms.has(t));
  const first = words.find(hit);
  let start = 0;
  if (first && first.end > maxChars) {
    // begin a little before the first match, at a word boundary, so the match has some context
    const from = Math.max(0, first.start - Math.floor(maxChars / 4));
    start = words.find((w) => w.start >= from)?.start ?? first.start;
  }
  let end = Math.min(flat.length, start + maxChars);
  if (end < flat.length) {
    const lastWord = words.filter((w) => w.start < end && w.end > end)[0];
    if (lastWord && lastWord.start > start) end = lastWord.start;
    // a window that ends inside a surrogate pair (an emoji is no word) would send half a character
    if (isHighSurrogate(flat.charCodeAt(end - 1))) end--;
  }
  const marks: [number, number][] = words
    .filter((w) => w.start >= start && w.end <= end && hit(w))
    .map((w) => [w.start - start, w.end - start]);
  return { text: flat.slice(start, end).trimEnd(), marks, cut: { before: start > 0, after: end < flat.length } };
}

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
