/**
 * Pseudo-queries from a document corpus, for contrastive training when judged queries are few (SciFact
 * train has 809): a document's title asks for its body, and one of its sentences asks for the rest of it
 * (the inverse cloze task of Lee et al., 2019). Only documents are read, never queries, so no judged
 * query of any split is used.
 */
import { Rng } from '../../tensor/index.js';
import { documentText, type BeirDocument } from '../../eval/beir.js';

export type PseudoQueryKind = 'title' | 'sentence';

export interface PseudoQueryOptions {
  kind: PseudoQueryKind;
  seed: number;
  /** Shortest usable query in words (titles and sentences shorter than this are not asked). */
  minWords: number;
  /** Longest usable sentence query in words. */
  maxWords: number;
}

export interface PseudoQueryExample {
  query: string;
  positives: string[];
  negatives: string[];
}

export const PSEUDO_QUERY_DEFAULTS: Omit<PseudoQueryOptions, 'kind'> = { seed: 0, minWords: 4, maxWords: 40 };

/**
 * Splits prose into sentences: at . ! ? followed by white space and a capital letter or a digit; after
 * the full-width stops of Chinese and Japanese (。！？, with any closing quotes or brackets that follow
 * them), which need no space; and at . ! ? or the Arabic question mark followed by white space and an
 * Arabic letter (the script has no capitals). Text in Latin script splits exactly as by the first rule alone.
 */
export function splitSentences(text: string): string[] {
  return text
    .split(
      /(?<=[.!?])\s+(?=[\p{Lu}\p{N}])|(?<=[。！？][」』”’）)]*)(?![」』”’）)])\s*|(?<=[.!?؟])\s+(?=\p{Script=Arabic})/u,
    )
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/gu;

/**
 * Length in words. Chinese and Japanese write no spaces between words, so their characters count two to a
 * word (about the mean length of a Chinese word); text without them counts exactly its space-separated words.
 */
export function wordCount(s: string): number {
  const cjk = s.match(CJK)?.length ?? 0;
  const words = s
    .replace(CJK, ' ')
    .split(/\s+/)
    .filter((w) => w !== '' && /[\p{L}\p{N}]/u.test(w)).length;
  return cjk === 0 ? s.split(/\s+/).filter((w) => w !== '').length : words + Math.ceil(cjk / 2);
}

/**
 * One example per usable document, in corpus order. Title: query = title, positive = body. Sentence: a
 * seeded choice among the body's sentences of usable length; positive = title + the body without that
 * sentence, so that the pair cannot be matched by copying. A body of one sentence gives no example.
 */
export function pseudoQueryExamples(docs: Iterable<BeirDocument>, opts: PseudoQueryOptions): PseudoQueryExample[] {
  const rng = new Rng(opts.seed);
  const out: PseudoQueryExample[] = [];
  for (const d of docs) {
    if (opts.kind === 'title') {
      const n = wordCount(d.title);
      if (n >= opts.minWords && d.text.trim() !== '')
        out.push({ query: d.title.trim(), positives: [d.text], negatives: [] });
      continue;
    }
    const sentences = splitSentences(d.text);
    if (sentences.length < 2) continue;
    const usable = sentences
      .map((s, i) => [s, i] as const)
      .filter(([s]) => {
        const n = wordCount(s);
        return n >= opts.minWords && n <= opts.maxWords;
      });
    if (usable.length === 0) continue;
    const [query, at] = usable[rng.int(usable.length)];
    const rest = sentences.filter((_, i) => i !== at).join(' ');
    out.push({ query, positives: [documentText({ title: d.title, text: rest })], negatives: [] });
  }
  return out;
}
