/**
 * A corpus's document embeddings kept in a work folder in shards (`shard-00000.npy` with its ids
 * sidecar, and a record written last with its wall time and SHA-256s), so that a killed evaluation
 * continues from the last finished shard and a later one with the same model and corpus reuses them.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { readRecord, readVerified, sumsOf, type Sums } from './cache-record.js';
import type { EmbeddingMatrix } from './dense-search.js';
import { idsSidecarPath, readNpyEmbeddings, writeNpyEmbeddings } from './embeddings-file.js';
import { writeTextFileAtomic } from './run.js';

export interface ShardedEmbeddings {
  matrix: EmbeddingMatrix;
  /** Encoding time of all shards (from their records when reused). */
  seconds: number;
  /** Every shard came from the folder. */
  reused: boolean;
}

interface ShardRecord {
  seconds: number;
  documents: number;
  sha256?: Sums;
}

/**
 * Documents per shard: a kill loses at most this much encoding. Also the documents per embedDocuments call
 * wherever a corpus is embedded (embedCorpus), since an encoder holds the token ids of all it is given.
 */
export const DOCUMENT_SHARD = 1024;

export interface ShardEncoder {
  /** Made ready before the first shard that needs encoding (a model loaded), outside the timed work. */
  prepare?: () => Promise<void>;
  /** The texts of documents start..end-1, in order, as rows of `dim` floats. */
  encode: (texts: string[], start: number) => { vectors: Float32Array; dim: number };
}

/**
 * Embeddings of `ids` (in order), shard by shard: a shard whose record matches its files is read back,
 * any other is encoded (the texts of that shard, in order) and saved.
 */
export async function shardedEmbeddings(
  folder: string,
  ids: readonly string[],
  texts: (start: number, end: number) => string[],
  encoder: ShardEncoder,
  warn: (line: string) => void,
): Promise<ShardedEmbeddings> {
  // every shard's rows go straight into the one matrix, made when the first shard gives the dimension: shards
  // gathered and then joined would hold the corpus's embeddings twice
  let data: Float32Array | undefined;
  const place = (rows: Float32Array, start: number, d: number): void => {
    data ??= new Float32Array(ids.length * d);
    data.set(rows, start * d);
  };
  let seconds = 0,
    dim = 0,
    reused = true;
  for (let start = 0, shard = 0; start < ids.length; start += DOCUMENT_SHARD, shard++) {
    const end = Math.min(ids.length, start + DOCUMENT_SHARD);
    const file = path.join(folder, `shard-${String(shard).padStart(5, '0')}.npy`);
    const recordFile = file.replace(/\.npy$/, '.json');
    const record = readRecord<ShardRecord>(recordFile);
    const files = [file, idsSidecarPath(file)];
    const cached =
      record?.documents === end - start &&
      (await readVerified(files, recordFile, record.sha256, () => readNpyEmbeddings(file), warn));
    if (record && cached) {
      place(cached.data, start, cached.dim);
      dim = cached.dim;
      seconds += record.seconds;
      continue;
    }
    if (reused) await encoder.prepare?.();
    reused = false;
    const t0 = performance.now();
    const out = encoder.encode(texts(start, end), start);
    dim = out.dim;
    const took = (performance.now() - t0) / 1000;
    writeNpyEmbeddings(file, { ids: ids.slice(start, end), dim, data: out.vectors });
    writeTextFileAtomic(
      recordFile,
      JSON.stringify({ seconds: took, documents: end - start, sha256: await sumsOf(files) }) + '\n',
    );
    place(out.vectors, start, dim);
    seconds += took;
    await new Promise((r) => setImmediate(r)); // let progress output through between shards
  }
  return { matrix: { ids: [...ids], dim, data: data ?? new Float32Array(0) }, seconds, reused };
}

/** The encoding time the shard records in `folder` keep (0 when there are none). */
export function shardedEmbeddingSeconds(folder: string): number {
  const records = existsSync(folder) ? readdirSync(folder).filter((f) => /^shard-\d+\.json$/.test(f)) : [];
  return records.reduce((sum, f) => sum + (readRecord<ShardRecord>(path.join(folder, f))?.seconds ?? 0), 0);
}
