/**
 * LangChain.js Embeddings for Search-R3: documents take the document prompt, queries the query prompt
 * (optionally reasoning first). The model runs in this process (modelDir or backend) or on search-r3
 * servers (baseURL). LangChain's AsyncCaller wraps each call (maxConcurrency, maxRetries).
 */
import { Embeddings, type EmbeddingsParams } from '@langchain/core/embeddings';
import { type DeviceChoice, type QueryOptions, checkQueryOptions, checkTexts, useDevice } from '../embed/index.js';
import { POSITIVE_INTEGER, type Refuse, checkNumber, refusal } from '../io/option-checks.js';
import { LocalBackend, type EmbeddingBackend } from '../search-index/embedding-backend.js';
import { RemoteEmbedder, type RemoteOptions } from './remote-embedder.js';

export interface SearchR3EmbeddingsParams extends EmbeddingsParams {
  /** A model folder to load in this process. */
  modelDir?: string;
  /**
   * Where modelDir's model computes: useDevice(device) before it loads, which sets the device of this
   * whole process (default: as it is).
   */
  device?: DeviceChoice;
  /** Or one or more search-r3 servers (base URLs). */
  baseURL?: string | string[];
  /** Or a backend already built. */
  backend?: EmbeddingBackend;
  apiKey?: string;
  remote?: RemoteOptions;
  /** How embedQuery embeds (reasoning off by default). */
  query?: QueryOptions;
  /** Texts per backend call in embedDocuments (default 64). */
  batchSize?: number;
}

const refuse: Refuse = (message) => new Error(`SearchR3Embeddings: ${message}`);

export class SearchR3Embeddings extends Embeddings {
  private backendPromise?: Promise<EmbeddingBackend>;
  private readonly batchSize: number;

  constructor(private readonly fields: SearchR3EmbeddingsParams) {
    super(fields);
    const sources = [fields.modelDir, fields.baseURL, fields.backend].filter((x) => x !== undefined).length;
    if (sources !== 1) throw new Error('SearchR3Embeddings needs exactly one of modelDir, baseURL or backend.');
    if (fields.device && !fields.modelDir) throw new Error('SearchR3Embeddings: device goes with modelDir.');
    this.batchSize = checkNumber(fields.batchSize, "'batchSize'", POSITIVE_INTEGER, refuse) ?? 64;
    checkQueryOptions(fields.query, refuse, 'query.');
  }

  /**
   * The backend, loaded on first use. A load that failed is tried again at the next call: kept, a server down
   * when the app first embedded would fail every later call, after it came up too.
   */
  backend(): Promise<EmbeddingBackend> {
    this.backendPromise ??= this.loadBackend().catch((e: unknown) => {
      this.backendPromise = undefined;
      throw e;
    });
    return this.backendPromise;
  }

  private loadBackend(): Promise<EmbeddingBackend> {
    if (this.fields.backend) return Promise.resolve(this.fields.backend);
    if (this.fields.modelDir) return this.loadModel(this.fields.modelDir);
    return RemoteEmbedder.connect([this.fields.baseURL!].flat(), { apiKey: this.fields.apiKey, ...this.fields.remote });
  }

  private async loadModel(dir: string): Promise<EmbeddingBackend> {
    if (this.fields.device) useDevice(this.fields.device);
    return LocalBackend.fromModelDir(dir);
  }

  // checked before the backend is asked: LangChain's caller retries a failed call six times over about a
  // minute, so a refusal from the backend would reach the caller only then
  async embedDocuments(documents: string[]): Promise<number[][]> {
    checkTexts(documents, 'document', refuse);
    const b = await this.backend();
    const out: number[][] = [];
    for (let i = 0; i < documents.length; i += this.batchSize) {
      const part = documents.slice(i, i + this.batchSize);
      const vectors = await this.caller.call(() => b.embedDocuments(part));
      for (const v of vectors) out.push(Array.from(v));
    }
    return out;
  }

  async embedQuery(document: string): Promise<number[]> {
    if (typeof document !== 'string') throw refuse(refusal('the query', 'a string', document));
    const b = await this.backend();
    const [q] = await this.caller.call(() => b.embedQueries([document], this.fields.query ?? {}));
    return Array.from(q.vector);
  }
}
