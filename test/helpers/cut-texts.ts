import type { Tokenizer } from '../../src/model/tokenizer.js';
import { seededRandom, variedStrings } from './varied-strings.js';

/**
 * Pieces that make cutting a text before encoding hard to get right: letters next to ASCII punctuation,
 * contractions, runs of white space and newlines (which the Qwen2 pattern groups by what follows them),
 * long words without spaces, combining marks that NFC composes with the character before (even with ASCII
 * '<' and '='), characters NFC decomposes (U+0958 and U+FB2A into a letter and a mark, which then joins the
 * punctuation after it; U+212B), Hangul jamo that compose into a syllable, letters outside the BMP, emoji,
 * unusual white space, and added tokens whole, split or glued to letters.
 */
export const CUT_FRAGMENTS: readonly string[] = [
  'alpha',
  'Beta',
  'x',
  ' ',
  '  ',
  '     ',
  '\t',
  '\n',
  '\n\n',
  '\r\n',
  ' \n  \n ',
  '.',
  ',',
  '!?',
  '...',
  '"',
  "'",
  "'s",
  "'LL",
  "don't",
  '(',
  ')',
  '<',
  '>',
  '=',
  '|',
  '-',
  '_',
  '42',
  '3.14',
  'a'.repeat(300),
  'supercalifragilistic'.repeat(12),
  'déjà',
  'naïve',
  'Привет',
  '東京',
  'مرحبا',
  'हिन्दी',
  '\u{1D400}\u{1D401}',
  '👍🏽',
  '🇫🇷',
  'e\u0301',
  '\u0301',
  'A\u030A\u0301',
  '<\u0338',
  '=\u0338',
  '\u0338',
  '\u0958',
  '\u0958.b',
  '\uFB2A,x',
  '\u212B',
  '\u2126',
  '\u1100\u1161',
  '\u1161',
  '\u11A8',
  '\u00A0',
  '\u3000',
  '\u2028',
  '\u0085',
  '\uFEFF',
  '<|im_end|>',
  '<|im_start|>',
  '<|embed_token|>',
  '<|endoftext|>',
  '<think>',
  '<|im_',
  'end|>',
  '<|',
  '|>',
  'word<|im_end|>word',
];

/** `count` texts of about `chars` characters each (seeded): CUT_FRAGMENTS mixed with real multilingual text. */
export function cutTexts(count: number, chars: number, seed: number): string[] {
  const rand = seededRandom(seed);
  const real = variedStrings(200);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    let t = '';
    while (t.length < chars) t += rand() < 0.2 ? pick(real) : pick(CUT_FRAGMENTS);
    texts.push(t);
  }
  return texts;
}

/** The lengths of the texts `tok.encode` is given while `run` runs. */
export function encodedLengths<T>(tok: Tokenizer, run: () => T): { result: T; lengths: number[] } {
  const encode = tok.encode.bind(tok);
  const lengths: number[] = [];
  tok.encode = (text, options) => {
    lengths.push(text.length);
    return encode(text, options);
  };
  try {
    return { result: run(), lengths };
  } finally {
    tok.encode = encode;
  }
}
