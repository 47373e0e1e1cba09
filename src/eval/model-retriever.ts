import type { Embedder, QueryOptions } from '../embed/index.js';
import { documentText, type BeirDocument } from './beir.js';
import { denseSearch } from './dense-search.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

/** How a Search-R3 model retrieves: its query options, and how documents are turned into text. */
export interface ModelRetrieverOptions extends QueryOptions {
  /** Queries embedded per generation batch with reasoning on (default 8). */
  queryBatch?: number;
}

/**
 * A Search-R3 model as a retriever: documents embedded directly, queries with reasoning on or off,
 * then exact cosine top-k. Reasoning on vs off (or two models) are two runs of the same harness.
 */
export class ModelRetriever implements Retriever {
  /** Queries whose embed token had to be forced in the last retrieve(). */
  forcedQueries = 0;

  constructor(private readonly embedder: Embedder, readonly name: string, private readonly options: ModelRetrieverOptions = {}) {}

  async retrieve(corpus: readonly BeirDocument[], queries: ReadonlyMap<string, string>, k: number, onProgress?: ProgressFn): Promise<Run> {
    const docs = this.embedder.embedDocuments(corpus.map(documentText), (done, total) => onProgress?.('encoding documents', done, total)).vectors;
    const qIds = [...queries.keys()];
    const qVecs: Float32Array[] = [];
    const batch = this.options.reasoning === 'on' ? this.options.queryBatch ?? 8 : qIds.length;
    this.forcedQueries = 0;
    for (let i = 0; i < qIds.length; i += batch) {
      const slice = qIds.slice(i, i + batch);
      for (const q of this.embedder.embedQueries(slice.map((id) => queries.get(id)!), this.options)) {
        qVecs.push(q.vector);
        if (q.forced) this.forcedQueries++;
      }
      onProgress?.('encoding queries', Math.min(i + batch, qIds.length), qIds.length);
      await new Promise((r) => setImmediate(r)); // let progress output through between batches
    }
    const stack = (vs: Float32Array[]): Float32Array => {
      const out = new Float32Array(vs.length * this.embedder.dimension);
      vs.forEach((v, i) => out.set(v, i * this.embedder.dimension));
      return out;
    };
    const dim = this.embedder.dimension;
    const result = await denseSearch(
      { ids: qIds, dim, data: stack(qVecs) },
      { ids: corpus.map((d) => d.id), dim, data: stack(docs) },
      { k, onProgress },
    );
    return result.run;
  }
}
