/**
 * Language-model data: documents from text/JSONL files, tokenized into one stream per split with the
 * separator token before every document, packed into fixed-length sequences. Train and validation are
 * separate streams, so no sequence crosses a split. The token streams are cached in the run folder
 * (keyed by the tokenizer and the input files' sizes and times), so a resumed run does not re-tokenize.
 */
import { existsSync, promises as fsp, realpathSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { writeFileAtomically, writeTextFileAtomically } from '../../io/atomic-file.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { listInputFiles, listInputFilesReported } from '../../model/bpe-trainer.js';
import { type TokenStream, tokenizeFiles, tokenizeThreads } from './tokenize-files.js';
import { epochOrder } from '../training-run.js';
import { RunFolderError } from '../run-folder-error.js';
import { makeFolder } from '../../io/make-folder.js';

/** A split's token stream from cachedTokenStream: whether it came from the cache, and why not. */
export interface CachedTokenStream extends TokenStream {
  cached: boolean;
  /** Seconds spent tokenizing now (0 from the cache), and on how many threads. */
  seconds: number;
  threads: number;
  files: string[];
  /** A line per reason files under the inputs' folders were left out (listInputFilesReported). */
  skipped: string[];
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
 * Refuses a validation file that is a training file too (one inside a training folder, or named in both):
 * its loss would be measured on text the model trains on, and look better than it is.
 */
export async function checkSplitsApart(train: readonly string[], valid: readonly string[]): Promise<void> {
  if (valid.length === 0) return;
  const trained = new Set((await listInputFiles(train)).map((f) => realpathSync(f)));
  const both = (await listInputFiles(valid)).find((f) => trained.has(realpathSync(f)));
  if (both !== undefined) {
    throw new RunFolderError(
      `${both} is among the files of both data.train and data.valid, so the validation loss would be measured ` +
        'on text the model trains on; move it out of the training folder, or name the training files one by one.',
    );
  }
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
  const { files, skipped } = await listInputFilesReported(inputs);
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
  if ('tokens' in found) return { ...found, cached: true, files, skipped, damage: null, seconds: 0, threads: 0 };
  const started = performance.now();
  const threads = Math.max(1, Math.min(tokenizeThreads(), files.length));
  const s = await tokenizeFiles(files, tokenizer, separator, threads);
  const seconds = (performance.now() - started) / 1000;
  await makeFolder(cacheDir);
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
  return { ...s, cached: false, files, skipped, damage: found.damage, seconds, threads };
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
