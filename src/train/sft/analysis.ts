/**
 * Short analyses for stage 1 to teach before `<|embed_token|>`, so that the policy stage 2 starts from
 * already writes something about a query, and GRPO has differences between sampled analyses to reward.
 *
 * An analysis names the query's key concepts and a few related terms, all taken from the query's positive
 * document and weighed against the document collection of the query's own data source:
 * - key concepts: the query's words that also occur in the positive, rarest first (IDF), as the query
 *   writes them; a query sharing none with it keeps its own rarest words;
 * - related terms: the positive's words that the query lacks, by their BM25 weight in it (title words
 *   counted twice), as the document writes them.
 * Words are found per script: ICU word segmentation (dictionary-based for Chinese), the `stopword`
 * package's lists, Porter stems to match English forms, Arabic orthographic normalisation. The terms are in
 * the query's and document's language; the two labels are fixed English words the model learns as format.
 */
import { stemmer } from 'stemmer';
import { normalizeArabic, stopwordLists, tokenizeWords } from '../../eval/analyzer.js';

export interface ConceptAnalysis {
  concepts: string[];
  related: string[];
}

export interface AnalysisSettings {
  /** Key concepts named at most. */
  concepts: number;
  /** Related terms named at most. */
  related: number;
}

type Script = 'zh' | 'ar' | 'en';

const HAN = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
const ARABIC = /\p{Script=Arabic}/u;

function scriptOf(text: string): Script {
  return HAN.test(text) ? 'zh' : ARABIC.test(text) ? 'ar' : 'en';
}

const list = (name: string): Set<string> => {
  const l = stopwordLists[name];
  return new Set(Array.isArray(l) ? l.map((w) => w.normalize('NFKC').toLowerCase()) : []);
};

interface Word {
  /** What matches across forms: an English stem, folded Arabic, a Chinese word as is. */
  key: string;
  /** The word as the text writes it. */
  surface: string;
}

class WordSplitter {
  private readonly segmenters = new Map<Script, Intl.Segmenter>();
  private readonly stop: Record<Script, Set<string>> = { en: list('eng'), zh: list('zho'), ar: list('ara') };
  private readonly stems = new Map<string, string>();

  words(text: string): Word[] {
    const script = scriptOf(text);
    let seg = this.segmenters.get(script);
    if (!seg) this.segmenters.set(script, (seg = new Intl.Segmenter(script, { granularity: 'word' })));
    const out: Word[] = [];
    for (const raw of tokenizeWords(text.normalize('NFKC'), seg)) {
      const surface = raw.replace(/['’]s$/i, '');
      const lower = surface.toLowerCase();
      // numbers and one-letter words (and one-character Chinese words, mostly particles) name no concept
      if (/^[\p{N}.,]+$/u.test(lower) || [...lower].length < 2) continue;
      if (this.stop.en.has(lower) || this.stop.zh.has(lower) || this.stop.ar.has(lower)) continue;
      let key: string;
      if (ARABIC.test(lower)) key = normalizeArabic(lower);
      else if (HAN.test(lower)) key = lower;
      else {
        key = this.stems.get(lower) ?? '';
        if (key === '') this.stems.set(lower, (key = stemmer(lower)));
      }
      out.push({ key, surface });
    }
    return out;
  }
}

/** Document frequencies over one source's documents: what makes a word rare there. */
export class TermStatistics {
  private readonly df = new Map<string, number>();
  private readonly splitter = new WordSplitter();
  private documents = 0;
  private totalLength = 0;

  constructor(docs: Iterable<string>) {
    for (const d of docs) {
      const words = this.splitter.words(d);
      this.documents++;
      this.totalLength += words.length;
      for (const k of new Set(words.map((w) => w.key))) this.df.set(k, (this.df.get(k) ?? 0) + 1);
    }
  }

  /** BM25's IDF (Lucene's form, never negative); a word no document has is as rare as can be. */
  idf(key: string): number {
    const n = this.df.get(key) ?? 0;
    return Math.log(1 + (this.documents - n + 0.5) / (n + 0.5));
  }

  get averageLength(): number {
    return this.documents > 0 ? this.totalLength / this.documents : 1;
  }

  words(text: string): Word[] {
    return this.splitter.words(text);
  }
}

const K1 = 0.9,
  B = 0.4;

/** The most frequent written form of each key, first seen first on ties. */
function surfaces(words: readonly Word[]): Map<string, string> {
  const counts = new Map<string, Map<string, number>>();
  for (const w of words) {
    let c = counts.get(w.key);
    if (!c) counts.set(w.key, (c = new Map()));
    c.set(w.surface, (c.get(w.surface) ?? 0) + 1);
  }
  const out = new Map<string, string>();
  for (const [k, c] of counts) out.set(k, [...c].reduce((a, b) => (b[1] > a[1] ? b : a))[0]);
  return out;
}

/**
 * The analysis of one (query, positive) pair. The positive's first line is its title when the text has more
 * than one line (documentText writes title, newline, body).
 */
export function analyseQuery(
  query: string,
  positive: string,
  stats: TermStatistics,
  s: AnalysisSettings,
): ConceptAnalysis {
  const q = stats.words(query);
  const nl = positive.indexOf('\n');
  const title = nl > 0 && nl < 300 ? positive.slice(0, nl) : '';
  const docWords = stats.words(positive);
  const titleKeys = new Set(stats.words(title).map((w) => w.key));
  const tf = new Map<string, number>();
  for (const w of docWords) tf.set(w.key, (tf.get(w.key) ?? 0) + (titleKeys.has(w.key) ? 2 : 1));

  const qForms = surfaces(q);
  const byIdf = (keys: Iterable<string>): string[] =>
    [...new Set(keys)].sort((a, b) => stats.idf(b) - stats.idf(a) || (a < b ? -1 : a > b ? 1 : 0));
  const shared = byIdf(q.map((w) => w.key).filter((k) => tf.has(k)));
  const conceptKeys = (shared.length > 0 ? shared : byIdf(q.map((w) => w.key))).slice(0, s.concepts);

  const len = docWords.length,
    norm = K1 * (1 - B + (B * len) / stats.averageLength);
  const weight = (k: string): number => {
    const f = tf.get(k)!;
    return (stats.idf(k) * f * (K1 + 1)) / (f + norm);
  };
  const queryKeys = new Set(q.map((w) => w.key));
  const dForms = surfaces(docWords);
  const relatedKeys = [...tf.keys()]
    .filter((k) => !queryKeys.has(k))
    .sort((a, b) => weight(b) - weight(a) || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, s.related);
  return {
    concepts: conceptKeys.map((k) => qForms.get(k)!),
    related: relatedKeys.map((k) => dForms.get(k)!),
  };
}

/** The analysis as the model writes it before "The embedding is <|embed_token|>." */
export function formatAnalysis(a: ConceptAnalysis): string {
  const parts: string[] = [];
  if (a.concepts.length > 0) parts.push(`Key concepts: ${a.concepts.join(', ')}.`);
  if (a.related.length > 0) parts.push(`Related: ${a.related.join(', ')}.`);
  return parts.join(' ');
}

/** Shorter analyses, from the given one down to nothing: related terms go first, from the last. */
export function* shorterAnalyses(a: ConceptAnalysis): Generator<ConceptAnalysis> {
  for (let c = a.concepts.length; c >= 0; c--)
    for (let r = c === a.concepts.length ? a.related.length : 0; r >= 0; r--)
      yield { concepts: a.concepts.slice(0, c), related: a.related.slice(0, r) };
}
