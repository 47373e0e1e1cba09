import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { evaluateRanking, evaluateRun, measureNames } from '../../src/eval/measures.js';
import { readTrecQrels } from '../../src/eval/qrels.js';
import { readTrecRun, type Run } from '../../src/eval/run.js';
import { cFixed, formatTrecEval, selectMeasures } from '../../src/eval/trec-eval-format.js';

const fixtures = join(repoRoot, 'test/eval/fixtures');
const cutoffs = [1, 2, 5, 10];

/** trec_eval's output without the runid line, which our -m list does not request there. */
function ours(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('runid'))
    .join('\n');
}

test(
  'hand-built cases match trec_eval 10 -q output digit ' + 'for digit (ties, grades, no relevant, short run)',
  async () => {
    const qrels = await readTrecQrels(join(fixtures, 'hand.qrels'));
    const { run } = await readTrecRun(join(fixtures, 'hand.run'));
    const ev = evaluateRun(run, qrels, { cutoffs });
    const expected = readFileSync(join(fixtures, 'hand.expected-q.txt'), 'utf8');
    assert.equal(ours(formatTrecEval(ev, 'hand', true)), expected);
  },
);

test('-c (complete) scores judged queries missing from the run as empty rankings, as trec_eval -c', async () => {
  const qrels = await readTrecQrels(join(fixtures, 'hand-missing.qrels'));
  const { run } = await readTrecRun(join(fixtures, 'hand.run'));
  const ev = evaluateRun(run, qrels, { cutoffs, complete: true });
  assert.equal(ours(formatTrecEval(ev, 'hand', true)), readFileSync(join(fixtures, 'hand.expected-c.txt'), 'utf8'));
  // Without -c the missing query is left out (trec_eval 9 and pytrec_eval), so the figures equal the plain run's.
  const plain = evaluateRun(run, qrels, { cutoffs });
  assert.equal(plain.numQueries, 5);
  assert.equal(plain.perQuery.has('q6'), false);
});

test('graded nDCG by hand: gains are grades, discount log2(rank+1), ideal from all judged grades', () => {
  const judged = new Map([
    ['a', 2],
    ['b', 1],
    ['c', 0],
    ['e', 3],
  ]);
  // Ranking a, c, b, x  → grades 2, 0, 1, not judged.
  const v = evaluateRanking([2, 0, 1, -1], judged, [1, 2, 5, 10]);
  const dcg5 = 2 + 1 / Math.log2(4);
  const idcg5 = 3 + 2 / Math.log2(3) + 1 / Math.log2(4);
  assert.equal(v['ndcg_cut_1'], 2 / 3);
  assert.equal(v['ndcg_cut_2'], 2 / (3 + 2 / Math.log2(3)));
  assert.equal(v['ndcg_cut_5'], dcg5 / idcg5);
  assert.equal(v['ndcg_cut_10'], dcg5 / idcg5);
  assert.equal(v['map'], (1 + 2 / 3) / 3);
  assert.equal(v['Rprec'], 2 / 3);
  assert.equal(v['recip_rank'], 1);
  // Relevance level 2: only a (2) and e (3) count for binary measures; nDCG keeps every grade as gain.
  const v2 = evaluateRanking([2, 0, 1, -1], judged, [1, 2, 5, 10], 2);
  assert.equal(v2['num_rel'], 2);
  assert.equal(v2['map'], 1 / 2);
  assert.equal(v2['ndcg_cut_5'], v['ndcg_cut_5']);
});

test('k larger than the run: P counts missing ranks as non-relevant, recall and nDCG keep what was retrieved', () => {
  const judged = new Map([
    ['r1', 1],
    ['r2', 1],
    ['r3', 2],
  ]);
  const v = evaluateRanking([1, -1], judged, [1, 2, 5, 10, 1000]);
  assert.equal(v['P_1000'], 1 / 1000);
  assert.equal(v['P_10'], 1 / 10);
  assert.equal(v['recall_1000'], 1 / 3);
  assert.equal(v['ndcg_cut_1000'], 1 / (2 + 1 / Math.log2(3) + 1 / Math.log2(4)));
  assert.equal(v['map_cut_1000'], 1 / 3);
});

test('a query without relevant documents scores 0 and counts (trec_eval), unless asked to skip it', () => {
  const qrels = new Map([
    ['q1', new Map([['d1', 1]])],
    ['q2', new Map([['d9', 0]])],
  ]);
  const run: Run = new Map([
    ['q1', { docIds: ['d1', 'd2'], scores: [2, 1] }],
    ['q2', { docIds: ['d9', 'd2'], scores: [2, 1] }],
  ]);
  const ev = evaluateRun(run, qrels, { cutoffs: [10] });
  assert.equal(ev.numQueries, 2);
  assert.equal(ev.all['ndcg_cut_10'], 0.5);
  assert.equal(ev.perQuery.get('q2')!['map'], 0);
  const skip = evaluateRun(run, qrels, { cutoffs: [10], skipQueriesWithoutRelevant: true });
  assert.equal(skip.numQueries, 1);
  assert.equal(skip.all['ndcg_cut_10'], 1);
});

test('ties are broken by document id descending (strcmp), whatever the rank column says', () => {
  const qrels = new Map([['q', new Map([['doc-a', 1]])]]);
  const run: Run = new Map([['q', { docIds: ['doc-a', 'doc-b', 'doc-c'], scores: [1, 1, 1] }]]);
  const v = evaluateRun(run, qrels, { cutoffs: [1] }).perQuery.get('q')!;
  assert.equal(v['recip_rank'], 1 / 3); // doc-c, doc-b, doc-a
  // Byte order, not locale order: 'B' (0x42) < 'a' (0x61), so 'a' ranks first among ties.
  const run2: Run = new Map([['q', { docIds: ['B', 'doc-a'], scores: [1, 1] }]]);
  const q2 = new Map([['q', new Map([['B', 1]])]]);
  assert.equal(evaluateRun(run2, q2, { cutoffs: [1] }).perQuery.get('q')!['recip_rank'], 0.5);
});

test('MTEB identical-id removal and BRIGHT per-query exclusions drop documents before ranking', () => {
  const qrels = new Map([['q1', new Map([['d1', 1]])]]);
  const run: Run = new Map([['q1', { docIds: ['q1', 'x', 'd1'], scores: [3, 2, 1] }]]);
  assert.equal(evaluateRun(run, qrels, { cutoffs: [1] }).perQuery.get('q1')!['recip_rank'], 1 / 3);
  assert.equal(
    evaluateRun(run, qrels, { cutoffs: [1], ignoreIdenticalIds: true }).perQuery.get('q1')!['recip_rank'],
    1 / 2,
  );
  const excluded = new Map([['q1', ['q1', 'x']]]);
  const v = evaluateRun(run, qrels, { cutoffs: [1], excludedIds: excluded }).perQuery.get('q1')!;
  assert.equal(v['recip_rank'], 1);
  assert.equal(v['num_ret'], 1);
});

test('measure names follow trec_eval print order', () => {
  assert.deepEqual(measureNames([5]), [
    'num_ret',
    'num_rel',
    'num_rel_ret',
    'map',
    'Rprec',
    'recip_rank',
    'P_5',
    'recall_5',
    'ndcg_cut_5',
    'map_cut_5',
  ]);
});

test('cFixed rounds like C printf %.4f (exact ties to even), unlike toFixed', () => {
  // Values and expected strings from Python's '%.4f' % x, which rounds the exact binary value like glibc.
  const cases: [number, string][] = [
    [0.03125, '0.0312'],
    [0.09375, '0.0938'],
    [0.15625, '0.1562'],
    [1, '1.0000'],
    [0, '0.0000'],
    [2 / 3, '0.6667'],
    [0.00005, '0.0001'],
    [0.12345, '0.1235'],
    [0.99995, '1.0000'],
    [0.999951, '1.0000'],
    [12.5, '12.5000'],
    [0.45675, '0.4567'],
  ];
  for (const [x, s] of cases) assert.equal(cFixed(x, 4), s, `cFixed(${x})`);
});

test('an empty ranked list is a query the run does not answer, as in a TREC run file', () => {
  const qrels = new Map([
    ['q1', new Map([['d1', 1]])],
    ['q2', new Map([['d2', 1]])],
  ]);
  const run: Run = new Map([
    ['q1', { docIds: ['d1'], scores: [1] }],
    ['q2', { docIds: [], scores: [] }],
  ]);
  assert.equal(evaluateRun(run, qrels, { cutoffs: [1] }).numQueries, 1);
  const c = evaluateRun(run, qrels, { cutoffs: [1], complete: true });
  assert.equal(c.numQueries, 2);
  assert.equal(c.all['P_1'], 0.5);
});

test('-m takes cutoffs after the first dot only, and a printed name (P_10) is told its -m form (P.10)', () => {
  assert.deepEqual(selectMeasures(['P.5,10', 'ndcg_cut.7']).names, ['P_5', 'P_10', 'ndcg_cut_7']);
  assert.throws(() => selectMeasures(['P.5.5']), /cutoffs of 'P\.5\.5' must be positive integers/);
  assert.throws(
    () => selectMeasures(['ndcg_cut_10']),
    (e: Error) =>
      e.message ===
      "-m ndcg_cut_10: a cutoff measure is asked for as ndcg_cut.10 (trec_eval's syntax; ndcg_cut_10 is its " +
        'printed name)',
  );
  assert.throws(() => selectMeasures(['P_10']), /-m P_10: a cutoff measure is asked for as P\.10 /);
});
