/**
 * Documents to index, from a BEIR folder (corpus.jsonl or corpus.jsonl.gz), a JSON-lines file (.gz too), or a
 * folder of .txt/.md files.
 * JSON lines take `_id` or `id`, `title`, `text`, and an optional `metadata` object (other fields are kept
 * as metadata too, `id` among them where `_id` names the document). A text file's id is its path relative to
 * the folder; its title is a leading Markdown heading or the file name. In a folder, links that lead outside it
 * and files that are not UTF-8 text (binary, or another encoding) are skipped and reported, never read as
 * garbage documents.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { beirFolderFile, inexactNumericId } from '../eval/beir.js';
import { listFilesUnder, type ListSkipReason } from '../io/list-files.js';
import { MAX_LINE_BYTES, readLines } from '../eval/line-reader.js';
import { IndexError } from './index-error.js';
import { jsonLineObject } from '../eval/json-line.js';

export interface SourceDocument {
  id: string;
  title: string;
  text: string;
  metadata?: Record<string, unknown>;
}

export { documentText } from '../eval/beir.js';

/** A document's content identity (title, text, metadata): what decides whether its stored vector is current. */
export function contentHash(d: SourceDocument): string {
  return createHash('sha256')
    .update(JSON.stringify([d.title, d.text, d.metadata ?? null]))
    .digest('hex')
    .slice(0, 32);
}

/** Why a file of a folder input was not read. */
export type SkipReason = ListSkipReason | 'over 64 MiB' | 'binary' | 'not UTF-8' | typeof OTHER_KIND;

/** A file of a folder read as .txt/.md files that is of another kind (a .jsonl, a .csv, a PDF). */
export const OTHER_KIND = 'not .txt or .md';

export interface ReadDocumentsOptions {
  /** Called for each file of a folder input that is skipped, with the reason. */
  onSkip?: (file: string, reason: SkipReason) => void;
  /**
   * Whether a JSON-lines id met twice is refused (default true), which holds every id read so far. false where
   * what reads the stream refuses a repeated id itself, as SearchIndex's staging does, so that a large corpus's
   * ids are not held in two sets at once.
   */
  refuseDuplicateIds?: boolean;
}

export async function readDocuments(input: string, opts: ReadDocumentsOptions = {}): Promise<SourceDocument[]> {
  const docs: SourceDocument[] = [];
  for await (const d of streamDocuments(input, opts)) docs.push(d);
  return docs;
}

/** Why a stream is no input (the documents are read twice: every line is checked before any is stored). */
const NOT_A_STREAM =
  'index reads its input twice (it checks every document before it stores any), so it cannot read a stream; ' +
  'write the documents to a file and give its path.';

/**
 * readDocuments one document at a time, so that a corpus larger than memory can be checked and staged: only the
 * document being read (a line, or a file of a folder) is held. Refuses an input that gives no document, at its end.
 */
export async function* streamDocuments(input: string, opts: ReadDocumentsOptions = {}): AsyncGenerator<SourceDocument> {
  if (!existsSync(input)) {
    if (input === '-') throw new IndexError(`--input -: ${NOT_A_STREAM}`);
    throw new IndexError(`--input ${input}: no such file or folder.`);
  }
  const kind = statSync(input);
  if (!kind.isFile() && !kind.isDirectory()) {
    throw new IndexError(`--input ${input}: is a pipe, socket or device, not a file or folder; ${NOT_A_STREAM}`);
  }
  let n = 0;
  for await (const d of documentsOf(input, opts)) {
    n++;
    yield d;
  }
  if (n === 0) {
    // a folder is read as BEIR or as text files; a JSON-lines file of another name in it is not read
    const jsonl = kind.isDirectory() ? readdirSync(input).filter((f) => /\.jsonl(\.gz)?$/i.test(f)) : [];
    if (jsonl.length > 0) {
      throw new IndexError(
        `--input ${input}: a folder is read as BEIR (corpus.jsonl) or as .txt/.md files, which gave none here; ` +
          `give the JSON-lines file itself (--input ${path.join(input, jsonl.sort()[0]!)}).`,
      );
    }
    throw new IndexError(
      `--input ${input}: no documents found (expected corpus.jsonl[.gz], JSON lines, or .txt/.md files).`,
    );
  }
}

async function* documentsOf(input: string, opts: ReadDocumentsOptions): AsyncGenerator<SourceDocument> {
  const refuseDuplicates = opts.refuseDuplicateIds ?? true;
  if (!statSync(input).isDirectory()) return yield* streamJsonl(input, refuseDuplicates);
  const corpus = beirFolderFile(input, 'corpus');
  // read as any JSON-lines input, so that a folder and its corpus.jsonl give the same documents
  if (corpus !== undefined) return yield* streamJsonl(corpus, refuseDuplicates);
  for (const file of await listTextFiles(input, opts)) {
    const doc = await readTextFile(input, file);
    if (typeof doc === 'string') opts.onSkip?.(file, doc);
    else yield doc;
  }
}

/**
 * A lone UTF-16 surrogate (valid in a JS string and in JSON's \uXXXX escapes, as when a slice cuts an emoji in
 * half) replaced by U+FFFD, as storing the string in UTF-8 replaces it.
 */
function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD');
}

/**
 * Metadata with every string (keys too) well-formed, in its JSON form (the form docs.sqlite stores) when it
 * had a lone surrogate. Stored JSON would keep the surrogate as an escape, but search hits carry metadata to
 * clients whose JSON parsers refuse or replace one, so a document's strings follow one rule. JSON.stringify
 * writes a lone surrogate as a \udXXX escape and a pair as itself: metadata whose JSON has no such escape is
 * returned as it is.
 */
function wellFormedMetadata(m: Record<string, unknown>): Record<string, unknown> {
  const json = JSON.stringify(m);
  if (json === undefined || !/\\ud[89a-f]/.test(json)) return m;
  const clean = (v: unknown): unknown => {
    if (typeof v === 'string') return wellFormed(v);
    if (Array.isArray(v)) return v.map(clean);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [wellFormed(k), clean(x)]));
  };
  return clean(JSON.parse(json)) as Record<string, unknown>;
}

/**
 * `id` as given, or one sentence (starting with `where`: a file and line, or a position in a call) when it holds
 * a lone surrogate. Such an id is refused, never rewritten: ids come back in search hits and documentIds() and are
 * what a caller updates and deletes by, and two ids that differ only there would become one row.
 */
export function wellFormedId(id: string, where: string): string {
  if (typeof id !== 'string' || wellFormed(id) === id) return id;
  throw new IndexError(
    `${where}: the id ${JSON.stringify(id)} holds a lone UTF-16 surrogate (half of a character, as when a string ` +
      `is cut inside an emoji), which UTF-8 storage turns into U+FFFD: another id; give an id made of whole ` +
      `characters.`,
  );
}

/**
 * The deepest metadata stored: objects and arrays within each other this many levels. JSON.stringify, which stores
 * and hashes metadata, recurses once a level and overflows the stack a few thousand levels down (a RangeError
 * with a stack trace instead of a sentence); no real metadata comes near this.
 */
export const MAX_METADATA_DEPTH = 100;

/** Whether `v` nests objects and arrays deeper than `limit` levels (the metadata object itself is level 1). */
function nestedDeeperThan(v: unknown, limit: number): boolean {
  // a walk with its own stack: recursion would overflow where JSON.stringify does
  const open: Array<[unknown, number]> = [[v, 1]];
  for (let next = open.pop(); next !== undefined; next = open.pop()) {
    const [value, depth] = next;
    if (value === null || typeof value !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Object.values(value)) open.push([child, depth + 1]);
  }
  return false;
}

/**
 * The document as docs.sqlite stores it and reads it back: lone surrogates in its title, text and metadata
 * replaced by U+FFFD, so that what is hashed is what is stored, and a stored document checks against its hash;
 * an id holding one is refused (wellFormedId), as is metadata nested deeper than MAX_METADATA_DEPTH.
 */
export function storedDocument(d: SourceDocument, where: string): SourceDocument {
  wellFormedId(d.id, where);
  if (d.metadata !== undefined && nestedDeeperThan(d.metadata, MAX_METADATA_DEPTH)) {
    throw new IndexError(
      `${where}: the metadata nests objects and arrays more than ${MAX_METADATA_DEPTH} levels deep, which an ` +
        'index does not store; flatten it.',
    );
  }
  // only strings are rewritten: a value of another type is left for the type checks to refuse
  const str = (s: string): string => (typeof s === 'string' ? wellFormed(s) : s);
  const title = str(d.title);
  const text = str(d.text);
  const metadata = d.metadata ? wellFormedMetadata(d.metadata) : d.metadata;
  if (title === d.title && text === d.text && metadata === d.metadata) return d;
  return { ...d, title, text, ...(metadata === undefined ? {} : { metadata }) };
}

async function* streamJsonl(file: string, refuseDuplicates: boolean): AsyncGenerator<SourceDocument> {
  const seen = refuseDuplicates ? new Set<string>() : null;
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    const parsed = jsonLineObject(text, line, 'document');
    if ('problem' in parsed) throw new IndexError(`${file}:${line}: ${parsed.problem}.`);
    const { _id, id, title, text: body, metadata, ...rest } = parsed.obj;
    const docId = _id ?? id;
    if (!(typeof docId === 'string' && docId !== '') && typeof docId !== 'number')
      throw new IndexError(`${file}:${line}: field '_id' (or 'id') is missing or empty.`);
    const inexact = typeof docId === 'number' ? inexactNumericId(docId) : null;
    if (inexact !== null) throw new IndexError(`${file}:${line}: ${inexact}.`);
    if (body !== undefined && typeof body !== 'string')
      throw new IndexError(`${file}:${line}: field 'text' must be a string.`);
    if (title !== undefined && title !== null && typeof title !== 'string')
      throw new IndexError(`${file}:${line}: field 'title' must be a string.`);
    if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)))
      throw new IndexError(`${file}:${line}: field 'metadata' must be an object.`);
    // a line with no text at all is a mistake (a field misnamed, 'body' or 'content'), not an empty document
    if (body === undefined && (title === undefined || title === null)) {
      const fields = Object.keys(parsed.obj).join(', ');
      throw new IndexError(
        `${file}:${line}: document '${docId}' has neither 'title' nor 'text' (its fields: ${fields}); a document ` +
          'line is {"_id" (or "id"), "title", "text"}.',
      );
    }
    // with both, `_id` (BEIR's) names the document and `id` is kept like any other field
    const meta = { ...(_id !== undefined && id !== undefined ? { id } : {}), ...rest, ...(metadata as object) };
    const doc = storedDocument(
      {
        id: String(docId),
        title: (title as string | undefined) ?? '',
        text: (body as string | undefined) ?? '',
        ...(Object.keys(meta).length > 0 ? { metadata: meta } : {}),
      },
      `${file}:${line}`,
    );
    if (seen?.has(doc.id)) throw new IndexError(`${file}:${line}: document id '${doc.id}' appears twice.`);
    seen?.add(doc.id);
    yield doc;
  }
}

const TEXT_FILE = /\.(txt|md|markdown)$/i;

/** The .txt/.md files under root, in name order (see listFilesUnder: which links are followed). */
function listTextFiles(root: string, opts: ReadDocumentsOptions): Promise<string[]> {
  return listFilesUnder(
    root,
    (name) => TEXT_FILE.test(name),
    opts.onSkip,
    (file) => opts.onSkip?.(file, OTHER_KIND),
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A text file as a document, or why it is not one (over MAX_LINE_BYTES: no document; NUL bytes: binary; invalid
 * UTF-8: another encoding). The size is asked first: readFile refuses a file over 2 GiB with a stack trace, and
 * one over V8's longest string (about 512 MiB) fails to decode as if it were not UTF-8. Its bound is that of a
 * JSON-lines document, whose line holds it whole.
 */
async function readTextFile(root: string, file: string): Promise<SourceDocument | SkipReason> {
  if ((await fsp.stat(file)).size > MAX_LINE_BYTES) return 'over 64 MiB';
  const bytes = await fsp.readFile(file);
  if (bytes.includes(0)) return 'binary';
  let raw: string;
  try {
    raw = utf8.decode(bytes);
  } catch {
    return 'not UTF-8';
  }
  if (raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
  const id = path.relative(root, file).split(path.sep).join('/');
  const heading = /^\s*#\s+(.+)\n?/.exec(raw);
  if (heading && /\.(md|markdown)$/i.test(file))
    return { id, title: heading[1].trim(), text: raw.slice(heading[0].length).trim(), metadata: { path: id } };
  return { id, title: path.basename(file).replace(/\.[^.]+$/, ''), text: raw.trim(), metadata: { path: id } };
}
