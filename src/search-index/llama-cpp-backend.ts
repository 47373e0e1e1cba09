/**
 * The llama.cpp engine (embed/llama-cpp-engine.ts) as an EmbeddingBackend, and whose model its vectors
 * count as.
 *
 * By default the model id is the GGUF's own fingerprint (gguf-sha256:...): an index built with it is
 * searched and extended with that GGUF only, because an f16 or q8_0 export is not the safetensors model
 * bit for bit (against search-r3's engine: cosine ≥ 0.9999 for f16, ≥ 0.99 for q8_0). With identity
 * 'source' it takes the id of the folder the GGUF was exported from, which the GGUF records
 * (search_r3.source_model), after checking that the folder still holds that model: then llama.cpp may
 * search an index that search-r3's engine built from the folder, and the other way round. The user opts
 * into that mix (--as-source-model); it is never silent.
 */
import path from 'node:path';
import type { PromptTemplates, QueryEmbedding, QueryOptions } from '../embed/index.js';
import { LlamaCppEngine, type LlamaCppEngineOptions } from '../embed/index.js';
import { ModelFileError } from '../model/model-file-error.js';
import type { DocumentEmbeddings, EmbeddingBackend } from './embedding-backend.js';
import { fileFingerprint, modelFingerprint } from '../model/model-fingerprint.js';
import { type ModelFusion, readModelFusion } from './model-fusion.js';

/** Whose id the vectors carry: the GGUF's own, or the folder's it was exported from. */
export type EngineIdentity = 'gguf' | 'source';

export interface LlamaCppBackendOptions extends LlamaCppEngineOptions {
  identity?: EngineIdentity;
}

/** The model id of an engine's vectors (see the file comment). */
export async function engineModelId(engine: LlamaCppEngine, identity: EngineIdentity): Promise<string> {
  if (identity === 'gguf') return fileFingerprint(engine.gguf);
  const recorded = engine.facts.sourceModel;
  if (recorded === null) {
    const why = 'records no source model (search-r3 export gguf did not write it), so it cannot stand for one';
    throw new ModelFileError(engine.gguf, `${why}; drop --as-source-model.`);
  }
  await checkGgufSource(engine, 'or drop --as-source-model');
  return recorded;
}

/**
 * Refuses a GGUF exported from other weights than its model folder now holds (retrained since): its figures
 * would be reported as the folder's model. A GGUF that records no source (not made by search-r3 export gguf)
 * cannot be checked and passes. `or` is the other way out, for the message.
 */
export async function checkGgufSource(engine: LlamaCppEngine, or = 'or name another GGUF with --gguf'): Promise<void> {
  const recorded = engine.facts.sourceModel;
  if (recorded === null) return;
  const folder = await modelFingerprint(engine.modelDir);
  if (folder === recorded) return;
  const why = `was exported from model ${recorded}, but ${engine.modelDir} now holds ${folder}`;
  throw new ModelFileError(engine.gguf, `${why}; export it again (search-r3 export gguf), ${or}.`);
}

export class LlamaCppBackend implements EmbeddingBackend {
  /** `source` is the model folder, as LocalBackend records it; `fusion` its stored hybrid fusion. */
  constructor(
    readonly engine: LlamaCppEngine,
    readonly modelId: string,
    readonly source: string,
    readonly fusion?: ModelFusion,
  ) {}

  static async open(opts: LlamaCppBackendOptions): Promise<LlamaCppBackend> {
    const engine = await LlamaCppEngine.open(opts);
    try {
      const id = await engineModelId(engine, opts.identity ?? 'gguf');
      return new LlamaCppBackend(engine, id, path.resolve(opts.modelDir), readModelFusion(opts.modelDir));
    } catch (e) {
      await engine.close();
      throw e;
    }
  }

  get dimension(): number {
    return this.engine.dimension;
  }
  get templates(): PromptTemplates {
    return this.engine.templates;
  }
  get maxLength(): number {
    return this.engine.maxLength;
  }

  async embedDocuments(texts: readonly string[]): Promise<Float32Array[]> {
    return (await this.engine.embedDocuments(texts)).vectors;
  }

  async encodeDocuments(texts: readonly string[]): Promise<DocumentEmbeddings> {
    const { vectors, stats } = await this.engine.embedDocuments(texts);
    return { vectors, truncated: stats.truncatedTexts };
  }

  embedQueries(texts: readonly string[], opts: QueryOptions = {}): Promise<QueryEmbedding[]> {
    return this.engine.embedQueries(texts, opts);
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}
