/**
 * Contrastive batches: which queries go together, which positive each brings, which hard negatives.
 * An epoch's plan is a pure function of (examples, seed, epoch), so a resumed run rebuilds exactly the
 * batches it would have seen and the data position is just (epoch, batch index).
 *
 * No text appears twice in a batch: an example whose query or positive is already there waits for the
 * next batch, and a hard negative already there is skipped. A document that is another positive of a
 * query is excluded from that query's negatives (a known false negative).
 *
 * Every batch places at least one example (the first waiting one always fits an empty batch, unless its
 * only positives are its own query, which is refused), so an epoch's plan always ends.
 */
import { Rng } from '../../tensor/index.js';
import type { ContrastiveTargets } from './losses.js';
import type { TrainExample } from './data.js';

export interface PlannedBatch {
  /** Indices into the examples. */
  examples: number[];
  /** The chosen positive of each query. */
  positives: string[];
  /** The chosen hard negatives of each query. */
  negatives: string[][];
}

export interface BatchTexts {
  queries: string[];
  /** Positives (one per query, in query order), then every query's hard negatives. */
  documents: string[];
  targets: ContrastiveTargets;
}

function epochRng(seed: number, epoch: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
}

/** The batches of one epoch: a seeded shuffle, packed greedily under the no-duplicate rule. */
export function planEpoch(
  examples: readonly TrainExample[],
  seed: number,
  epoch: number,
  queriesPerBatch: number,
  hardNegatives: number,
): PlannedBatch[] {
  const rng = epochRng(seed, epoch);
  let rest = rng.shuffle(examples.map((_, i) => i));
  const batches: PlannedBatch[] = [];
  while (rest.length > 0) {
    const b: PlannedBatch = { examples: [], positives: [], negatives: [] };
    const used = new Set<string>();
    const deferred: number[] = [];
    let i = 0;
    for (; i < rest.length && b.examples.length < queriesPerBatch; i++) {
      const ex = examples[rest[i]];
      const free = ex.positives.filter((p) => !used.has(p) && p !== ex.query);
      if (used.has(ex.query) || free.length === 0) {
        deferred.push(rest[i]);
        continue;
      }
      const pos = free[rng.int(free.length)];
      used.add(ex.query);
      used.add(pos);
      b.examples.push(rest[i]);
      b.positives.push(pos);
      b.negatives.push([]);
    }
    // hard negatives after all positives are in, so that a negative never takes a later query's positive
    b.examples.forEach((e, k) => {
      const cands = rng.shuffle([...examples[e].negatives]);
      for (const n of cands) {
        if (b.negatives[k].length >= hardNegatives) break;
        if (used.has(n)) continue;
        used.add(n);
        b.negatives[k].push(n);
      }
    });
    if (b.examples.length === 0) {
      // only an example whose every positive is its query text fits no batch, not even an empty one;
      // loadTrainingData drops those, so this is a caller's bug, never a loop without end
      const ex = examples[deferred[0]!];
      throw new Error(
        `example ${deferred[0]} (query ${JSON.stringify(ex.query.slice(0, 60))}) can never be placed in a batch: ` +
          'it has no positive other than its own query text',
      );
    }
    batches.push(b);
    rest = [...deferred, ...rest.slice(i)];
  }
  return batches;
}

/** The texts and loss targets of a planned batch. */
export function batchTexts(examples: readonly TrainExample[], b: PlannedBatch): BatchTexts {
  const queries = b.examples.map((e) => examples[e].query);
  const documents = [...b.positives, ...b.negatives.flat()];
  const B = queries.length,
    M = documents.length;
  const exclude = new Uint8Array(B * M),
    tripletNegative = new Uint8Array(B * M);
  let negStart = B;
  b.examples.forEach((e, i) => {
    const own = new Set(examples[e].positives);
    const nOwn = b.negatives[i].length;
    for (let j = 0; j < M; j++) {
      if (j !== i && own.has(documents[j])) exclude[i * M + j] = 1;
      // triplet: the query's own hard negatives when it has any, else every in-batch negative
      const isNeg = j !== i && !exclude[i * M + j];
      if (isNeg && (nOwn === 0 || (j >= negStart && j < negStart + nOwn))) tripletNegative[i * M + j] = 1;
    }
    negStart += nOwn;
  });
  return { queries, documents, targets: { positive: Int32Array.from(queries, (_, i) => i), exclude, tripletNegative } };
}
