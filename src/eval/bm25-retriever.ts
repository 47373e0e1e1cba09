import { createAnalyzer, type AnalyzerOptions } from './analyzer.js';
import type { BeirDocument, CorpusSource } from './beir.js';
import { Bm25Index, type Bm25Document, type Bm25Options } from './bm25.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

/** Pyserini's BEIR "flat" document: title and text as one field. */
export function flatText(doc: BeirDocument): string {
  return doc.title ? `${doc.title} ${doc.text}` : doc.text;
}

/** The corpus's documents as BM25 indexes them (flatText), read as a stream. */
async function* flatDocuments(corpus: CorpusSource): AsyncGenerator<Bm25Document> {
  for await (const d of corpus.documents()) yield { id: d.id, text: flatText(d) };
}

/**
 * BM25 over a BEIR corpus (flat title + text), the lexical baseline every model is compared with. The corpus is
 * read once, as a stream: the index keeps ids, lengths and postings, never the texts.
 */
export class Bm25Retriever implements Retriever {
  readonly name = 'bm25';
  /** The index of the last retrieve call (kept for inspection, e.g. vocabulary size in reports). */
  index?: Bm25Index;

  constructor(private readonly options: Bm25Options & AnalyzerOptions = {}) {}

  async retrieve(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const analyzer = createAnalyzer(this.options);
    const index = await Bm25Index.buildFromStream(
      flatDocuments(corpus),
      analyzer,
      this.options,
      onProgress,
      corpus.size,
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
