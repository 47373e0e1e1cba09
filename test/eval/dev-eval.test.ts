import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleDevQueries, withoutDevSample, type DevSet } from '../../src/eval/dev-eval.js';

function set(n: number): DevSet {
  const ids = Array.from({ length: n }, (_, i) => `q${i}`);
  return {
    corpus: [{ id: 'd', title: '', text: 'x' }],
    queries: new Map(ids.map((q) => [q, `text of ${q}`])),
    qrels: new Map(ids.map((q) => [q, new Map([['d', 1]])])),
  };
}

test('a seeded query sample: n queries in file order with their qrels, fixed by the seed', () => {
  const full = set(50);
  const a = sampleDevQueries(full, 10, 1);
  assert.equal(a.queries.size, 10);
  assert.deepEqual([...a.qrels.keys()], [...a.queries.keys()]);
  const order = [...full.queries.keys()];
  const positions = [...a.queries.keys()].map((q) => order.indexOf(q));
  assert.deepEqual(
    positions,
    [...positions].sort((x, y) => x - y),
  );
  assert.equal(a.corpus, full.corpus);
  assert.deepEqual(sampleDevQueries(full, 10, 1), a);
  assert.notDeepEqual([...sampleDevQueries(full, 10, 2).queries.keys()], [...a.queries.keys()]);
  assert.equal(sampleDevQueries(full, 80, 1).queries.size, 50);
  assert.equal(sampleDevQueries(full, 0, 1).queries.size, 0);
  // a larger sample with the same seed contains the smaller one: both are prefixes of one seeded shuffle
  const larger = sampleDevQueries(full, 20, 1).queries;
  assert.ok([...a.queries.keys()].every((q) => larger.has(q)));
});

test('without the dev sample: every other query, and no query with the text of a drawn one', () => {
  const full = set(50);
  const dev = sampleDevQueries(full, 10, 1);
  const rest = withoutDevSample(full, { n: 10, seed: 1 });
  assert.deepEqual(
    [...rest.queries.keys()],
    [...full.queries.keys()].filter((q) => !dev.queries.has(q)),
  );
  assert.deepEqual([...rest.qrels.keys()], [...rest.queries.keys()]);
  assert.equal(rest.corpus, full.corpus);
  // a drawn query's twin (same text, another id) is held out with it
  const [drawn] = [...dev.queries.keys()];
  const twin = [...full.queries.keys()].find((q) => !dev.queries.has(q))!;
  full.queries.set(twin, full.queries.get(drawn!)!);
  const withoutTwin = withoutDevSample(full, { n: 10, seed: 1 });
  assert.equal(withoutTwin.queries.size, 39);
  assert.ok(!withoutTwin.queries.has(twin) && !withoutTwin.qrels.has(twin));
});
