/**
 * Relevance judgments for the searches of a benchmark's queries: a BEIR folder's queries.jsonl and
 * qrels/<split>.tsv. A search whose text is one of those queries (exactly, outside leading and trailing
 * space) gets each hit's grade and the nDCG@10 of the ranking it returned, as trec_eval computes it.
 */
import path from 'node:path';
import { checkBeirJudgments, readBeirQueries } from '../eval/beir.js';
import { evaluateRun } from '../eval/measures.js';
import { type Qrels, countRelevant, readBeirQrels } from '../eval/qrels.js';

export interface QueryJudgment {
  query_id: string;
  /** Documents judged relevant (grade ≥ 1) for the query. */
  relevant: number;
  /** nDCG@10 of the hits returned, in their order (trec_eval's ndcg_cut.10). */
  ndcg_at_10: number;
  /** Grade of each hit, in hit order; null for a document the qrels do not judge. */
  grades: (number | null)[];
}

export class Judgments {
  private constructor(
    /** The folder's basename and split, e.g. "scifact test" (never the machine's path). */
    readonly name: string,
    private readonly byText: Map<string, string>,
    private readonly qrels: Qrels,
  ) {}

  /** Reads the judged queries of `split` from a BEIR folder; EvalInputError names the file that is wrong. */
  static async load(folder: string, split: string): Promise<Judgments> {
    const files = checkBeirJudgments(folder, split);
    const qrels = await readBeirQrels(files.qrels);
    const queries = await readBeirQueries(files.queries);
    const byText = new Map<string, string>();
    for (const [id, text] of queries) if (qrels.has(id) && !byText.has(text.trim())) byText.set(text.trim(), id);
    return new Judgments(`${path.basename(path.resolve(folder))} ${split}`, byText, qrels);
  }

  get queries(): number {
    return this.byText.size;
  }

  /** The judgments of a search for `query` that returned `docIds` in this order; null for a query not judged. */
  judge(query: string, docIds: readonly string[]): QueryJudgment | null {
    const qid = this.byText.get(query.trim());
    if (qid === undefined) return null;
    const judged = this.qrels.get(qid)!;
    // scores that keep the returned order exactly, whatever trec_eval's tie rule would do with the real ones
    const run = new Map([[qid, { docIds: [...docIds], scores: docIds.map((_, i) => docIds.length - i) }]]);
    const ev = evaluateRun(run, new Map([[qid, judged]]), { cutoffs: [10], complete: true });
    return {
      query_id: qid,
      relevant: countRelevant(judged),
      ndcg_at_10: ev.all['ndcg_cut_10']!,
      grades: docIds.map((id) => judged.get(id) ?? null),
    };
  }
}
