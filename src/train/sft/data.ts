/**
 * Training examples (a query, its positives, optional hard negatives) from BEIR folders, JSONL pairs
 * (FlagEmbedding {query, pos, neg} or Tevatron {query, positive_passages, negative_passages}), TSV text
 * pairs and Climate-FEVER claims. Queries without a positive, queries whose only positive is their own text,
 * and empty texts are skipped and counted.
 */
import { existsSync, statSync } from 'node:fs';
import {
  beirFolderFile,
  checkBeirSplit,
  documentText,
  isBeirQueriesFile,
  readBeirCorpus,
  type BeirDocument,
} from '../../eval/beir.js';
import type { QuerySample } from '../../eval/dev-eval.js';
import { readUtf8Lines } from '../../model/bpe-trainer.js';
import { Rng } from '../../tensor/index.js';
import { readTrainingSplit, trainingSplitFiles, type HeldOutCounts } from '../hold-out.js';
import { type AnalysisSettings, type ConceptAnalysis, TermStatistics, analyseQuery } from './analysis.js';
import type { DataSourceConfig } from './config.js';
import { PSEUDO_QUERY_DEFAULTS, type PseudoQueryKind, pseudoQueryExamples } from './pseudo-queries.js';

export interface TrainExample {
  query: string;
  positives: string[];
  /** Hard negatives known for this query (from the source or from mining). */
  negatives: string[];
  /** The analysis stage 1 teaches before the embed token for this query, when it reasons (analysis.ts). */
  analysis?: ConceptAnalysis;
}

/** Which queries are trained with an analysis before the embed token, and how long it may be. */
export interface ReasoningData extends AnalysisSettings {
  /** Share of each source's queries that reason (a seeded draw per query). */
  fraction: number;
  seed: number;
}

export interface DataStats {
  examples: number;
  /** Queries dropped because no non-empty positive was left. */
  withoutPositive: number;
  /**
   * Queries dropped because every positive was the query's own text: such a pair teaches nothing, and a
   * batch may never hold the same text twice, so it could never be placed in one.
   */
  positiveIsQuery: number;
  /** Empty (whitespace-only) queries, positives and negatives dropped. */
  emptyTexts: number;
  perSource: { source: string; examples: number }[];
  /** Examples with an analysis to learn before the embed token. */
  analyses: number;
  /** Queries of BEIR sources kept out of training (hold-out.ts): a holdOut dev sample's, test queries' texts. */
  heldOut: HeldOutCounts;
}

/** A problem with a training data file, naming the file and line. */
export class DataError extends Error {
  constructor(file: string, message: string, line?: number) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${message}`);
    this.name = 'DataError';
  }
}

/** The file each kind of source that reads one file names, in words. */
const FILE_SOURCES = {
  jsonl: 'a .jsonl file of {query, pos, neg} or {query, positive_passages, negative_passages} lines',
  pairs: 'a TSV file of query<TAB>positive lines',
  'climate-fever': 'a Climate-FEVER .jsonl file of {claim, evidences} lines',
} as const;

/**
 * The files a source is read from: a BEIR split's (and the test qrels that keep test queries out of it), a
 * pseudo-queries source's corpus, or the one file the other kinds name.
 */
export function sourceFiles(src: DataSourceConfig): string[] {
  if (src.type === 'beir') return trainingSplitFiles(src.path, src.split);
  if (src.type === 'pseudo-queries') return [corpusFileOf(src.path) ?? src.path];
  return [src.path];
}

/**
 * Refuses a source that is not there, or not of its kind (a folder for a file source, a file for a BEIR folder),
 * or a BEIR source without its split: cheap, so every source is checked before any is read, and before a command
 * loads its model, not after minutes of reading the sources before it.
 */
export function checkSources(sources: readonly DataSourceConfig[]): void {
  for (const src of sources) {
    if (!existsSync(src.path)) throw new DataError(src.path, `not found (data source of type ${src.type})`);
    const isFolder = statSync(src.path).isDirectory();
    if (src.type === 'beir' && !isFolder) {
      throw new DataError(src.path, 'is a file; a "beir" source names a BEIR folder (corpus, queries, qrels/)');
    }
    if (isFolder && src.type in FILE_SOURCES) {
      const type = src.type as keyof typeof FILE_SOURCES;
      throw new DataError(src.path, `is a folder; a "${type}" source names ${FILE_SOURCES[type]}`);
    }
    if (src.type === 'beir') checkBeirSplit(src.path, src.split);
  }
}

/**
 * Why loadTrainingData gave no example, with each count, in the words train sft and mine refuse such data in.
 * Queries held out are named too: a split whose every query repeats a test query gives nothing, and the
 * other counts alone would all be 0.
 */
export function whyNoExample(stats: DataStats): string {
  const { devSample, testQueries } = stats.heldOut;
  const { withoutPositive, positiveIsQuery } = stats;
  const counts = `lacked a positive (${withoutPositive}), had only its own text as one (${positiveIsQuery})`;
  if (devSample + testQueries === 0) return `every query ${counts} or was empty`;
  return (
    `every query ${counts}, was empty or was held out (${devSample} of a holdOut dev sample, ${testQueries} with ` +
    `the text of a query of its folder's qrels/test.tsv: test queries are never trained on)`
  );
}

/**
 * Every source's examples, cleaned. With `reasoning`, a seeded share of each source's queries gets an
 * analysis, its terms weighed against the documents of that source (the query's own collection).
 */
export async function loadTrainingData(
  sources: readonly DataSourceConfig[],
  reasoning?: ReasoningData,
): Promise<{ examples: TrainExample[]; stats: DataStats }> {
  const stats: DataStats = {
    examples: 0,
    withoutPositive: 0,
    positiveIsQuery: 0,
    emptyTexts: 0,
    perSource: [],
    analyses: 0,
    heldOut: { devSample: 0, testQueries: 0 },
  };
  const examples: TrainExample[] = [];
  const draw = reasoning ? new Rng(reasoning.seed) : null;
  checkSources(sources);
  for (const src of sources) {
    const raw =
      src.type === 'beir'
        ? await beirExamples(src.path, src.split, src.sameTitleNegatives, src.holdOut, stats.heldOut)
        : src.type === 'climate-fever'
          ? await climateFeverExamples(src.path)
          : src.type === 'pairs'
            ? await pairExamples(src.path)
            : src.type === 'pseudo-queries'
              ? pseudoQueryExamples(await sourceCorpus(src.path, src.maxDocuments), {
                  ...PSEUDO_QUERY_DEFAULTS,
                  kind: src.queries,
                  seed: src.seed,
                })
              : await jsonlExamples(src.path);
    if (src.type === 'pseudo-queries' && raw.length === 0) throw new DataError(src.path, noPseudoQuery(src.queries));
    const kept: TrainExample[] = [];
    for (const ex of raw) {
      const clean = cleanExample(ex, stats);
      if (clean) kept.push(clean);
    }
    if (reasoning && draw && reasoning.fraction > 0) {
      const chosen = kept.filter(() => draw.next() < reasoning.fraction);
      if (chosen.length > 0) {
        const terms = new TermStatistics(new Set(kept.flatMap((e) => [...e.positives, ...e.negatives])));
        for (const e of chosen) e.analysis = analyseQuery(e.query, e.positives[0], terms, reasoning);
        stats.analyses += chosen.length;
      }
    }
    examples.push(...kept);
    const label = src.type === 'pseudo-queries' ? `${src.type}(${src.queries}):${src.path}` : `${src.type}:${src.path}`;
    stats.perSource.push({ source: label, examples: kept.length });
  }
  stats.examples = examples.length;
  return { examples, stats };
}

/** Why a pseudo-queries source gave no example: no document was of the kind it asks of. */
function noPseudoQuery(kind: PseudoQueryKind): string {
  const { minWords, maxWords } = PSEUDO_QUERY_DEFAULTS;
  const asked =
    kind === 'title'
      ? `a title of ${minWords} words or more and a text`
      : `a text of two sentences or more, one of them of ${minWords}–${maxWords} words`;
  return (
    `gives no "${kind}" pseudo-query: no document has ${asked}; name a corpus of such documents` +
    (kind === 'title' ? ', or ask for "sentence" queries' : '')
  );
}

/**
 * Drops empty texts (counted), positives equal to the query, and the example itself when its query is empty
 * or no positive is left.
 */
function cleanExample(ex: TrainExample, stats: DataStats): TrainExample | null {
  const nonEmpty = (xs: string[]): string[] => {
    const out = xs.filter((x) => x.trim() !== '');
    stats.emptyTexts += xs.length - out.length;
    return [...new Set(out)];
  };
  if (ex.query.trim() === '') {
    stats.emptyTexts++;
    return null;
  }
  const nonEmptyPositives = nonEmpty(ex.positives);
  if (nonEmptyPositives.length === 0) {
    stats.withoutPositive++;
    return null;
  }
  const positives = nonEmptyPositives.filter((p) => p.trim() !== ex.query.trim());
  if (positives.length === 0) {
    stats.positiveIsQuery++;
    return null;
  }
  const pos = new Set(positives);
  const negatives = nonEmpty(ex.negatives).filter((n) => !pos.has(n) && n !== ex.query);
  return { query: ex.query, positives, negatives };
}

/**
 * Judged queries of a BEIR split with their relevant documents, less a held-out dev sample when the source
 * names one. With sameTitleNegatives > 0, each query also gets up to that many other paragraphs of its
 * positive's article (documents with the same title), the nearest in corpus order first: in
 * reading-comprehension sets (DRCD, ARCD) the neighbouring paragraphs of an article share its topic but
 * not the answer, the hardest negatives there are.
 */
async function beirExamples(
  folder: string,
  split: string,
  sameTitleNegatives = 0,
  holdOut: QuerySample | undefined,
  heldOut: HeldOutCounts,
): Promise<TrainExample[]> {
  const ds = await readTrainingSplit(folder, split, holdOut);
  heldOut.devSample += ds.heldOut.devSample;
  heldOut.testQueries += ds.heldOut.testQueries;
  // the same text the embedder and the index see at inference
  const docs = new Map(ds.corpus.map((d) => [d.id, documentText(d)]));
  const position = new Map(ds.corpus.map((d, i) => [d.id, i]));
  const byTitle = new Map<string, number[]>();
  if (sameTitleNegatives > 0)
    ds.corpus.forEach((d, i) => {
      if (d.title.trim() === '') return;
      let list = byTitle.get(d.title);
      if (!list) byTitle.set(d.title, (list = []));
      list.push(i);
    });
  const out: TrainExample[] = [];
  for (const [qid, text] of ds.queries) {
    const judged = ds.qrels.get(qid)!;
    const positives: string[] = [];
    const relevant = new Set<number>();
    for (const [docId, grade] of judged) {
      if (grade < 1) continue;
      const doc = docs.get(docId);
      if (doc === undefined)
        throw new DataError(folder, `qrels/${split}.tsv judges document '${docId}', which is not in corpus.jsonl`);
      positives.push(doc);
      relevant.add(position.get(docId)!);
    }
    const negatives: string[] = [];
    if (sameTitleNegatives > 0 && relevant.size > 0) {
      const first = Math.min(...relevant);
      const article = (byTitle.get(ds.corpus[first].title) ?? []).filter(
        (i) => !relevant.has(i) && judged.get(ds.corpus[i].id) === undefined,
      );
      article.sort((a, b) => Math.abs(a - first) - Math.abs(b - first) || a - b);
      for (const i of article.slice(0, sameTitleNegatives)) negatives.push(documentText(ds.corpus[i]));
    }
    out.push({ query: text, positives, negatives });
  }
  return out;
}

/** A corpus file, or the corpus of a BEIR folder; the first maxDocuments (0 = all). */
async function sourceCorpus(p: string, maxDocuments: number): Promise<BeirDocument[]> {
  const file = corpusFileOf(p);
  if (file === undefined || !existsSync(file)) {
    const message = 'is a folder without corpus.jsonl or corpus.jsonl.gz (a pseudo-queries source needs a BEIR corpus)';
    throw new DataError(p, message);
  }
  // a BEIR folder's queries have the corpus's shape
  if (isBeirQueriesFile(file))
    throw new DataError(
      p,
      "is a BEIR folder's queries file (its test queries among them): a pseudo-queries source asks its queries of " +
        'documents; name the corpus (corpus.jsonl, or the folder)',
    );
  const docs = await readBeirCorpus(file);
  return maxDocuments > 0 ? docs.slice(0, maxDocuments) : docs;
}

/** The corpus file a pseudo-queries source names: the file itself, or a BEIR folder's corpus, as eval finds it. */
function corpusFileOf(p: string): string | undefined {
  return existsSync(p) && statSync(p).isDirectory() ? beirFolderFile(p, 'corpus') : p;
}

/**
 * The JSON objects of `file`, with their line numbers, read a line at a time as strict UTF-8 (as train lm reads
 * text: leniently decoded, a Latin-1 file would train on U+FFFD), so that only the examples are held, not the
 * file's text and its lines beside them.
 */
async function* jsonLines(file: string): AsyncGenerator<[Record<string, unknown>, number]> {
  for await (const { text, line } of readUtf8Lines(file)) {
    if (text.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataError(file, `not valid JSON (${(e as Error).message})`, line);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new DataError(file, 'expected a JSON object per line', line);
    yield [v as Record<string, unknown>, line];
  }
}

function texts(v: unknown, file: string, line: number, key: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) throw new DataError(file, `'${key}' must be a string or an array`, line);
  return v.map((x) => {
    if (typeof x === 'string') return x;
    // Tevatron passages: {docid, title, text}
    if (typeof x === 'object' && x !== null && typeof (x as { text?: unknown }).text === 'string') {
      const p = x as { title?: unknown; text: string };
      return typeof p.title === 'string' && p.title !== '' ? `${p.title} ${p.text}` : p.text;
    }
    throw new DataError(file, `'${key}' entries must be strings or {title, text} passages`, line);
  });
}

async function jsonlExamples(file: string): Promise<TrainExample[]> {
  const out: TrainExample[] = [];
  for await (const [o, line] of jsonLines(file)) {
    if (typeof o.query !== 'string') throw new DataError(file, "missing 'query' (a string)", line);
    // positives under another key ("positive", "positives") would drop every line as a query without one
    if (!Object.hasOwn(o, 'pos') && !Object.hasOwn(o, 'positive_passages')) {
      const keys = Object.keys(o)
        .map((k) => `'${k}'`)
        .join(', ');
      throw new DataError(
        file,
        `has keys ${keys} but no positives: a "jsonl" source's lines are FlagEmbedding {query, pos, neg} or ` +
          "Tevatron {query, positive_passages, negative_passages}; rename the positives' key to 'pos'",
        line,
      );
    }
    out.push({
      query: o.query,
      positives: [...texts(o.pos, file, line, 'pos'), ...texts(o.positive_passages, file, line, 'positive_passages')],
      negatives: [...texts(o.neg, file, line, 'neg'), ...texts(o.negative_passages, file, line, 'negative_passages')],
    });
  }
  return out;
}

async function pairExamples(file: string): Promise<TrainExample[]> {
  const out: TrainExample[] = [];
  for await (const { text, line } of readUtf8Lines(file)) {
    if (text.trim() === '') continue;
    const f = text.split('\t');
    if (f.length !== 2) throw new DataError(file, `expected 'query<TAB>positive', found ${f.length} fields`, line);
    out.push({ query: f[0], positives: [f[1]], negatives: [] });
  }
  return out;
}

async function climateFeverExamples(file: string): Promise<TrainExample[]> {
  const out: TrainExample[] = [];
  for await (const [o, line] of jsonLines(file)) {
    if (typeof o.claim !== 'string' || !Array.isArray(o.evidences))
      throw new DataError(file, "expected 'claim' and 'evidences'", line);
    const ev = o.evidences as { evidence_label?: string; evidence?: string }[];
    const text = (e: { evidence?: string }): string => (typeof e.evidence === 'string' ? e.evidence : '');
    out.push({
      query: o.claim,
      positives: ev.filter((e) => e.evidence_label === 'SUPPORTS' || e.evidence_label === 'REFUTES').map(text),
      negatives: ev.filter((e) => e.evidence_label === 'NOT_ENOUGH_INFO').map(text),
    });
  }
  return out;
}

/**
 * Texts that can serve as negatives, for mining: every BEIR source's whole corpus, plus every positive
 * and negative text of the examples (the only documents JSONL, pairs and Climate-FEVER sources have).
 */
export async function candidatePool(
  sources: readonly DataSourceConfig[],
  examples: readonly TrainExample[],
): Promise<string[]> {
  const pool = new Set<string>();
  for (const src of sources) {
    if (src.type !== 'beir') continue;
    for (const d of await readBeirCorpus(`${src.path}/corpus.jsonl`)) {
      const t = documentText(d);
      if (t.trim() !== '') pool.add(t);
    }
  }
  for (const e of examples) for (const t of [...e.positives, ...e.negatives]) pool.add(t);
  return [...pool];
}
