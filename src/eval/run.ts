import { dirname } from 'node:path';
import { writeFileAtomicallySync, writeLinesAtomicallySync } from '../io/atomic-file.js';
import { EvalInputError } from './input-error.js';
import { readLines, splitFields } from './line-reader.js';
import { sortedIds, trecRankOrder } from './trec-order.js';
import { makeFolderSync } from '../io/make-folder.js';

/** One query's retrieved documents and their scores (any order: evaluation ranks them by trec_eval's rule). */
export interface RankedList {
  docIds: string[];
  scores: number[];
}

/** A run: query id → retrieved documents. */
export type Run = Map<string, RankedList>;

export interface TrecRunFile {
  run: Run;
  /** The tag (sixth column) of the first line, as trec_eval's runid reports it. */
  tag: string;
}

/**
 * A run's score, or null when it is none. trec_eval reads scores with C's atof, and C and Python print an infinite
 * score as inf (numpy, printf, str(float)): that spelling, and infinity, in any case and with a sign, is the infinity
 * it stands for, as Number reads JavaScript's. NaN has no place in a ranking and is refused.
 */
function runScore(text: string): number | null {
  const infinite = /^([+-]?)inf(inity)?$/i.exec(text);
  if (infinite) return infinite[1] === '-' ? -Infinity : Infinity;
  const score = Number(text);
  return Number.isNaN(score) ? null : score;
}

/**
 * Reads a TREC run file: `qid Q0 docid rank score tag` per line. The rank column is ignored (trec_eval re-ranks by
 * score); a document listed twice for one query is an error, as in trec_eval.
 */
export async function readTrecRun(file: string): Promise<TrecRunFile> {
  const run: Run = new Map();
  const seen = new Map<string, Set<string>>();
  let tag: string | undefined;
  for await (const { text, line } of readLines(file)) {
    const f = splitFields(text);
    if (f.length === 0 || f[0]!.startsWith('#')) continue;
    if (f.length !== 6) {
      throw new EvalInputError(`expected 6 fields 'qid Q0 docid rank score tag', found ${f.length}`, file, line);
    }
    const [qid, , docId, , scoreText] = f as [string, string, string, string, string, string];
    const score = runScore(scoreText);
    if (score === null) throw new EvalInputError(`score '${scoreText}' is not a number`, file, line);
    let list = run.get(qid);
    let docs = seen.get(qid);
    if (!list || !docs) {
      run.set(qid, (list = { docIds: [], scores: [] }));
      seen.set(qid, (docs = new Set()));
    }
    if (docs.has(docId)) throw new EvalInputError(`document '${docId}' appears twice for query '${qid}'`, file, line);
    docs.add(docId);
    list.docIds.push(docId);
    list.scores.push(score);
    tag ??= f[5]!;
  }
  if (run.size === 0) throw new EvalInputError('no results found (expected lines "qid Q0 docid rank score tag")', file);
  return { run, tag: tag ?? '' };
}

/** Whether `text` can be a column of a TREC run (an id, the tag): one non-empty word, its columns apart by spaces. */
export const isRunField = (text: string): boolean => text !== '' && !/\s/.test(text);

/**
 * Refuses a query or document id a TREC run cannot hold: whitespace in it would split it across the run's columns,
 * and trec_eval (or eval --qrels --run) would read other ids, or other columns, than were written. `file` is the run.
 */
export function checkRunId(id: string, what: 'query' | 'document', file?: string): void {
  if (isRunField(id)) return;
  throw new EvalInputError(
    `${what} id '${id}' holds whitespace, which a TREC run cannot hold (its columns are apart by whitespace), so ` +
      'the run is not written; give the ids of the dataset without whitespace',
    file,
  );
}

/** The lines of a TREC run: queries in id order, documents in trec_eval rank order, rank from 1. */
export function* formatTrecRun(run: Run, tag: string): Generator<string> {
  if (!isRunField(tag)) throw new EvalInputError(`run tag '${tag}' must be one non-empty word`);
  for (const qid of sortedIds(run.keys())) {
    const list = run.get(qid)!;
    const order = trecRankOrder(list.docIds, list.scores);
    for (let r = 0; r < order.length; r++) {
      const i = order[r]!;
      // String(number) is the shortest text that reads back as the same double, so scores round-trip exactly.
      yield `${qid} Q0 ${list.docIds[i]} ${r + 1} ${String(list.scores[i])} ${tag}\n`;
    }
  }
}

/**
 * Writes a TREC run file atomically, streamed in pieces of about 1 MiB; one with an id no run can hold is refused
 * before anything is made (its folder included).
 */
export function writeTrecRun(file: string, run: Run, tag: string): void {
  for (const [qid, list] of run) {
    checkRunId(qid, 'query', file);
    for (const d of list.docIds) checkRunId(d, 'document', file);
  }
  makeFolderSync(dirname(file));
  writeLinesAtomicallySync(file, formatTrecRun(run, tag));
}

/** Writes a text file atomically, making its folder when missing. */
export function writeTextFileAtomic(file: string, text: string): void {
  makeFolderSync(dirname(file));
  writeFileAtomicallySync(file, text);
}
