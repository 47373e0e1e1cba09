import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { stemmer as porterStem } from 'stemmer';

/**
 * The `stopword` package's lists, required as its CommonJS build: importing a CommonJS package into an ES module
 * scans its source for export names first, which for these 240 KB of word lists took ~50 ms of every index,
 * search, eval and serve start, against ~14 ms to require it.
 */
export const stopwordLists: typeof import('stopword') = createRequire(import.meta.url)('stopword');

/**
 * Text analysis for BM25, built on maintained components: word segmentation by ICU's UAX #29 word breaker with
 * dictionaries for Chinese/Japanese/Thai (Node's Intl.Segmenter), stop words from the `stopword` package (and, for
 * English, Lucene's own 33-word list, which Pyserini's BEIR baselines use), Porter stemming from `stemmer`.
 *
 * English follows Lucene's EnglishAnalyzer, as Anserini/Pyserini index BEIR: standard (UAX #29) tokenizer, possessive
 * "'s" removal, lower-casing, Lucene stop words, Porter stemmer.
 */
export interface Analyzer {
  readonly language: string;
  /**
   * What decides the terms it makes (language, stop words, stemming, and its terms for a fixed sample text), as a
   * digest: an index saved with one analyzer's terms is never read with another's.
   */
  readonly identity: string;
  /** Index terms of a text, in order, duplicates kept. */
  analyze(text: string): string[];
}

/** Raised when a change to the analysers' code changes terms in a way the sample below might not show. */
const ANALYZER_CODE_VERSION = 1;

/**
 * Words of each kind the analysers treat apart: possessives, plurals and suffixes the stemmer cuts, stop words,
 * numbers joined by '.' and ',', symbols, accents, Arabic diacritics, and dictionary-segmented Chinese, Japanese
 * and Thai. A change of tokenizer, stop list or stemmer (a package upgrade) that changes any of their terms
 * changes the identity, even where nobody raised the version above.
 */
const IDENTITY_SAMPLE =
  "The researchers' studies of running cells: relational generalizations, hopefully 3.14 and 1,000 x-rays " +
  'C++ e-mail naïve Café ÉCOLE مُدَرِّسَة الكتاب 自然言語処理 北京大学生 ภาษาไทยง่าย Straße İstanbul ﬁne ２０２４';

function analyzerIdentity(a: Omit<Analyzer, 'identity'>, stopWords: Iterable<string>, stem: boolean): string {
  const hash = createHash('sha256');
  hash.update(`${ANALYZER_CODE_VERSION}\0${a.language}\0${stem}\0${[...stopWords].sort().join('\n')}\0`);
  hash.update(a.analyze(IDENTITY_SAMPLE).join('\n'));
  return hash.digest('hex');
}

/** Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the default stop set of Anserini's English analyzer). */
export const LUCENE_ENGLISH_STOP_WORDS: readonly string[] = [
  'a',
  'an',
  'and',
  'are',
  'as',
  'at',
  'be',
  'but',
  'by',
  'for',
  'if',
  'in',
  'into',
  'is',
  'it',
  'no',
  'not',
  'of',
  'on',
  'or',
  'such',
  'that',
  'the',
  'their',
  'then',
  'there',
  'these',
  'they',
  'this',
  'to',
  'was',
  'will',
  'with',
];

/** BCP 47 language → the `stopword` package's ISO 639-3 list name. */
const STOPWORD_LIST: Record<string, string> = {
  ar: 'ara',
  de: 'deu',
  el: 'ell',
  es: 'spa',
  fr: 'fra',
  hi: 'hin',
  it: 'ita',
  ja: 'jpn',
  ko: 'kor',
  nl: 'nld',
  pt: 'por',
  ro: 'ron',
  ru: 'rus',
  th: 'tha',
  tr: 'tur',
  vi: 'vie',
  zh: 'zho',
  fa: 'fas',
  ur: 'urd',
  bn: 'ben',
};

export const SUPPORTED_LANGUAGES: readonly string[] = ['en', ...Object.keys(STOPWORD_LIST)].sort();

/**
 * Words of a text by UAX #29 (ICU): the segments Intl.Segmenter marks word-like (letters, numbers, ideographs, kana).
 * This is the reference tokenizer; tokenizeWords below gives the same words faster.
 */
export function segmentWords(text: string, segmenter: Intl.Segmenter): string[] {
  const out: string[] = [];
  for (const s of segmenter.segment(text)) if (s.isWordLike) out.push(s.segment);
  return out;
}

/**
 * Fast path, exact by construction (and checked against ICU over all of SciFact in analyzer.test.ts). In an
 * all-ASCII chunk between spaces, UAX #29 only joins letters and digits, possibly across one '.', ',', ';', ':' or
 * apostrophe between two of them (WB6/7, WB11/12); every other ASCII symbol is class Other and breaks on both sides
 * (WB999). So an ASCII chunk can be cut at those symbols, and a piece that is one run of letters/digits, or digits
 * joined by '.', ',' or ';', with only edge punctuation around it, is exactly one word. Any other piece (and any
 * chunk with non-ASCII text) goes to ICU.
 */
const ASCII_ONLY = /^[\x21-\x7e]+$/;
const ALWAYS_BREAKS = /[-/+=%<>()[\]{}*&^$#@!?~`|\\]+/;
const PLAIN_PIECE = /^["']*([A-Za-z0-9]+|[0-9]+(?:[.,;][0-9]+)+)[.,;:"']*$/;

function pushIcuWords(out: string[], text: string, segmenter: Intl.Segmenter): void {
  for (const s of segmenter.segment(text)) if (s.isWordLike) out.push(s.segment);
}

/** The same words as segmentWords(text), several times faster on English text. */
export function tokenizeWords(text: string, segmenter: Intl.Segmenter): string[] {
  const out: string[] = [];
  for (const chunk of text.split(/[ \t\n\r]+/)) {
    if (chunk === '') continue;
    if (!ASCII_ONLY.test(chunk)) {
      pushIcuWords(out, chunk, segmenter);
      continue;
    }
    const m = PLAIN_PIECE.exec(chunk);
    if (m) {
      out.push(m[1]!);
      continue;
    }
    for (const piece of chunk.split(ALWAYS_BREAKS)) {
      if (piece === '') continue;
      const p = PLAIN_PIECE.exec(piece);
      if (p) out.push(p[1]!);
      else pushIcuWords(out, piece, segmenter);
    }
  }
  return out;
}

/** Lucene's EnglishPossessiveFilter: drops a trailing 's (ASCII, right single quote or full-width apostrophe). */
function stripPossessive(word: string): string {
  const n = word.length;
  if (n >= 2) {
    const q = word.charCodeAt(n - 2);
    const s = word.charCodeAt(n - 1);
    if ((q === 0x27 || q === 0x2019 || q === 0xff07) && (s === 0x73 || s === 0x53)) return word.slice(0, n - 2);
  }
  return word;
}

/**
 * Arabic orthographic normalisation as Lucene's ArabicNormalizationFilter does it: hamza-carrying alef forms to bare
 * alef, alef maqsura to yeh, teh marbuta to heh, and tatweel and harakat removed. Without it, the same word written
 * with and without diacritics would be two terms.
 */
export function normalizeArabic(word: string): string {
  return word
    .replace(/[\u0622\u0623\u0625]/g, '\u0627')
    .replace(/\u0649/g, '\u064a')
    .replace(/\u0629/g, '\u0647')
    .replace(/[\u0640\u064b-\u0652]/g, '');
}

class EnglishAnalyzer implements Analyzer {
  readonly language = 'en';
  private readonly segmenter = new Intl.Segmenter('en', { granularity: 'word' });
  private readonly stop: Set<string>;
  /** Porter stems of lower-cased words: the stemmer is pure, and a corpus repeats its vocabulary endlessly. */
  private readonly stems = new Map<string, string>();
  private id?: string;

  constructor(
    stopWords: readonly string[],
    private readonly stem: boolean,
  ) {
    this.stop = new Set(stopWords);
  }

  get identity(): string {
    return (this.id ??= analyzerIdentity(this, this.stop, this.stem));
  }

  analyze(text: string): string[] {
    const out: string[] = [];
    for (const word of tokenizeWords(text, this.segmenter)) {
      const lower = stripPossessive(word).toLowerCase();
      if (lower === '' || this.stop.has(lower)) continue;
      if (!this.stem) {
        out.push(lower);
        continue;
      }
      let s = this.stems.get(lower);
      if (s === undefined) this.stems.set(lower, (s = porterStem(lower)));
      out.push(s);
    }
    return out;
  }
}

/** Other languages: ICU words (dictionary-based for zh/ja/th), NFKC, lower case, the language's stop words. */
class MultilingualAnalyzer implements Analyzer {
  private readonly segmenter: Intl.Segmenter;
  private readonly stop: Set<string>;
  private id?: string;

  constructor(
    readonly language: string,
    stopWords: readonly string[],
  ) {
    this.segmenter = new Intl.Segmenter(language, { granularity: 'word' });
    this.stop = new Set(stopWords.map((w) => w.normalize('NFKC').toLowerCase()));
  }

  get identity(): string {
    return (this.id ??= analyzerIdentity(this, this.stop, false));
  }

  analyze(text: string): string[] {
    const out: string[] = [];
    for (const word of tokenizeWords(text.normalize('NFKC'), this.segmenter)) {
      let w = word.toLowerCase();
      if (this.language === 'ar') w = normalizeArabic(w);
      if (w === '' || this.stop.has(w)) continue;
      out.push(w);
    }
    return out;
  }
}

export interface AnalyzerOptions {
  /** BCP 47 language of the corpus and queries (default 'en'). */
  language?: string;
  /** Remove stop words (default true). */
  stopWords?: boolean;
  /** English only: Porter stemming (default true). */
  stem?: boolean;
}

export function createAnalyzer(options: AnalyzerOptions = {}): Analyzer {
  const language = (options.language ?? 'en').toLowerCase();
  const useStop = options.stopWords ?? true;
  if (language === 'en') return new EnglishAnalyzer(useStop ? LUCENE_ENGLISH_STOP_WORDS : [], options.stem ?? true);
  const base = language.split('-')[0]!;
  if (!(base in STOPWORD_LIST)) {
    throw new RangeError(`language '${language}' is not supported; use one of ${SUPPORTED_LANGUAGES.join(', ')}`);
  }
  const list = stopwordLists[STOPWORD_LIST[base]!];
  return new MultilingualAnalyzer(base, useStop && Array.isArray(list) ? list : []);
}
