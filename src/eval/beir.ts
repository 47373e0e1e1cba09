import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EvalInputError } from './input-error.js';
import { jsonLineObject } from './json-line.js';
import { readLines } from './line-reader.js';
import { readBeirQrels, type Qrels } from './qrels.js';

export interface BeirDocument {
  id: string;
  title: string;
  text: string;
}

/** The text a document is embedded or indexed as: its title, a newline, then its body. */
export function documentText(d: { title: string; text: string }): string {
  return d.title ? `${d.title}\n${d.text}` : d.text;
}

export interface BeirDataset {
  folder: string;
  split: string;
  corpus: BeirDocument[];
  /** Only the queries judged in the split's qrels (as BEIR's loader keeps them), in file order. */
  queries: Map<string, string>;
  qrels: Qrels;
}

function parseJsonLine(text: string, file: string, line: number, what: string): Record<string, unknown> {
  const parsed = jsonLineObject(text, line, what);
  if ('problem' in parsed) throw new EvalInputError(parsed.problem, file, line);
  return parsed.obj;
}

/**
 * Why a JSON number cannot stand for an id, or null when it can. JSON.parse reads a number as a double: an integer
 * beyond 2^53 arrives rounded (12345678901234567890 as 12345678901234567000) and a fraction without the text it was
 * written as (1.50 as 1.5), so the id would match no qrels or run line that writes it out, and nothing would say so.
 */
export function inexactNumericId(id: number): string | null {
  if (Number.isSafeInteger(id)) return null;
  const why = '(beyond 2^53, or not an integer); write it as a string';
  return `id ${String(id)} is a number JSON cannot carry exactly ${why}`;
}

function idField(obj: Record<string, unknown>, file: string, line: number): string {
  const id = obj['_id'];
  if (typeof id === 'string' && id !== '') return id;
  if (typeof id === 'number') {
    const inexact = inexactNumericId(id);
    if (inexact !== null) throw new EvalInputError(inexact, file, line);
    return String(id);
  }
  if (id === undefined || id === null || id === '') throw new EvalInputError("missing or empty '_id'", file, line);
  // present but of another type: a MongoDB export's {"$oid": ...}, a boolean
  const type = Array.isArray(id) ? 'an array' : typeof id === 'object' ? 'an object' : `a ${typeof id}`;
  throw new EvalInputError(`'_id' is ${type} (${JSON.stringify(id)}); it must be a string or an integer`, file, line);
}

function textField(obj: Record<string, unknown>, key: string, file: string, line: number): string {
  const v = obj[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new EvalInputError(`'${key}' must be a string`, file, line);
  return v;
}

/**
 * A BEIR folder's corpus or queries file: `<name>.jsonl`, or `<name>.jsonl.gz` (as the BEIR datasets on the
 * Hugging Face hub ship them; read through gunzip as a stream), or undefined when the folder has neither. A folder
 * with both is refused: one would silently stand for the other (a file unpacked or written beside the .gz, and
 * then edited or left stale).
 */
export function beirFolderFile(folder: string, name: 'corpus' | 'queries'): string | undefined {
  return plainOrGzipped(folder, `${name}.jsonl`);
}

/** `folder/file` or `folder/file.gz`, whichever is there (both: refused, see beirFolderFile), or undefined. */
function plainOrGzipped(folder: string, file: string): string | undefined {
  const found = [file, `${file}.gz`].map((n) => join(folder, n)).filter((f) => existsSync(f));
  if (found.length > 1) {
    throw new EvalInputError(`holds both ${file} and ${file}.gz; keep the one to read and move the other`, folder);
  }
  return found[0];
}

/**
 * A split's qrels: `qrels/<split>.tsv` or its .gz. A split is a file's name, never a path: `./test` or
 * `../x/test` would read other judgments than the split named (the test split's, where test is refused).
 */
function beirQrelsFile(folder: string, split: string): string {
  if (split === '' || split === '.' || split === '..' || /[/\\]/.test(split)) {
    throw new EvalInputError(
      `'${split}' is no split's name: name a file of its qrels/ folder without .tsv (test, dev, train)`,
      folder,
    );
  }
  const dir = join(folder, 'qrels');
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new EvalInputError(
      'is a file; a BEIR folder keeps its judgments in a qrels/ folder (qrels/<split>.tsv)',
      dir,
    );
  }
  return (existsSync(dir) ? plainOrGzipped(dir, `${split}.tsv`) : undefined) ?? join(dir, `${split}.tsv`);
}

interface BeirRecord {
  id: string;
  obj: Record<string, unknown>;
  line: number;
}

/**
 * The records of a BEIR .jsonl file (corpus or queries): each non-blank line a JSON object with an `_id`
 * that no earlier line has (`what` names the records in that refusal: 'document', 'query').
 */
async function* beirRecords(file: string, what: string): AsyncGenerator<BeirRecord> {
  const seen = new Set<string>();
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    const obj = parseJsonLine(text, file, line, what);
    const id = idField(obj, file, line);
    if (seen.has(id)) throw new EvalInputError(`${what} id '${id}' appears twice`, file, line);
    seen.add(id);
    yield { id, obj, line };
  }
}

/**
 * Refuses a record without any of its text fields (absent or null): its text would read as empty without a word,
 * a query then retrieving nothing and a document found by none (a file of another format, with 'query', 'body' or
 * 'contents', scoring 0 throughout). An empty string is a text, kept.
 */
function requireTextField(rec: BeirRecord, keys: readonly string[], what: string, file: string): void {
  if (keys.some((k) => rec.obj[k] !== undefined && rec.obj[k] !== null)) return;
  const fields = Object.keys(rec.obj).join(', ');
  const none = keys.length === 1 ? `no '${keys[0]}'` : `neither ${keys.map((k) => `'${k}'`).join(' nor ')}`;
  const form = ['_id', ...keys].map((k) => `"${k}"`).join(', ');
  const name = what === 'query' ? 'queries.jsonl' : 'corpus.jsonl';
  throw new EvalInputError(
    `${what} '${rec.id}' has ${none} (its fields: ${fields}); a BEIR ${name} line is {${form}}`,
    file,
    rec.line,
  );
}

/** Streams a BEIR `corpus.jsonl` or `corpus.jsonl.gz` (`_id`, `title`, `text`), one document at a time. */
export async function* streamBeirCorpus(file: string): AsyncGenerator<BeirDocument> {
  for await (const rec of beirRecords(file, 'document')) {
    const { id, obj, line } = rec;
    requireTextField(rec, ['title', 'text'], 'document', file);
    yield { id, title: textField(obj, 'title', file, line), text: textField(obj, 'text', file, line) };
  }
}

export async function readBeirCorpus(file: string): Promise<BeirDocument[]> {
  const docs: BeirDocument[] = [];
  for await (const d of streamBeirCorpus(file)) docs.push(d);
  if (docs.length === 0) throw new EvalInputError('no documents found', file);
  return docs;
}

/**
 * A corpus as a retriever reads it: its documents in corpus order, one at a time. Each documents() call reads
 * them again from the first, so a retriever that needs two passes (the ids to size a matrix, then the texts)
 * takes two, and none has to hold every document's text at once.
 */
export interface CorpusSource {
  /** The documents, from the first. */
  documents(): AsyncIterable<BeirDocument>;
  /** How many documents there are, once known (from the start in memory; a file after one whole read). */
  readonly size: number | undefined;
}

/** Documents already in memory as a corpus source. */
export function corpusOf(docs: readonly BeirDocument[]): CorpusSource {
  return {
    size: docs.length,
    async *documents() {
      yield* docs;
    },
  };
}

/** The ids of a corpus's documents in corpus order: one read, holding no text. */
export async function corpusIds(corpus: CorpusSource): Promise<string[]> {
  const ids: string[] = [];
  for await (const d of corpus.documents()) ids.push(d.id);
  return ids;
}

/**
 * A BEIR corpus file (`corpus.jsonl` or `.gz`) as a corpus source: each read streams the file again (holding one
 * line), and a read that finds no document is refused as readBeirCorpus refuses it.
 */
export function beirCorpusSource(file: string): CorpusSource {
  let size: number | undefined;
  return {
    get size() {
      return size;
    },
    async *documents() {
      let n = 0;
      for await (const d of streamBeirCorpus(file)) {
        n++;
        yield d;
      }
      if (n === 0) throw new EvalInputError('no documents found', file);
      size = n;
    },
  };
}

/** Reads a BEIR `queries.jsonl` or `queries.jsonl.gz` (`_id`, `text`). */
export async function readBeirQueries(file: string): Promise<Map<string, string>> {
  const queries = new Map<string, string>();
  for await (const rec of beirRecords(file, 'query')) {
    requireTextField(rec, ['text'], 'query', file);
    queries.set(rec.id, textField(rec.obj, 'text', file, rec.line));
  }
  return queries;
}

/** The files a split of a BEIR folder is read from: its corpus and queries (as beirFolderFile finds them), qrels. */
export function beirSplitFiles(folder: string, split: string): { corpus: string; queries: string; qrels: string } {
  return {
    corpus: beirFolderFile(folder, 'corpus') ?? join(folder, 'corpus.jsonl'),
    queries: beirFolderFile(folder, 'queries') ?? join(folder, 'queries.jsonl'),
    qrels: beirQrelsFile(folder, split),
  };
}

/**
 * Whether `file` is a BEIR folder's queries file (queries.jsonl beside a qrels/ folder): the test queries are
 * among its lines, so no trainer may read it as text to learn from.
 */
export function isBeirQueriesFile(file: string): boolean {
  const folder = dirname(file);
  const queries = beirFolderFile(folder, 'queries') ?? join(folder, 'queries.jsonl');
  return resolve(file) === resolve(queries) && existsSync(join(folder, 'qrels'));
}

/** A split of a BEIR folder without its corpus: the judged queries and their qrels, and the corpus's file. */
export interface BeirSplit {
  folder: string;
  split: string;
  /** corpus.jsonl or corpus.jsonl.gz (beirFolderFile), checked to exist; read it with beirCorpusSource. */
  corpusFile: string;
  /** Only the queries judged in the split's qrels (as BEIR's loader keeps them), in file order. */
  queries: Map<string, string>;
  qrels: Qrels;
}

/** Reads a BEIR folder: corpus.jsonl and queries.jsonl (each or its .gz) and qrels/<split>.tsv. */
export async function readBeirDataset(folder: string, split: string): Promise<BeirDataset> {
  const { corpusFile, ...rest } = await readBeirSplit(folder, split);
  return { ...rest, corpus: await readBeirCorpus(corpusFile) };
}

/**
 * Reads a split of a BEIR folder (queries.jsonl and qrels/<split>.tsv) and finds its corpus file without reading
 * it: a retriever streams the corpus (beirCorpusSource), so a missing corpus is refused here, before a retrieval
 * that may load a model first.
 */
export async function readBeirSplit(folder: string, split: string): Promise<BeirSplit> {
  const files = checkBeirSplit(folder, split);
  const qrels = await readBeirQrels(files.qrels);
  const allQueries = await readBeirQueries(files.queries);
  const queries = new Map<string, string>();
  for (const [id, text] of allQueries) if (qrels.has(id)) queries.set(id, text);
  const missing = [...qrels.keys()].filter((q) => !allQueries.has(q));
  if (missing.length > 0) {
    throw new EvalInputError(
      `${missing.length} judged queries are missing from queries.jsonl (first: '${missing[0]}')`,
      files.qrels,
    );
  }
  return { folder, split, corpusFile: files.corpus, queries, qrels };
}

/**
 * The files of a split of a BEIR folder, refused when the folder or the split's qrels is not there: what a command
 * that judges searches (and reads no corpus) needs.
 */
export function checkBeirJudgments(folder: string, split: string): { corpus: string; queries: string; qrels: string } {
  if (!existsSync(folder)) throw new EvalInputError('dataset folder not found', folder);
  // else a file (its corpus.jsonl, say) is searched for a qrels/ inside it, and refused as a split it lacks
  if (!statSync(folder).isDirectory()) {
    throw new EvalInputError(
      'is a file; name the BEIR folder that holds corpus.jsonl, queries.jsonl and qrels/',
      folder,
    );
  }
  const files = beirSplitFiles(folder, split);
  if (!existsSync(files.qrels)) {
    // said without an option's name: a config's split key reaches here as well as eval's --split
    const dir = join(folder, 'qrels');
    const splits = existsSync(dir) ? readdirSync(dir).filter((f) => /\.tsv(\.gz)?$/.test(f)) : [];
    const names = splits.map((f) => f.replace(/\.tsv(\.gz)?$/, ''));
    const have = splits.length ? `splits here: ${names.join(', ')}` : 'no split here';
    throw new EvalInputError(`no qrels for split '${split}' (expected ${files.qrels}; ${have})`, folder);
  }
  return files;
}

/**
 * The files of a split of a BEIR folder, refused when the folder, the split's qrels or the corpus is not there:
 * cheap, so a command that reads the split checks it before its slow work (loading a model, reading other data).
 */
export function checkBeirSplit(folder: string, split: string): { corpus: string; queries: string; qrels: string } {
  const files = checkBeirJudgments(folder, split);
  if (!existsSync(files.corpus)) throw new EvalInputError('file not found; check the path', files.corpus);
  return files;
}
