/**
 * A LangChain.js VectorStore over a SearchIndex, so a LangChain app can use a search-r3 index as a
 * retriever (`store.asRetriever(k)`). Documents are embedded by the index's own model (document prompt);
 * queries by the store's `embeddings` (use SearchR3Embeddings with the same model: query prompt, optional
 * reasoning). Vectors computed elsewhere are refused: an index holds one model's vectors only.
 */
import { createHash } from 'node:crypto';
import type { DocumentInterface } from '@langchain/core/documents';
import { Document } from '@langchain/core/documents';
import type { EmbeddingsInterface } from '@langchain/core/embeddings';
import { VectorStore } from '@langchain/core/vectorstores';
import { SearchIndex } from '../search-index/search-index.js';
import { refusal } from '../io/option-checks.js';

export class SearchR3VectorStore extends VectorStore {
  constructor(
    embeddings: EmbeddingsInterface,
    readonly index: SearchIndex,
  ) {
    super(embeddings, {});
  }

  /** LangChain's factory: `dbConfig.index` is the SearchIndex (opened writable) that takes the documents. */
  static override async fromDocuments(
    docs: DocumentInterface[],
    embeddings: EmbeddingsInterface,
    dbConfig: { index: SearchIndex },
  ): Promise<SearchR3VectorStore> {
    const index = (dbConfig as { index?: unknown } | undefined)?.index;
    if (!(index instanceof SearchIndex)) {
      const want = 'a SearchIndex, awaited: { index: await SearchIndex.open(dir, { backend, create: {} }) }';
      throw new Error(`SearchR3VectorStore: ${refusal("'dbConfig.index'", want, index)}`);
    }
    const store = new SearchR3VectorStore(embeddings, index);
    await store.addDocuments(docs);
    return store;
  }

  /** fromDocuments of texts, with one metadata object for all or one each. */
  static override async fromTexts(
    texts: string[],
    metadatas: object[] | object,
    embeddings: EmbeddingsInterface,
    dbConfig: { index: SearchIndex },
  ): Promise<SearchR3VectorStore> {
    const docs = texts.map(
      (pageContent, i) => new Document({ pageContent, metadata: Array.isArray(metadatas) ? metadatas[i] : metadatas }),
    );
    return SearchR3VectorStore.fromDocuments(docs, embeddings, dbConfig);
  }

  _vectorstoreType(): string {
    return 'search-r3';
  }

  /**
   * Adds (or updates, by id) documents; an id-less document is keyed by a hash of its content, so adding it twice is a
   * no-op, in one call as over two (the last one's metadata kept): the index refuses an id given twice in a call,
   * and would name one the caller never saw.
   */
  async addDocuments(documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]> {
    checkDocuments(documents, options?.ids);
    const given = (d: DocumentInterface, i: number): string | undefined => options?.ids?.[i] ?? d.id;
    const ids = documents.map(
      (d, i) => given(d, i) ?? createHash('sha256').update(d.pageContent).digest('hex').slice(0, 24),
    );
    const last = new Map(ids.map((id, i) => [id, i]));
    const kept = documents.flatMap((d, i) => (given(d, i) === undefined && last.get(ids[i]) !== i ? [] : [i]));
    await this.index.addDocuments(
      kept.map((i) => {
        const d = documents[i];
        return {
          id: ids[i],
          title: typeof d.metadata?.title === 'string' ? d.metadata.title : '',
          text: d.pageContent,
          ...(d.metadata && Object.keys(d.metadata).length > 0 ? { metadata: d.metadata } : {}),
        };
      }),
    );
    return ids;
  }

  async addVectors(): Promise<string[]> {
    throw new Error(
      'a search-r3 index embeds documents with its own model; use addDocuments (vectors from elsewhere could ' +
        'come from another model).',
    );
  }

  /** `filter`: refused, as a search-r3 index has none, rather than returning documents the filter would drop. */
  async similaritySearchVectorWithScore(
    query: number[],
    k: number,
    filter?: unknown,
  ): Promise<[DocumentInterface, number][]> {
    if (filter !== undefined)
      throw new Error(
        'SearchR3VectorStore: a search-r3 index has no metadata filter, so this one would be ignored; search ' +
          'without a filter and keep the documents you want from those it returns.',
      );
    // Float32Array.from turns a string into NaNs and a number into no elements: refused as what they are
    if (!Array.isArray(query) && !((query as unknown) instanceof Float32Array))
      throw new Error(`SearchR3VectorStore: ${refusal('the query vector', 'an array of numbers', query)}`);
    const hits = await this.index.searchVector(Float32Array.from(query), { k });
    return hits.map((h) => [
      new Document({
        id: h.id,
        pageContent: h.text,
        metadata: { ...h.metadata, ...(h.title ? { title: h.title } : {}) },
      }),
      h.score,
    ]);
  }

  override async delete(params?: { ids?: string[] }): Promise<void> {
    if (!params?.ids) throw new Error('delete needs { ids }.');
    await this.index.deleteDocuments(params.ids);
  }
}

/**
 * addDocuments' arguments, which its ids and hashes are made of before the index checks the documents: unchecked,
 * documents that are no array (or hold null) failed with a TypeError, and ids given as a string were its letters.
 */
function checkDocuments(documents: unknown, ids: unknown): void {
  const refuse = (what: string, want: string, got: unknown): Error =>
    new Error(`SearchR3VectorStore: ${refusal(what, want, got)}`);
  if (!Array.isArray(documents)) throw refuse('the documents', 'an array of LangChain Documents', documents);
  // an indexed loop: forEach skips the holes of a sparse array
  for (let i = 0; i < documents.length; i++) {
    const d: unknown = documents[i];
    if (typeof d !== 'object' || d === null) throw refuse(`documents[${i}]`, 'a LangChain Document', d);
    const { pageContent } = d as { pageContent?: unknown };
    if (typeof pageContent !== 'string') throw refuse(`documents[${i}].pageContent`, 'a string', pageContent);
  }
  if (ids !== undefined && !(Array.isArray(ids) && ids.every((id) => typeof id === 'string')))
    throw refuse("'ids'", 'an array of strings, one per document', ids);
  // fewer ids would give the rest hash ids without a word, and more would be dropped
  if (ids !== undefined && (ids as string[]).length !== documents.length) {
    const n = (ids as string[]).length;
    throw new Error(
      `SearchR3VectorStore: 'ids' has ${n} ids for ${documents.length} documents; give one per document.`,
    );
  }
}
