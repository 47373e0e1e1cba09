import { createAnalyzer, type AnalyzerOptions } from './analyzer.js';
import type { BeirDocument } from './beir.js';
import { Bm25Index, type Bm25Options } from './bm25.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

/** Pyserini's BEIR "flat" document: title and text as one field. */
export function flatText(doc: BeirDocument): string {
  return doc.title ? `${doc.title} ${doc.text}` : doc.text;
}

/** BM25 over a BEIR corpus (flat title + text), the lexical baseline every model is compared with. */
export class Bm25Retriever implements Retriever {
  readonly name = 'bm25';
  /** The index of the last retrieve call (kept for inspection, e.g. vocabulary size in reports). */
  index?: Bm25Index;

  constructor(private readonly options: Bm25Options & AnalyzerOptions = {}) {}

  async retrieve(
    corpus: readonly BeirDocument[],
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const analyzer = createAnalyzer(this.options);
    const index = Bm25Index.buildFrom(
      corpus.map((d) => d.id),
      (i) => flatText(corpus[i]!),
      analyzer,
      this.options,
      onProgress,
    );
    this.index = index;
    const run: Run = new Map();
    const scratch = new Float64Array(index.size);
    let done = 0;
    for (const [qid, text] of queries) {
      run.set(qid, index.search(text, k, scratch));
      if (onProgress && (++done % 100 === 0 || done === queries.size)) onProgress('searching', done, queries.size);
    }
    return run;
  }
}
