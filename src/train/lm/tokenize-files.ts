/**
 * Pretraining text into one token stream: each file's documents (readDocuments), tokenized on worker
 * threads, one file at a time per thread, and joined in file order. This module imports no tensor code,
 * so that its threads load only the tokenizer (tokenize-worker.ts).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { threadsSetting } from '../../io/env-settings.js';
import { workerExecArgv } from '../../io/worker-exec-argv.js';
import { InputFileError, jsonlDocumentText, readUtf8File, readUtf8Lines } from '../../model/bpe-trainer.js';
import type { Tokenizer } from '../../model/tokenizer.js';

/**
 * The documents of a file: `.jsonl` gives one per line ("title" and "text" joined by a newline; lines
 * without either are skipped, and a file of only such lines is an InputFileError, as the tokenizer trainer
 * refuses one); any other file is one document. Read as strict UTF-8, as the tokenizer trainer reads: a file
 * that is not text (a .gz) is refused rather than learned as replacement characters.
 */
export async function* readDocuments(file: string): AsyncGenerator<string> {
  if (!file.endsWith('.jsonl')) {
    const text = await readUtf8File(file);
    if (text.trim() !== '') yield text;
    return;
  }
  let documents = 0;
  let firstWithout: { line: number; keys: string[] } | null = null;
  for await (const { text: line, line: n } of readUtf8Lines(file)) {
    if (line.trim() === '') continue;
    const text = jsonlDocumentText(line, file, n);
    if (text !== '') {
      documents++;
      yield text;
    } else firstWithout ??= { line: n, keys: Object.keys(JSON.parse(line) as object) };
  }
  // a file in another layout ({"body"}, {"content"}) would give no document and train or validate on nothing
  if (documents === 0 && firstWithout !== null) {
    const keys = firstWithout.keys.map((k) => JSON.stringify(k)).join(', ') || 'none';
    throw new InputFileError(
      `${file}:${firstWithout.line}: no line has a non-empty string "title" or "text" (this one's keys: ${keys}); ` +
        'each line of a .jsonl document file is {"title", "text"}',
    );
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

/** A file for a tokenizing thread, and its answer (an error as its name, message and code). */
export interface TokenizeTask {
  index: number;
  file: string;
}
export type TokenizeReply =
  | { index: number; tokens: Int32Array; documents: number }
  | { index: number; error: { name: string; message: string; code?: string } };

/** The threads tokenizeFiles uses by default: SEARCH_R3_THREADS, else one per core. */
export function tokenizeThreads(): number {
  return threadsSetting() ?? availableParallelism();
}

/**
 * The split's stream: the separator, then each document's tokens followed by the separator. Files are
 * tokenized on up to `threads` worker threads at once (at most one per file) and joined in file order, so
 * the stream is the same whatever the number of threads. Tokenizing is most of what pretraining does
 * before its first step (the gpu profile's 7 shards: docs/default-model-v2.md).
 */
export async function tokenizeFiles(
  files: readonly string[],
  tokenizer: Tokenizer,
  separator: number,
  threads = tokenizeThreads(),
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

/** The error a thread reported, as it was thrown there (InputFileError stays one, for the CLI's message). */
function rebuilt(e: { name: string; message: string; code?: string }): Error {
  const err = e.name === 'InputFileError' ? new InputFileError(e.message) : new Error(e.message);
  err.name = e.name;
  if (e.code !== undefined) Object.assign(err, { code: e.code });
  return err;
}

/**
 * Each file's stream from a pool of `workers` threads, in file order. A failure stops handing out files, and
 * the error reported is the first failing file's in argument order, as one thread reports it: the files before
 * it that are still being tokenized are waited for, else the same faulty files gave one message or another
 * depending on which thread finished first.
 */
function tokenizeInThreads(
  files: readonly string[],
  tokenizer: Tokenizer,
  separator: number,
  workers: number,
): Promise<TokenStream[]> {
  const { tokenizerJson, tokenizerConfig } = tokenizer.toJSON();
  const parts = new Array<TokenStream>(files.length);
  const pool: Worker[] = [];
  // threads ended here, once they have no file left: their exit is no failure
  const retired = new Set<Worker>();
  return new Promise<TokenStream[]>((resolve, reject) => {
    let next = 0,
      done = 0,
      settled = false;
    // the files handed out and not answered yet, and the failure of the first file in order so far
    const inFlight = new Set<number>();
    let failed: { index: number; error: Error } | null = null;
    const end = (e: Error | null): void => {
      if (settled) return;
      settled = true;
      for (const w of pool) retire(w);
      if (e) reject(e);
      else resolve(parts);
    };
    const retire = (w: Worker): void => {
      retired.add(w);
      void w.terminate();
    };
    const give = (w: Worker): void => {
      if (next >= files.length || failed !== null) return retire(w);
      const task: TokenizeTask = { index: next, file: files[next++] };
      inFlight.add(task.index);
      w.postMessage(task);
    };
    /** Ends with the first failure in file order once no earlier file is still being tokenized. */
    const failWhenFirst = (): void => {
      if (failed !== null && ![...inFlight].some((i) => i < failed!.index)) end(failed.error);
    };
    try {
      for (let i = 0; i < workers; i++) {
        const w = new Worker(new URL('./tokenize-worker.js', import.meta.url), {
          workerData: { tokenizerJson, tokenizerConfig, separator },
          execArgv: workerExecArgv(process.execArgv),
        });
        pool.push(w);
        w.on('message', (r: TokenizeReply) => {
          inFlight.delete(r.index);
          if ('error' in r && (failed === null || r.index < failed.index))
            failed = { index: r.index, error: rebuilt(r.error) };
          if (!('error' in r)) parts[r.index] = { tokens: r.tokens, documents: r.documents };
          if (failed !== null) {
            retire(w);
            return failWhenFirst();
          }
          if (++done === files.length) end(null);
          else give(w);
        });
        w.once('error', end);
        // a thread that ends before its files are done (killed, out of memory) must not leave this waiting
        w.once('exit', (code) => {
          if (!retired.has(w))
            end(new Error(`a tokenizing thread stopped (exit code ${code}) before its file was done`));
        });
        give(w);
      }
    } catch (e) {
      end(e instanceof Error ? e : new Error(String(e)));
    }
  });
}
