/**
 * Language-model data: documents from text/JSONL files, tokenized into one stream per split with the
 * separator token before every document, packed into fixed-length sequences. Train and validation are
 * separate streams, so no sequence crosses a split. The token streams are cached in the run folder
 * (keyed by the tokenizer and the input files' sizes and times), so a resumed run does not re-tokenize.
 */
import { createReadStream, existsSync, promises as fsp, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { writeFileAtomically, writeTextFileAtomically } from '../../io/atomic-file.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { InputFileError, jsonlDocumentText, listInputFiles } from '../../model/bpe-trainer.js';
import { workerExecArgv } from '../../io/worker-exec-argv.js';
import { epochOrder } from '../training-run.js';

/**
 * The documents of a file: `.jsonl` gives one per line ("title" and "text" joined by a newline);
 * any other file is one document.
 */
export async function* readDocuments(file: string): AsyncGenerator<string> {
  if (!file.endsWith('.jsonl')) {
    const text = await fsp.readFile(file, 'utf8');
    if (text.trim() !== '') yield text;
    return;
  }
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    const text = jsonlDocumentText(line, file, n);
    if (text !== '') yield text;
  }
}

/** A split's token stream: the separator, then each document's tokens followed by the separator. */
export interface TokenStream {
  tokens: Int32Array;
  documents: number;
}

/** The tokens of each document of `files`, in order, each followed by the separator (no leading one). */
export async function tokenizeDocuments(
  files: readonly string[],
  tokenizer: Tokenizer,
  separator: number,
): Promise<TokenStream> {
  let buf = new Int32Array(1 << 20);
  let n = 0;
  const push = (id: number): void => {
    if (n === buf.length) {
      const b = new Int32Array(buf.length * 2);
      b.set(buf);
      buf = b;
    }
    buf[n++] = id;
  };
  let documents = 0;
  for (const f of files) {
    for await (const doc of readDocuments(f)) {
      for (const id of tokenizer.encode(doc, { addSpecialTokens: false })) push(id);
      push(separator);
      documents++;
    }
  }
  return { tokens: buf.slice(0, n), documents };
}

/** A file for a tokenizing thread, and its answer. */
export interface TokenizeTask {
  index: number;
  file: string;
}
export type TokenizeReply =
  { index: number; tokens: Int32Array; documents: number } | { index: number; error: string; inputFile: boolean };

/**
 * The split's stream: the separator, then each document's tokens followed by the separator. Files are
 * tokenized on up to `threads` worker threads at once (default: one per core, at most one per file) and
 * joined in file order, so the stream is the same whatever the number of threads. Tokenizing is most of
 * what pretraining does before its first step (≈ 40 s for the gpu profile's shards on one core).
 */
export async function tokenizeFiles(
  files: readonly string[],
  tokenizer: Tokenizer,
  separator: number,
  threads = availableParallelism(),
): Promise<TokenStream> {
  const workers = Math.max(1, Math.min(threads, files.length));
  const parts =
    workers === 1
      ? [await tokenizeDocuments(files, tokenizer, separator)]
      : await tokenizeInThreads(files, tokenizer, separator, workers);
  const tokens = new Int32Array(1 + parts.reduce((s, p) => s + p.tokens.length, 0));
  tokens[0] = separator;
  let at = 1;
  for (const p of parts) {
    tokens.set(p.tokens, at);
    at += p.tokens.length;
  }
  return { tokens, documents: parts.reduce((s, p) => s + p.documents, 0) };
}

/** Each file's stream from a pool of `workers` threads, in file order; the first error stops them all. */
function tokenizeInThreads(
  files: readonly string[],
  tokenizer: Tokenizer,
  separator: number,
  workers: number,
): Promise<TokenStream[]> {
  const { tokenizerJson, tokenizerConfig } = tokenizer.toJSON();
  const parts = new Array<TokenStream>(files.length);
  const pool: Worker[] = [];
  return new Promise<TokenStream[]>((resolve, reject) => {
    let next = 0,
      done = 0,
      failed = false;
    const stop = (e: Error): void => {
      if (failed) return;
      failed = true;
      for (const w of pool) void w.terminate();
      reject(e);
    };
    const give = (w: Worker): void => {
      if (next < files.length) {
        const task: TokenizeTask = { index: next, file: files[next++] };
        w.postMessage(task);
      } else void w.terminate();
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./tokenize-worker.js', import.meta.url), {
        workerData: { tokenizerJson, tokenizerConfig, separator },
        execArgv: workerExecArgv(process.execArgv),
      });
      pool.push(w);
      w.on('message', (r: TokenizeReply) => {
        if ('error' in r) return stop(r.inputFile ? new InputFileError(r.error) : new Error(r.error));
        parts[r.index] = { tokens: r.tokens, documents: r.documents };
        if (++done < files.length) return give(w);
        for (const x of pool) void x.terminate();
        resolve(parts);
      });
      w.once('error', stop);
      give(w);
    }
  });
}

/** A split's token stream from cachedTokenStream: whether it came from the cache, and why not. */
export interface CachedTokenStream extends TokenStream {
  cached: boolean;
  files: string[];
  /** A sentence naming the cache file that was damaged and tokenized again; null when none was. */
  damage: string | null;
}

interface CacheMeta {
  key: string;
  documents: number;
  tokens: number;
  sha256: string;
}

/**
 * Token streams for `inputs`, from `cacheDir` when it holds them for the same tokenizer and unchanged
 * files, else tokenized now and cached (written to a temp file, then renamed). The cache records the
 * stream's SHA-256, so a damaged cache is noticed (and rebuilt) instead of training on wrong tokens.
 */
export async function cachedTokenStream(
  name: string,
  inputs: readonly string[],
  tokenizer: Tokenizer,
  separator: number,
  cacheDir: string,
): Promise<CachedTokenStream> {
  const files = await listInputFiles(inputs);
  const key = createHash('sha256')
    .update(JSON.stringify(tokenizer.toJSON()))
    .update(
      JSON.stringify({
        separator,
        files: files.map((f) => {
          const s = statSync(f);
          return [path.resolve(f), s.size, s.mtimeMs];
        }),
      }),
    )
    .digest('hex');
  const bin = path.join(cacheDir, `${name}.tokens`),
    meta = path.join(cacheDir, `${name}.json`);
  const found = await readCache(bin, meta, key);
  if ('tokens' in found) return { ...found, cached: true, files, damage: null };
  const s = await tokenizeFiles(files, tokenizer, separator);
  await fsp.mkdir(cacheDir, { recursive: true });
  const bytes = new Uint8Array(s.tokens.buffer, s.tokens.byteOffset, s.tokens.byteLength);
  await writeFileAtomically(bin, (tmp) => fsp.writeFile(tmp, bytes));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const written: CacheMeta & { files: string[] } = {
    key,
    documents: s.documents,
    tokens: s.tokens.length,
    sha256,
    files,
  };
  await writeTextFileAtomically(meta, JSON.stringify(written, null, 1));
  return { ...s, cached: false, files, damage: found.damage };
}

/**
 * The cached stream when it is there, for `key`, and intact; else why not: damage (a sentence naming
 * the file) or null (no cache, or one for other inputs or from before the cache kept a checksum).
 */
async function readCache(bin: string, meta: string, key: string): Promise<TokenStream | { damage: string | null }> {
  const hasBin = existsSync(bin),
    hasMeta = existsSync(meta);
  if (!hasBin && !hasMeta) return { damage: null };
  if (!hasMeta) return { damage: `${meta} is missing (${path.basename(bin)} is there)` };
  let m: unknown;
  try {
    m = JSON.parse(await fsp.readFile(meta, 'utf8'));
  } catch (e) {
    return { damage: `${meta} is not valid JSON (${(e as Error).message})` };
  }
  if (!isCacheMeta(m)) return { damage: `${meta} is not a token cache record` };
  if (m.key !== key || typeof m.sha256 !== 'string') return { damage: null };
  if (!hasBin) return { damage: `${bin} is missing` };
  const b = await fsp.readFile(bin);
  if (b.length !== m.tokens * 4 || createHash('sha256').update(b).digest('hex') !== m.sha256) {
    return { damage: `${bin} does not match the SHA-256 in ${path.basename(meta)}` };
  }
  return { tokens: new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)), documents: m.documents };
}

function isCacheMeta(m: unknown): m is Omit<CacheMeta, 'sha256'> & { sha256?: unknown } {
  if (typeof m !== 'object' || m === null) return false;
  const { key, documents, tokens } = m as Record<string, unknown>;
  return typeof key === 'string' && Number.isSafeInteger(documents) && Number.isSafeInteger(tokens);
}

/**
 * Sequences of `seqLength` inputs cut from a stream: sequence i reads tokens [i·L, i·L + L] — inputs
 * the first L, targets the last L (each token predicts the next). Consecutive sequences share one
 * boundary token, so every token but the first is a target once; a last partial sequence is dropped.
 */
export class PackedSequences {
  readonly count: number;
  constructor(
    readonly stream: Int32Array,
    readonly seqLength: number,
  ) {
    this.count = Math.max(0, Math.floor((stream.length - 1) / seqLength));
  }

  /** Inputs and targets of the given sequences, each [indices.length · seqLength], row-major. */
  batch(indices: readonly number[]): { ids: Int32Array; targets: Int32Array } {
    const L = this.seqLength;
    const ids = new Int32Array(indices.length * L),
      targets = new Int32Array(indices.length * L);
    indices.forEach((s, r) => {
      if (!Number.isInteger(s) || s < 0 || s >= this.count) throw new RangeError(`sequence ${s} of ${this.count}`);
      ids.set(this.stream.subarray(s * L, s * L + L), r * L);
      targets.set(this.stream.subarray(s * L + 1, s * L + L + 1), r * L);
    });
    return { ids, targets };
  }
}

/**
 * The order of `n` sequences in `epoch`: a shuffle seeded by (seed, epoch), the same on every run, with
 * pretraining's own mixing of the two (epochOrder says why each trainer keeps its own).
 */
export function sequenceOrder(n: number, seed: number, epoch: number): number[] {
  return epochOrder(n, (seed * 1_000_003 + epoch * 7919 + 17) >>> 0);
}
