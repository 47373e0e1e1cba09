/**
 * What the index and the server need from an embedding model, whether it runs in this process
 * (LocalBackend over an Embedder) or behind OpenAI-compatible servers (serve/remote-embedder.ts).
 * Everything is async so a remote backend fits the same shape.
 */
import {
  Embedder,
  type EmbedderOptions,
  type PromptTemplates,
  type QueryEmbedding,
  type QueryOptions,
  requireEmbedToken,
} from '../embed/index.js';
import { runStepsYielding } from '../model/generate.js';
import { loadModelFolder } from '../model/model-folder.js';
import path from 'node:path';
import { modelFingerprint } from '../model/model-fingerprint.js';
import { type ModelFusion, readModelFusion } from './model-fusion.js';
import { IndexError } from './index-error.js';
import { checkPathArgument } from '../io/option-checks.js';

export interface DocumentEmbeddings {
  vectors: Float32Array[];
  /** How many of the texts were cut to fit the context. */
  truncated: number;
}

/** Positions [start, end) among the texts of one backend call. */
export interface InputRange {
  start: number;
  end: number;
}

/**
 * The texts of its call a backend's error is about, when it says (a remote backend's failed request covers
 * some of them): an index then names their documents.
 */
export function failedInputs(e: unknown): InputRange | undefined {
  const r = (e as { failedInputs?: unknown } | null)?.failedInputs as Partial<InputRange> | undefined;
  return typeof r?.start === 'number' && typeof r.end === 'number' ? { start: r.start, end: r.end } : undefined;
}

export interface EmbeddingBackend {
  /** Identity of the weights that produce the vectors (see model-fingerprint.ts). */
  readonly modelId: string;
  readonly dimension: number;
  readonly templates: PromptTemplates;
  /** Longest prompt in tokens; longer texts are cut, so it is part of what produced a vector. */
  readonly maxLength: number;
  /** One L2-normalised vector per document, in input order. */
  embedDocuments(texts: readonly string[]): Promise<Float32Array[]>;
  /** embedDocuments that also says how many texts were cut to fit maxLength (where the backend can tell). */
  encodeDocuments?(texts: readonly string[]): Promise<DocumentEmbeddings>;
  embedQueries(texts: readonly string[], opts?: QueryOptions): Promise<QueryEmbedding[]>;
  /** The fusion hybrid search uses with this model (its folder's search-r3.json); absent: plain RRF, k = 60. */
  readonly fusion?: ModelFusion;
  close?(): Promise<void>;
}

/** The Search-R3 model in this process. Forward passes are synchronous CPU work (native kernels use all cores). */
export class LocalBackend implements EmbeddingBackend {
  /** `source` says where the model came from (its folder), for the index manifest and /health. */
  constructor(
    readonly embedder: Embedder,
    readonly modelId: string,
    readonly source: string = modelId,
    readonly fusion?: ModelFusion,
  ) {}

  static async fromModelDir(dir: string, opts: EmbedderOptions = {}): Promise<LocalBackend> {
    checkPathArgument(dir, 'the model folder', (m) => new IndexError(m));
    const loaded = await loadModelFolder(dir, { checkTokenizer: (t) => requireEmbedToken(t, dir) });
    return new LocalBackend(
      new Embedder(loaded.model, loaded.tokenizer, opts),
      await modelFingerprint(dir),
      path.resolve(dir),
      readModelFusion(dir),
    );
  }

  get dimension(): number {
    return this.embedder.dimension;
  }
  get templates(): PromptTemplates {
    return this.embedder.templates;
  }
  get maxLength(): number {
    return this.embedder.maxLength;
  }

  async embedDocuments(texts: readonly string[]): Promise<Float32Array[]> {
    return this.embedder.embedDocuments(texts).vectors;
  }

  async encodeDocuments(texts: readonly string[]): Promise<DocumentEmbeddings> {
    // between the forward passes, index's Ctrl-C handler gets its turn
    const { vectors, stats } = await runStepsYielding(this.embedder.documentSteps(texts));
    return { vectors, truncated: stats.truncatedTexts };
  }

  async embedQueries(texts: readonly string[], opts: QueryOptions = {}): Promise<QueryEmbedding[]> {
    return this.embedder.embedQueries(texts, opts);
  }
}
