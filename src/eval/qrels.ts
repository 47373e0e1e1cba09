import { EvalInputError } from './input-error.js';
import { readLines, splitFields } from './line-reader.js';

/**
 * Relevance judgments: query id → (document id → graded relevance). As in trec_eval, a document counts as relevant
 * for binary measures when its grade is at least the relevance level (1 by default); graded measures (nDCG) use the
 * grade itself as the gain; a negative grade means "in the pool but unjudged".
 */
export type Qrels = Map<string, Map<string, number>>;

/** Parses a relevance grade: an integer, as trec_eval reads it (decimals such as "1.0" are accepted if integral). */
function parseGrade(field: string, file: string, line: number): number {
  const v = Number(field);
  if (!Number.isInteger(v)) {
    throw new EvalInputError(`relevance '${field}' is not an integer grade`, file, line);
  }
  return v;
}

function addJudgment(qrels: Qrels, qid: string, docId: string, rel: number, file: string, line: number): void {
  let docs = qrels.get(qid);
  if (!docs) qrels.set(qid, (docs = new Map()));
  const old = docs.get(docId);
  if (old !== undefined && old !== rel) {
    throw new EvalInputError(`document '${docId}' is judged twice for query '${qid}' (${old} and ${rel})`, file, line);
  }
  docs.set(docId, rel);
}

/** Reads a TREC qrels file: `qid iter docid rel` per line; '#' lines and blank lines are skipped (trec_eval 10). */
export async function readTrecQrels(file: string): Promise<Qrels> {
  const qrels: Qrels = new Map();
  for await (const { text, line } of readLines(file)) {
    const f = splitFields(text);
    if (f.length === 0 || f[0]!.startsWith('#')) continue;
    if (f.length !== 4) {
      // BEIR's three columns: eval reads a qrels file as BEIR's by its name only
      const beir = f.length === 3 ? " (BEIR qrels, 'query-id corpus-id score'? --qrels reads those from a .tsv)" : '';
      throw new EvalInputError(`expected 4 fields 'qid iter docid rel', found ${f.length}${beir}`, file, line);
    }
    addJudgment(qrels, f[0]!, f[2]!, parseGrade(f[3]!, file, line), file, line);
  }
  if (qrels.size === 0) throw new EvalInputError('no judgments found (expected lines "qid iter docid rel")', file);
  return qrels;
}

/**
 * What a line of another qrels form, refused by readBeirQrels, is: three fields apart by spaces (a tab-split sees
 * one), or TREC's four with their iteration column.
 */
function beirQrelsHint(text: string): string {
  const fields = splitFields(text).length;
  if (!text.includes('\t') && fields === 3)
    return ': its fields are apart by spaces, and BEIR qrels separate them by tabs';
  if (fields === 4) return " (a TREC qrels line, 'qid iter docid rel'? BEIR qrels have no iter column)";
  return '';
}

/** Reads BEIR's `qrels/<split>.tsv`: a header line `query-id corpus-id score`, then tab-separated triples. */
export async function readBeirQrels(file: string): Promise<Qrels> {
  const qrels: Qrels = new Map();
  for await (const { text, line } of readLines(file)) {
    if (text.trim() === '') continue;
    const f = text.split('\t').map((s) => s.trim());
    // the header ends in a name (score) where a judgment ends in its grade: a TREC line's third field is no number
    if (line === 1 && !Number.isFinite(Number(f[f.length - 1]))) continue;
    if (f.length !== 3) {
      throw new EvalInputError(
        `expected 3 tab-separated fields 'query-id corpus-id score', found ${f.length}${beirQrelsHint(text)}`,
        file,
        line,
      );
    }
    addJudgment(qrels, f[0]!, f[1]!, parseGrade(f[2]!, file, line), file, line);
  }
  if (qrels.size === 0) throw new EvalInputError('no judgments found', file);
  return qrels;
}

/** Number of documents with grade >= level for each query (the "R" of recall and R-precision). */
export function countRelevant(judged: ReadonlyMap<string, number>, relevanceLevel = 1): number {
  let n = 0;
  for (const r of judged.values()) if (r >= relevanceLevel) n++;
  return n;
}
