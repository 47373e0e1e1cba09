/**
 * What SearchIndex's methods accept, checked where a call enters, before anything is read, written or embedded:
 * a bad argument is one IndexError naming it and what it must be (in the words of io/option-checks.ts, as the CLI
 * and the server say it), never a crash in native code, a silent default, or a later report that the index is
 * damaged.
 */
import { QUERY_OPTION_NAMES, checkQueryOptions } from '../embed/index.js';
import {
  type Refuse,
  NON_NEGATIVE_INTEGER,
  POSITIVE_INTEGER,
  checkFlag,
  checkKnownKeys,
  checkNumber,
  checkOptionsObject,
  refusal,
  showValue,
} from '../io/option-checks.js';
import type { EmbeddingBackend } from './embedding-backend.js';
import { IndexError } from './index-error.js';
import { DEFAULT_HNSW, HNSW_FIELDS, chosenFieldProblem } from './manifest.js';

const refuse: Refuse = (message) => new IndexError(message);

const OPEN_OPTIONS = ['backend', 'create', 'writable', 'threads', 'saveBm25'] as const;
const CREATE_OPTIONS = ['dtype', 'hnsw', 'store', 'storeUri'] as const;
/** searchVector's options (RankOptions); search takes the query options in place of the query text. */
const RANK_OPTIONS = ['k', 'hybrid', 'candidates', 'exact', 'queryText'] as const;
const SEARCH_OPTIONS = [...RANK_OPTIONS.filter((k) => k !== 'queryText'), ...QUERY_OPTION_NAMES];

/**
 * The options of SearchIndex.open. `create`'s fields are checked by the manifest's reader's own check, with
 * the defaults a new index would get: what it refuses could never be opened again.
 */
export function checkOpenOptions(opts: unknown): void {
  const o = checkOptionsObject(opts, 'the options of SearchIndex.open', refuse);
  checkKnownKeys(o, 'SearchIndex.open', OPEN_OPTIONS, refuse);
  checkBackend(o.backend);
  checkFlag(o.writable, "'writable'", refuse);
  checkFlag(o.saveBm25, "'saveBm25'", refuse);
  checkNumber(o.threads, "'threads'", NON_NEGATIVE_INTEGER, refuse);
  if (o.create === undefined) return;
  const create = checkOptionsObject(o.create, "'create'", refuse);
  checkKnownKeys(create, "'create'", CREATE_OPTIONS, refuse);
  const hnsw = checkOptionsObject(create.hnsw, "'create.hnsw'", refuse);
  checkKnownKeys(hnsw, "'create.hnsw'", HNSW_FIELDS, refuse);
  const problem = chosenFieldProblem({
    dtype: create.dtype ?? 'f32',
    store: create.store ?? 'local',
    storeUri: create.storeUri,
    hnsw: { ...DEFAULT_HNSW, ...hnsw },
  });
  if (problem) {
    const [field, sub] = problem.field.split('.');
    throw refuse(refusal(`'create.${problem.field}'`, problem.want, sub ? hnsw[sub] : create[field]));
  }
  // dtype is the HNSW file's storage; a LanceDB table holds float32 vectors whatever the manifest would say
  const lancedb = (create.store ?? (create.storeUri !== undefined ? 'lancedb' : 'local')) === 'lancedb';
  if (lancedb && create.dtype !== undefined && create.dtype !== 'f32')
    throw refuse(
      refusal("'create.dtype'", "'f32' or left out with the LanceDB store, which keeps float32 vectors", create.dtype),
    );
}

/**
 * The backend, where one is given: a model folder's path, or a backend's promise not awaited, in its place would
 * otherwise be taken for a model of no dimension, and a new index written so could not be opened again.
 */
function checkBackend(b: unknown): void {
  if (b === undefined) return;
  const o = (typeof b === 'object' && b !== null ? b : {}) as Partial<Record<keyof EmbeddingBackend, unknown>>;
  const dimension = o.dimension;
  const usable =
    typeof o.modelId === 'string' &&
    typeof dimension === 'number' &&
    Number.isInteger(dimension) &&
    dimension > 0 &&
    typeof o.embedDocuments === 'function' &&
    typeof o.embedQueries === 'function';
  if (usable) return;
  throw refuse(
    `'backend' must be an embedding backend, awaited: await LocalBackend.fromModelDir(dir), ` +
      `WorkerBackend.start(dir) or RemoteEmbedder.connect(urls) (got ${showValue(b)}).`,
  );
}

/** A search's query text and options, before the query is embedded (reasoning may take seconds). */
export function checkSearch(query: unknown, opts: unknown): void {
  if (typeof query !== 'string') throw refuse(refusal('the query', 'a string', query));
  checkRankOptions(opts, 'search', SEARCH_OPTIONS);
  checkQueryOptions(opts, refuse);
}

/**
 * How many documents a search returns and how it ranks them (SearchIndex.searchVector's options, or search's,
 * `known` then naming the query options too).
 */
export function checkRankOptions(
  opts: unknown,
  method = 'searchVector',
  known: readonly string[] = RANK_OPTIONS,
): void {
  const o = checkOptionsObject(opts, 'the search options', refuse);
  checkKnownKeys(o, method, known, refuse);
  checkNumber(o.k, "'k'", POSITIVE_INTEGER, refuse);
  checkNumber(o.candidates, "'candidates'", POSITIVE_INTEGER, refuse);
  checkFlag(o.hybrid, "'hybrid'", refuse);
  checkFlag(o.exact, "'exact'", refuse);
  if (o.queryText !== undefined && typeof o.queryText !== 'string')
    throw refuse(refusal("'queryText'", 'a string', o.queryText));
}

/**
 * searchVector's query vector: a Float32Array of finite numbers. Another array reaches usearch as memory it
 * misreads (no hits, or "Out of memory"), and a NaN or ±Infinity gives every document the score 1.
 */
export function checkQueryVector(vector: unknown): void {
  if (!(vector instanceof Float32Array))
    throw refuse(refusal('the query vector', 'a Float32Array (Float32Array.from(numbers) makes one)', vector));
  const at = vector.findIndex((x) => !Number.isFinite(x));
  if (at >= 0) throw refuse(`the query vector must hold finite numbers (element ${at} is ${vector[at]}).`);
}

/** exactSearch's arguments: the query vector as searchVector takes it, and how many hits (a positive integer). */
export function checkExactSearch(vector: unknown, k: unknown): void {
  checkQueryVector(vector);
  if (k === undefined) throw refuse("exactSearch needs 'k', how many hits to return (a positive integer).");
  checkNumber(k, "'k'", POSITIVE_INTEGER, refuse);
}

/**
 * commitEncoded's arguments: a chunk of pendingChunks and one Float32Array of the index's dimension per document,
 * every element finite. A vector of another type is stored as other bytes (a Float64Array as twice the floats,
 * which breaks every later search), and a NaN one scores 1 for every query.
 */
export function checkEncodedChunk(chunk: unknown, vectors: unknown, dimension: number): void {
  if (!Array.isArray(chunk)) throw refuse(refusal('the chunk', 'an array of pendingChunks', chunk));
  if (!Array.isArray(vectors))
    throw refuse(refusal('the vectors', `an array of Float32Array, one per document of the chunk`, vectors));
  if (vectors.length !== chunk.length)
    throw refuse(`the chunk has ${chunk.length} documents and ${vectors.length} vectors; give one per document.`);
  for (let i = 0; i < vectors.length; i++) {
    const v: unknown = vectors[i];
    const what = `vectors[${i}]`;
    if (ArrayBuffer.isView(v) && !(v instanceof Float32Array))
      throw refuse(`${what} is a ${v.constructor.name}; give a Float32Array (Float32Array.from(it)).`);
    if (!(v instanceof Float32Array)) throw refuse(refusal(what, 'a Float32Array (Float32Array.from(numbers))', v));
    if (v.length !== dimension) throw refuse(`${what} has ${v.length} numbers; the index's vectors have ${dimension}.`);
    const at = v.findIndex((x) => !Number.isFinite(x));
    if (at >= 0) throw refuse(`${what} must hold finite numbers (element ${at} is ${v[at]}).`);
  }
}

/** addDocuments' and encodePending's options: the chunk size a commit takes, and the callbacks. */
export function checkAddOptions(opts: unknown): void {
  const o = checkOptionsObject(opts, 'the options of addDocuments', refuse);
  checkNumber(o.documentsPerCommit, "'documentsPerCommit'", POSITIVE_INTEGER, refuse);
  checkNumber(o.chunkSize, "'chunkSize'", POSITIVE_INTEGER, refuse);
  for (const k of ['onProgress', 'onChunkCommitted'])
    if (o[k] !== undefined && typeof o[k] !== 'function') throw refuse(refusal(`'${k}'`, 'a function', o[k]));
}

/** A chunk size given on its own (pendingChunks' documentsPerCommit, which it needs). */
export function checkChunkSize(n: unknown): void {
  if (n === undefined) throw refuse("pendingChunks needs 'documentsPerCommit', the documents of a chunk.");
  checkNumber(n, "'documentsPerCommit'", POSITIVE_INTEGER, refuse);
}

/**
 * The documents of one addDocuments or stageDocuments call, as SourceDocument says they are: a non-empty string
 * id given once, string title and text ('' for none), metadata a plain object that JSON can store, or none.
 * Coerced, a number id or text would be stored as another value than its checksum was taken of, and the row
 * later reported damaged and deleted; an id given twice would be staged twice, the last silently winning.
 */
export function checkDocuments(docs: unknown): void {
  if (!Array.isArray(docs)) throw refuse(refusal('the documents', 'an array of { id, title, text, metadata? }', docs));
  // an indexed loop: forEach skips the holes of a sparse array ([a, , b]), which would then fail inside the index
  const check = documentChecker();
  for (let i = 0; i < docs.length; i++) check(docs[i], i);
}

/**
 * checkDocuments one document at a time, for documents that arrive as a stream: the checker is called with each
 * document and its position among those given so far.
 */
export function documentChecker(): (d: unknown, i: number) => void {
  const first = new Map<string, number>();
  return (d, i) => {
    const at = `documents[${i}]`;
    if (typeof d !== 'object' || d === null || Array.isArray(d))
      throw refuse(refusal(at, 'an object { id, title, text, metadata? }', d));
    const { id, title, text, metadata } = d as Record<string, unknown>;
    if (typeof id !== 'string' || id === '') throw refuse(refusal(`${at}.id`, 'a non-empty string', id));
    const of = ` (id ${showValue(id)})`;
    for (const [field, v] of [
      ['title', title],
      ['text', text],
    ] as const)
      if (typeof v !== 'string') throw refuse(refusal(`${at}.${field}${of}`, "a string, '' for none", v));
    if (metadata !== undefined) {
      if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
        throw refuse(refusal(`${at}.metadata${of}`, 'an object, or left out', metadata));
      try {
        JSON.stringify(metadata);
      } catch (e) {
        throw refuse(`${at}.metadata${of} cannot be stored as JSON (${(e as Error).message.split('\n')[0]}).`);
      }
    }
    const earlier = first.get(id);
    if (earlier !== undefined)
      throw refuse(
        `document id ${showValue(id)} appears twice, as documents[${earlier}] and documents[${i}]; give each ` +
          'document once.',
      );
    first.set(id, i);
  };
}

/** The ids deleteDocuments takes: an array of strings. */
export function checkIds(ids: unknown): void {
  if (!Array.isArray(ids)) throw refuse(refusal('the ids to delete', 'an array of strings', ids));
  ids.forEach((id, i) => {
    if (typeof id !== 'string') throw refuse(refusal(`ids[${i}]`, 'a string', id));
  });
}
