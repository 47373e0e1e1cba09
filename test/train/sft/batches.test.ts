import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { batchTexts, planEpoch } from '../../../src/train/sft/batches.js';
import type { TrainExample } from '../../../src/train/sft/data.js';
import { toyExamples } from '../../helpers/train-fixtures.js';

test('batches never hold a text twice; clashing examples wait for a later batch; plans are reproducible', () => {
  const ex: TrainExample[] = [
    ...toyExamples(10),
    // same positive as example 0, same query as example 1, a negative equal to example 2's positive
    { query: 'another question', positives: toyExamples(1)[0].positives, negatives: [] },
    { query: toyExamples(2)[1].query, positives: ['a different answer'], negatives: [] },
    { query: 'third', positives: ['third answer'], negatives: [toyExamples(3)[2].positives[0], 'fresh negative'] },
  ];
  for (const epoch of [0, 1, 2]) {
    const plan = planEpoch(ex, 7, epoch, 4, 2);
    assert.deepEqual(planEpoch(ex, 7, epoch, 4, 2), plan, 'same seed and epoch, same plan');
    assert.deepEqual(
      plan.flatMap((b) => b.examples).sort((a, b) => a - b),
      ex.map((_, i) => i),
      'every example once per epoch',
    );
    for (const b of plan) {
      const bt = batchTexts(ex, b);
      const all = [...bt.queries, ...bt.documents];
      assert.equal(new Set(all).size, all.length, `duplicate text in a batch of epoch ${epoch}`);
      assert.ok(b.negatives.every((n) => n.length <= 2));
    }
  }
  assert.notDeepEqual(
    planEpoch(ex, 7, 0, 4, 2).map((b) => b.examples),
    planEpoch(ex, 7, 1, 4, 2).map((b) => b.examples),
    'epochs reshuffle',
  );
});

test(
  'a document that is another positive of a query is not ' +
    'its negative; triplet negatives are its own hard negatives',
  () => {
    const ex: TrainExample[] = [
      { query: 'q0', positives: ['p0', 'p1'], negatives: ['n0'] },
      { query: 'q1', positives: ['p1'], negatives: [] },
    ];
    // q0 takes p0 or p1; when it takes p0, q1 brings p1, which q0 must not treat as a negative
    for (let seed = 0; seed < 20; seed++) {
      const plan = planEpoch(ex, seed, 0, 2, 1);
      if (plan.length !== 1) continue; // both took p1: q1 had to wait
      const bt = batchTexts(ex, plan[0]);
      const i0 = plan[0].examples.indexOf(0),
        i1 = plan[0].examples.indexOf(1);
      const M = bt.documents.length;
      const p1 = bt.documents.indexOf('p1');
      assert.equal(bt.targets.exclude[i0 * M + p1], i0 === p1 ? 0 : 1);
      const n0 = bt.documents.indexOf('n0');
      assert.deepEqual(
        [...bt.targets.tripletNegative.slice(i0 * M, i0 * M + M)].flatMap((v, j) => (v ? [j] : [])),
        [n0],
        'q0: its hard negative only',
      );
      assert.equal(
        bt.targets.tripletNegative[i1 * M + bt.documents.indexOf('p0')],
        1,
        'q1 has no hard negative: in-batch ones',
      );
      return;
    }
    assert.fail('no seed put both queries in one batch');
  },
);

test('an example that fits no batch (its only positive is its query) ends the plan with an error', async () => {
  // in a worker, so that a plan that never ends fails this test instead of hanging the runner
  const batches = new URL('../../../src/train/sft/batches.js', import.meta.url).href;
  const code =
    `const { parentPort } = require('node:worker_threads');` +
    `import(${JSON.stringify(batches)}).then(({ planEpoch }) => {` +
    `  try { planEpoch([{ query: 'a', positives: ['b'], negatives: [] },` +
    `    { query: 'same', positives: ['same'], negatives: [] }], 1, 0, 2, 0); parentPort.postMessage('planned'); }` +
    `  catch (e) { parentPort.postMessage(String(e.message)); } });`;
  const worker = new Worker(code, { eval: true });
  const outcome = await Promise.race([
    new Promise<string>((resolve) => worker.once('message', resolve)),
    new Promise<string>((resolve) => setTimeout(() => resolve('no end after 10 s'), 10_000)),
  ]);
  await worker.terminate();
  assert.match(outcome, /query "same"\) can never be placed in a batch: it has no positive other than its own query/);
});
