import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetrievalEnvironment, type EnvironmentOptions, type StepQuery } from '../../src/rlenv/environment.js';
import { EmbeddingTable, TableTooLargeError, tableBytes } from '../../src/rlenv/embedding-table.js';
import { topK } from '../../src/model/top-k.js';
import { rankingReward } from '../../src/rlenv/reward.js';
import { DEFAULT_REFRESH } from '../../src/rlenv/refresh-policy.js';

const D = 16,
  N = 300;

/** A deterministic stand-in for the policy's document encoder: vectors drift with `policy.version`. */
function fakeEncoder(policy: { version: number }, log: number[][] = []) {
  const vec = (r: number): Float32Array => {
    const v = Float32Array.from(
      { length: D },
      (_, j) => Math.sin(r * 1.37 + j * 0.71 + policy.version * 0.05 * (j + 1)) + (r % 7 === j % 7 ? 0.5 : 0),
    );
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  return {
    vec,
    encode: (rows: readonly number[]): Float32Array[] => {
      log.push([...rows]);
      return rows.map(vec);
    },
  };
}

const opts = (mode: 'local' | 'exact', over: Partial<EnvironmentOptions['refresh']> = {}): EnvironmentOptions => ({
  refresh: { ...DEFAULT_REFRESH, mode, budget: 40, candidates: 5, neighbours: 3, rolling: 8, ...over },
  reward: { kind: 'dcg', k: 10 },
  returnCandidates: 6,
});

function queries(policy: { version: number }, step: number): StepQuery[] {
  const { vec } = fakeEncoder(policy);
  // responses near their positives, plus noise rows
  return [0, 1, 2].map((q) => {
    const pos = (step * 31 + q * 57) % N;
    return {
      positives: [
        { row: pos, grade: 1 },
        { row: (pos + 3) % N, grade: 2 },
      ],
      responses: [vec(pos), vec((pos + 1) % N), vec((pos + 100) % N)],
    };
  });
}

/** Steps `from`..`to` of `e`, the policy at each step's version: what each step rewarded, chose and encoded. */
function stepsOf(e: RetrievalEnvironment, policy: { version: number }, from: number, to: number): unknown[] {
  const out: unknown[] = [];
  for (let step = from; step <= to; step++) {
    policy.version = step;
    e.advance();
    const r = e.step(queries(policy, step));
    out.push({ rewards: r.rewards, candidates: r.candidates, encodes: r.stats.encodes, counts: r.stats.counts });
  }
  return out;
}

test('a refresh re-encodes exactly the rows its plan names, and they equal a fresh encode', () => {
  const policy = { version: 0 };
  const log: number[][] = [];
  const enc = fakeEncoder(policy, log);
  const env = RetrievalEnvironment.create(N, D, enc.encode, opts('local'));
  for (let step = 1; step <= 4; step++) {
    policy.version++;
    env.advance(); // an optimiser update: every stored row is stale now
    const before = Float32Array.from(env.table.vectors),
      versionsBefore = Int32Array.from(env.table.versions);
    const qs = queries(policy, step);
    const planned = env.plan(qs).rows;
    log.length = 0;
    const out = env.step(qs);
    assert.deepEqual(log, [planned], 'the encoder saw exactly the planned rows, once');
    assert.equal(out.stats.encodes, planned.length);
    assert.ok(planned.length <= 40 + 8);
    for (const q of qs)
      for (const p of q.positives) assert.ok(planned.includes(p.row), 'positives are always refreshed');
    // the contrastive term's candidates: the best-scored fresh rows only (stale negatives would let it learn freshness)
    qs.forEach((q, i) =>
      q.responses.forEach((e, j) => {
        const scores = env.table.scores(e);
        const fresh = [...planned].sort((a, b) => scores[b] - scores[a] || a - b).slice(0, 6);
        assert.deepEqual(out.candidates[i][j], fresh);
      }),
    );
    const set = new Set(planned);
    for (let r = 0; r < N; r++) {
      if (set.has(r)) {
        assert.deepEqual(env.table.row(r), enc.vec(r), `row ${r} equals a fresh encode`);
        assert.equal(env.table.versions[r], env.version);
      } else {
        assert.deepEqual(env.table.row(r), before.subarray(r * D, (r + 1) * D), `row ${r} untouched`);
        assert.equal(env.table.versions[r], versionsBefore[r]);
      }
    }
  }
});

test('exact mode re-encodes every row each step and its rewards are the brute-force rewards over fresh vectors', () => {
  const policy = { version: 0 };
  const enc = fakeEncoder(policy);
  const env = RetrievalEnvironment.create(N, D, enc.encode, opts('exact'));
  policy.version = 3;
  env.advance();
  const qs = queries(policy, 2);
  const out = env.step(qs);
  assert.equal(out.stats.encodes, N);
  assert.equal(out.stats.meanStaleness, 0);
  const fresh = Array.from({ length: N }, (_, r) => enc.vec(r));
  qs.forEach((q, i) =>
    q.responses.forEach((e, j) => {
      const scores = fresh.map((v) => v.reduce((s, x, t) => s + x * e[t], 0));
      assert.ok(Math.abs(out.rewards[i][j] - rankingReward(scores, q.positives, 'dcg', 10)) < 1e-9);
      // the ranked scores agree to float32's rounding: rows whose scores tie that closely (the encoder's rows
      // 29, 162 and 295 are nearly one vector) may come in either order, as the CPU's float32 sums fall
      const ranked = (rows: number[]): number[] => rows.map((r) => scores[r]);
      const got = ranked(out.candidates[i][j]),
        want = ranked(topK(scores, 6));
      assert.equal(got.length, want.length);
      got.forEach((x, t) => assert.ok(Math.abs(x - want[t]) <= 1e-6, `rank ${t}: ${x} vs ${want[t]}`));
    }),
  );
  // a response equal to its positive's fresh vector ranks it first
  assert.ok(out.rewards[0][0] >= 1);
});

test('a seeded sequence of steps is reproducible (same plans, rewards and table)', () => {
  const run = (): { rewards: number[][][]; table: Float32Array; encodes: number[] } => {
    const policy = { version: 0 };
    const env = RetrievalEnvironment.create(N, D, fakeEncoder(policy).encode, opts('local'));
    const rewards: number[][][] = [],
      encodes: number[] = [];
    for (let step = 1; step <= 3; step++) {
      policy.version++;
      env.advance();
      const out = env.step(queries(policy, step));
      rewards.push(out.rewards);
      encodes.push(out.stats.encodes);
    }
    return { rewards, table: env.table.vectors, encodes };
  };
  assert.deepEqual(run(), run());
});

test(
  'a restored snapshot continues exactly as the environment ' +
    'it was taken from (plans, rewards, table, drift means)',
  () => {
    // a sparse, narrowly searched graph is approximate, so a graph with another history retrieves other candidates
    const o = {
      ...opts('local'),
      graph: { connectivity: 2, expansionAdd: 4, expansionSearch: 2 },
      driftCorrection: true,
    };
    const policy = { version: 0 };
    const env = RetrievalEnvironment.create(N, D, fakeEncoder(policy).encode, o);
    const steps = (e: RetrievalEnvironment, from: number, to: number) => {
      const out: unknown[] = [];
      for (let step = from; step <= to; step++) {
        policy.version = step;
        e.advance();
        const qs = queries(policy, step);
        const plan = e.plan(qs).rows;
        const r = e.step(qs);
        out.push({ plan, rewards: r.rewards, candidates: r.candidates, staleness: r.stats.meanStaleness });
      }
      return out;
    };
    steps(env, 1, 3);
    env.rebuildGraph();
    const snap = env.snapshot();
    const saved = { ...snap, vectors: Float32Array.from(snap.vectors), versions: Int32Array.from(snap.versions) };
    const restored = RetrievalEnvironment.restore(saved, N, D, fakeEncoder(policy).encode, o);
    assert.equal(restored.version, env.version);
    assert.deepEqual(restored.meanAt(env.version - 1), env.meanAt(env.version - 1));
    const live = steps(env, 4, 7);
    policy.version = 3;
    assert.deepEqual(steps(restored, 4, 7), live);
    assert.deepEqual(restored.table.vectors, env.table.vectors);
    assert.throws(
      () => RetrievalEnvironment.restore(saved, N + 1, D, fakeEncoder(policy).encode, o),
      /300 documents × 16 dimensions, this run has 301 × 16/,
    );
  },
);

test('a snapshot taken between graph rebuilds (a run stopped by a signal) restores the graph the live one grew', () => {
  const o = {
    ...opts('local'),
    graph: { connectivity: 2, expansionAdd: 4, expansionSearch: 2 },
    driftCorrection: true,
  };
  const policy = { version: 0 };
  const env = RetrievalEnvironment.create(N, D, fakeEncoder(policy).encode, o);
  const steps = (e: RetrievalEnvironment, from: number, to: number): unknown[] => stepsOf(e, policy, from, to);
  /** Restores a copy of the environment after step `at` and checks it takes the next 4 steps as the live one. */
  const continuesAsLive = (at: number): void => {
    const snap = env.snapshot();
    assert.ok(snap.graphEdits.batches.length > 0, 'the edits since the build are in the snapshot');
    const restored = RetrievalEnvironment.restore(structuredClone(snap), N, D, fakeEncoder(policy).encode, o);
    const live = steps(env, at + 1, at + 4);
    assert.deepEqual(steps(restored, at + 1, at + 4), live, `restored after step ${at}`);
    assert.deepEqual(restored.table.vectors, env.table.vectors);
  };
  // the graph the first encode grew (300 rows, 256 at a time), and two steps of upserts on it
  steps(env, 1, 2);
  continuesAsLive(2);
  // a graph rebuilt from the table (the trainer's scheduled checkpoint), and two steps of upserts on it
  env.rebuildGraph();
  steps(env, 7, 8);
  continuesAsLive(8);
});

test('full refreshes and long runs keep the graph edits within one table, and a restore continues as live', () => {
  const o = {
    ...opts('local', { fullEvery: 3 }),
    graph: { connectivity: 2, expansionAdd: 4, expansionSearch: 2 },
    driftCorrection: true,
  };
  const policy = { version: 0 };
  const env = RetrievalEnvironment.create(N, D, fakeEncoder(policy).encode, o);
  const steps = (e: RetrievalEnvironment, from: number, to: number): unknown[] => stepsOf(e, policy, from, to);
  /** Vectors the snapshot's graph edits hold: the changed rows' old ones and every upsert's. */
  const editRows = (): number => {
    const e = env.snapshot().graphEdits;
    return (e.baseVectors.length + e.vectors.length) / D;
  };
  // steps 3, 6, 9 re-encode every stale row (the whole table: ≈ 2 tables of edits without a rebuild)
  for (let step = 1; step <= 9; step++) {
    steps(env, step, step);
    assert.ok(editRows() <= N, `after step ${step} the graph edits hold ${editRows()} vectors, over ${N} rows`);
    if (step % 3 === 0) assert.equal(editRows(), 0, `the full refresh of step ${step} rebuilt the graph`);
  }
  // no full refresh: ≈ 48 rows a step, so the edits reach a table's worth within these steps
  env.opts.refresh.fullEvery = 0;
  let most = 0;
  for (let step = 10; step <= 20; step++) {
    steps(env, step, step);
    most = Math.max(most, editRows());
  }
  assert.ok(most > N / 2 && most <= N, `the edits held at most ${most} vectors (want ≤ ${N}, and a cap reached)`);
  // a restore between rebuilds continues as the live run, across the rebuilds a full edit log causes
  const restored = RetrievalEnvironment.restore(structuredClone(env.snapshot()), N, D, fakeEncoder(policy).encode, o);
  const live = steps(env, 21, 32);
  assert.deepEqual(steps(restored, 21, 32), live);
  assert.deepEqual(restored.table.vectors, env.table.vectors);
});

test('a table larger than allowed is refused before allocating, naming the bytes needed', () => {
  assert.equal(tableBytes(1000, 1536), 1000 * 1536 * 4 + 4000);
  assert.throws(
    () => new EmbeddingTable(10_000_000, 1536, 8 * 1024 ** 3),
    (e: unknown) =>
      e instanceof TableTooLargeError &&
      /needs 61480000000 bytes \(57\.26 GiB\)/.test(e.message) &&
      /maxTableBytes/.test(e.message),
  );
  assert.doesNotThrow(() => new EmbeddingTable(10, 4, 1024));
});

test('table scores are the float64 dot products of each row with the query, plus the offset of its version', () => {
  const rows = 37,
    dim = 24;
  let seed = 5;
  const next = (): number => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647 - 0.5;
  };
  const table = new EmbeddingTable(rows, dim);
  for (let i = 0; i < rows * dim; i++) table.vectors[i] = next();
  for (let i = 0; i < rows; i++) table.versions[i] = i % 3 === 0 ? -1 : i % 4;
  const q = Float32Array.from({ length: dim }, next);
  const offsets = Float32Array.of(0.5, -0.25, 0.125, 2);
  for (const off of [null, offsets]) {
    const got = table.scores(q, undefined, off);
    for (let i = 0; i < rows; i++) {
      let want = 0;
      for (let j = 0; j < dim; j++) want += table.vectors[i * dim + j] * q[j];
      const v = table.versions[i];
      if (off && v >= 0) want += off[v];
      assert.ok(Math.abs(got[i] - want) < 1e-5, `row ${i}: ${got[i]} vs ${want}`);
    }
  }
});

test('topK returns the best rows first with ties to the lower index', () => {
  assert.deepEqual(topK([0.1, 0.9, 0.5, 0.9, 0.3], 3), [1, 3, 2]);
  assert.deepEqual(topK([0.1, 0.2], 5), [1, 0]);
  assert.deepEqual(topK([0.1, 0.2], 0), []);
});

test('a twin starts from a copy of the table and then evolves on its own', () => {
  const policy = { version: 0 };
  const log: number[][] = [];
  const env = RetrievalEnvironment.create(N, D, fakeEncoder(policy, log).encode, opts('local'));
  log.length = 0;
  const twin = env.twin(opts('exact'));
  assert.equal(log.length, 0, 'no encoding to make a twin');
  assert.deepEqual(twin.table.vectors, env.table.vectors);
  policy.version++;
  env.advance();
  twin.advance();
  twin.step(queries(policy, 1));
  assert.deepEqual(
    log[0],
    Array.from({ length: N }, (_, r) => r),
  );
  assert.equal(env.table.versions[0], 0, 'the original table is untouched');
});

test(
  'drift correction: when an update shifts every embedding by ' +
    'a common vector, corrected local rewards equal exact ones',
  () => {
    const policy = { version: 0 };
    const c = Float32Array.from({ length: D }, (_, j) => Math.cos(j * 0.9) * 0.08);
    // unnormalised on purpose: a pure common shift, which the paired drift estimate recovers exactly
    const vec = (r: number): Float32Array =>
      Float32Array.from({ length: D }, (_, j) => Math.sin(r * 1.37 + j * 0.71) * 0.3 + policy.version * c[j]);
    const encode = (rows: readonly number[]): Float32Array[] => rows.map(vec);
    const make = (dc: boolean): RetrievalEnvironment =>
      RetrievalEnvironment.create(N, D, encode, {
        ...opts('local', { budget: 10, rolling: 5, candidates: 2, neighbours: 1 }),
        driftCorrection: dc,
      });
    const corrected = make(true),
      plain = make(false),
      exact = corrected.twin(opts('exact'));
    let plainDiff = 0;
    for (let step = 1; step <= 5; step++) {
      policy.version++;
      for (const e of [corrected, plain, exact]) e.advance();
      const qs = [0, 1, 2, 3].map((q) => {
        const pos = (step * 31 + q * 57) % N;
        const e = vec(pos + 1).map((x, j) => x + 0.05 * Math.sin(j + q));
        const n = Math.hypot(...e);
        return { positives: [{ row: pos, grade: 1 }], responses: [e.map((x) => x / n)] };
      });
      const ex = exact.step(qs).rewards.flat(),
        co = corrected.step(qs).rewards.flat(),
        pl = plain.step(qs).rewards.flat();
      co.forEach((x, i) =>
        assert.ok(Math.abs(x - ex[i]) < 1e-6, `step ${step} response ${i}: corrected ${x} vs exact ${ex[i]}`),
      );
      plainDiff += pl.reduce((s, x, i) => s + Math.abs(x - ex[i]), 0);
    }
    assert.ok(plainDiff > 0.1, `without the correction the fresh positives are favoured (total |Δ| ${plainDiff})`);
  },
);

test('drift is estimated from the rolling rows only: without them, the rows the queries chose do not stand in', () => {
  const policy = { version: 0 };
  const c = Float32Array.from({ length: D }, (_, j) => Math.cos(j * 0.9) * 0.2);
  const moved = new Set([5, 36, 67, 98]);
  // only the queries' positives move: the corpus mean barely does, so their drift is no estimate of it
  const vec = (r: number): Float32Array =>
    Float32Array.from(
      { length: D },
      (_, j) => Math.sin(r * 1.37 + j * 0.71) * 0.3 + (moved.has(r) ? policy.version * c[j] : 0),
    );
  const encode = (rows: readonly number[]): Float32Array[] => rows.map(vec);
  const local = RetrievalEnvironment.create(N, D, encode, {
    ...opts('local', { budget: 10, rolling: 0, candidates: 0, neighbours: 0 }),
    driftCorrection: true,
  });
  const exact = local.twin(opts('exact'));
  for (let step = 1; step <= 4; step++) {
    policy.version++;
    local.advance();
    exact.advance();
    const qs = [...moved].map((pos, q) => {
      const e = vec(pos + 1).map((x, j) => x + 0.05 * Math.sin(j + q));
      const n = Math.hypot(...e);
      return { positives: [{ row: pos, grade: 1 }], responses: [e.map((x) => x / n)] };
    });
    assert.deepEqual(local.step(qs).rewards, exact.step(qs).rewards, `step ${step}`);
    assert.equal(local.meanAt(local.version), null, 'no rolling rows: no estimate of the drift');
  }
});
