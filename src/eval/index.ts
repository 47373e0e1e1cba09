/**
 * The eval layer's public surface: formats, trec_eval-exact measures, BM25, dense search, significance, and the
 * Retriever hook that the embed layer implements for Search-R3 models. Nothing here imports model/embed/train code.
 */
export type { Retriever, ProgressFn } from './retriever.js';
export { readBeirDataset, readBeirCorpus, readBeirQueries, streamBeirCorpus, beirCorpusFile, type BeirDataset, type BeirDocument } from './beir.js';
export { readTrecQrels, readBeirQrels, type Qrels } from './qrels.js';
export { readTrecRun, writeTrecRun, formatTrecRun, type Run, type RankedList } from './run.js';
export { evaluateRun, evaluateRanking, measureNames, measureVector, TREC_CUTOFFS, type EvalOptions, type Evaluation, type MeasureValues } from './measures.js';
export { formatTrecEval, selectMeasures, cFixed } from './trec-eval-format.js';
export { createAnalyzer, type Analyzer, type AnalyzerOptions } from './analyzer.js';
export { Bm25Index, type Bm25Options } from './bm25.js';
export { Bm25Retriever, flatText } from './bm25-retriever.js';
export { denseSearch, type EmbeddingMatrix, type DenseSearchOptions } from './dense-search.js';
export { EmbeddingRetriever } from './embedding-retriever.js';
export { ModelRetriever, embedQueryMatrix, stackVectors, type ModelRetrieverOptions } from './model-retriever.js';
export { documentText } from './beir.js';
export { readEmbeddings, writeNpyEmbeddings } from './embeddings-file.js';
export { pairedTTest, pairedRandomizationTest } from './significance.js';
export { compareEvaluations, formatComparison, formatSummaryTable } from './report.js';
export { EvalInputError } from './input-error.js';
