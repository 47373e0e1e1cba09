/**
 * Documents to index, from a BEIR folder (corpus.jsonl or corpus.jsonl.gz), a JSON-lines file (.gz too), or a
 * folder of .txt/.md files.
 * JSON lines take `_id` or `id`, `title`, `text`, and an optional `metadata` object (other fields are kept
 * as metadata too). A text file's id is its path relative to the folder; its title is a leading Markdown
 * heading or the file name. In a folder, links that lead outside it and files that are not UTF-8 text
 * (binary, or another encoding) are skipped and reported, never read as garbage documents.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, statSync } from 'node:fs';
import path from 'node:path';
import { beirCorpusFile } from '../eval/beir.js';
import { listFilesUnder } from '../io/list-files.js';
import { readLines } from '../eval/line-reader.js';
import { IndexError } from './index-error.js';

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
export type SkipReason = 'outside the folder' | 'binary' | 'not UTF-8';

export interface ReadDocumentsOptions {
  /** Called for each file of a folder input that is skipped, with the reason. */
  onSkip?: (file: string, reason: SkipReason) => void;
}

export async function readDocuments(input: string, opts: ReadDocumentsOptions = {}): Promise<SourceDocument[]> {
  if (!existsSync(input)) throw new IndexError(`--input ${input}: no such file or folder.`);
  const docs: SourceDocument[] = [];
  if (statSync(input).isDirectory()) {
    const corpus = beirCorpusFile(input);
    if (corpus !== undefined) {
      // read as any JSON-lines input, so that a folder and its corpus.jsonl give the same documents
      for await (const d of streamJsonl(corpus)) docs.push(d);
    } else {
      for (const file of await listTextFiles(input, opts)) {
        const doc = await readTextFile(input, file);
        if (typeof doc === 'string') opts.onSkip?.(file, doc);
        else docs.push(doc);
      }
    }
  } else {
    for await (const d of streamJsonl(input)) docs.push(d);
  }
  if (docs.length === 0)
    throw new IndexError(
      `--input ${input}: no documents found (expected corpus.jsonl[.gz], JSON lines, or .txt/.md files).`,
    );
  return docs;
}

/**
 * A lone UTF-16 surrogate (valid in JSON's \uXXXX escapes) replaced by U+FFFD, as storing the text in UTF-8
 * replaces it: the text hashed is then the text stored, and a stored document checks against its hash.
 */
function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD');
}

async function* streamJsonl(file: string): AsyncGenerator<SourceDocument> {
  const seen = new Set<string>();
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new IndexError(`${file}:${line}: not valid JSON (${(e as Error).message}).`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new IndexError(`${file}:${line}: expected one JSON object per line.`);
    const { _id, id, title, text: body, metadata, ...rest } = obj as Record<string, unknown>;
    const docId = _id ?? id;
    if (!(typeof docId === 'string' && docId !== '') && typeof docId !== 'number')
      throw new IndexError(`${file}:${line}: field '_id' (or 'id') is missing or empty.`);
    if (typeof docId === 'number' && !Number.isSafeInteger(docId))
      throw new IndexError(
        `${file}:${line}: id ${String(docId)} is a number JSON cannot carry exactly (beyond 2^53, or not an ` +
          'integer); write it as a string.',
      );
    if (body !== undefined && typeof body !== 'string')
      throw new IndexError(`${file}:${line}: field 'text' must be a string.`);
    if (title !== undefined && title !== null && typeof title !== 'string')
      throw new IndexError(`${file}:${line}: field 'title' must be a string.`);
    if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)))
      throw new IndexError(`${file}:${line}: field 'metadata' must be an object.`);
    const sid = wellFormed(String(docId));
    if (seen.has(sid)) throw new IndexError(`${file}:${line}: document id '${sid}' appears twice.`);
    seen.add(sid);
    const meta = { ...rest, ...(metadata as Record<string, unknown> | undefined) };
    yield {
      id: sid,
      title: wellFormed((title as string | undefined) ?? ''),
      text: wellFormed((body as string | undefined) ?? ''),
      ...(Object.keys(meta).length > 0 ? { metadata: meta } : {}),
    };
  }
}

const TEXT_FILE = /\.(txt|md|markdown)$/i;

/** The .txt/.md files under root, in name order (see listFilesUnder: which links are followed). */
function listTextFiles(root: string, opts: ReadDocumentsOptions): Promise<string[]> {
  return listFilesUnder(root, (name) => TEXT_FILE.test(name), opts.onSkip);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A text file as a document, or why it is not one (NUL bytes: binary; invalid UTF-8: another encoding). */
async function readTextFile(root: string, file: string): Promise<SourceDocument | SkipReason> {
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
