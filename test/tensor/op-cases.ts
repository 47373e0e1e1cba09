/**
 * The op cases every gradient test runs: each names a PyTorch function in test/oracles/ops.py that
 * computes the same thing. Shapes are deliberately awkward: odd sizes, broadcasting, batch > 1.
 */
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';

export type Init = 'normal' | 'positive' | 'awayFromZero' | 'distinct';

export interface InputSpec {
  shape: number[];
  init?: Init;
  grad?: boolean;
}

export interface OpCase {
  name: string;
  /** Key of the PyTorch implementation in test/oracles/ops.py. */
  op: string;
  inputs: InputSpec[];
  ints?: Record<string, number[]>;
  params?: Record<string, number | boolean | number[]>;
  /** Finite-difference step; smaller where the op has kinks near the inputs (max). */
  fdStep?: number;
  run(x: Tensor[], c: OpCase): Tensor;
}

const p = (c: OpCase, k: string): number => c.params![k] as number;
const b = (c: OpCase, k: string): boolean => c.params![k] as boolean;
const ints = (c: OpCase, k: string): Int32Array => Int32Array.from(c.ints![k]);

export const opCases: OpCase[] = [
  {
    name: 'matmul batched',
    op: 'matmul',
    inputs: [{ shape: [3, 5, 7] }, { shape: [3, 7, 4] }],
    params: { transA: false, transB: false },
    run: (x, c) => T.matmul(x[0], x[1], { transA: b(c, 'transA'), transB: b(c, 'transB') }),
  },
  {
    name: 'matmul transA transB',
    op: 'matmul',
    inputs: [{ shape: [2, 7, 5] }, { shape: [2, 3, 7] }],
    params: { transA: true, transB: true },
    run: (x, c) => T.matmul(x[0], x[1], { transA: b(c, 'transA'), transB: b(c, 'transB') }),
  },
  {
    name: 'matmul shared weight (linear)',
    op: 'matmul',
    inputs: [{ shape: [2, 3, 5, 7] }, { shape: [9, 7] }],
    params: { transA: false, transB: true },
    run: (x, c) => T.matmul(x[0], x[1], { transA: b(c, 'transA'), transB: b(c, 'transB') }),
  },
  {
    name: 'matmul shared left',
    op: 'matmul',
    inputs: [{ shape: [5, 7] }, { shape: [3, 7, 4] }],
    params: { transA: false, transB: false },
    run: (x, c) => T.matmul(x[0], x[1], { transA: b(c, 'transA'), transB: b(c, 'transB') }),
  },
  {
    name: 'matmul transA shared right',
    op: 'matmul',
    inputs: [{ shape: [3, 7, 5] }, { shape: [7, 4] }],
    params: { transA: true, transB: false },
    run: (x, c) => T.matmul(x[0], x[1], { transA: b(c, 'transA'), transB: b(c, 'transB') }),
  },
  {
    name: 'linear with bias',
    op: 'linear',
    inputs: [{ shape: [2, 5, 7] }, { shape: [3, 7] }, { shape: [3] }],
    run: (x) => T.linear(x[0], x[1], x[2]),
  },
  {
    name: 'add broadcast',
    op: 'add',
    inputs: [{ shape: [3, 1, 5] }, { shape: [4, 1] }],
    run: (x) => T.add(x[0], x[1]),
  },
  { name: 'sub broadcast', op: 'sub', inputs: [{ shape: [2, 3, 5] }, { shape: [5] }], run: (x) => T.sub(x[0], x[1]) },
  {
    name: 'mul broadcast',
    op: 'mul',
    inputs: [{ shape: [3, 1] }, { shape: [2, 3, 7] }],
    run: (x) => T.mul(x[0], x[1]),
  },
  {
    name: 'div broadcast',
    op: 'div',
    inputs: [{ shape: [2, 3, 5] }, { shape: [3, 1], init: 'awayFromZero' }],
    run: (x) => T.div(x[0], x[1]),
  },
  {
    name: 'affine',
    op: 'affine',
    inputs: [{ shape: [3, 5] }],
    params: { alpha: -1.7, beta: 0.3 },
    run: (x, c) => T.affine(x[0], p(c, 'alpha'), p(c, 'beta')),
  },
  { name: 'exp', op: 'exp', inputs: [{ shape: [3, 7] }], run: (x) => T.exp(x[0]) },
  { name: 'log', op: 'log', inputs: [{ shape: [3, 7], init: 'positive' }], run: (x) => T.log(x[0]) },
  { name: 'sqrt', op: 'sqrt', inputs: [{ shape: [3, 7], init: 'positive' }], run: (x) => T.sqrt(x[0]) },
  { name: 'square', op: 'square', inputs: [{ shape: [3, 7] }], run: (x) => T.square(x[0]) },
  {
    name: 'sum axis 1',
    op: 'sum',
    inputs: [{ shape: [3, 5, 7] }],
    params: { axis: 1, keepdim: false },
    run: (x, c) => T.sum(x[0], p(c, 'axis'), b(c, 'keepdim')),
  },
  {
    name: 'sum axis -1 keepdim',
    op: 'sum',
    inputs: [{ shape: [3, 5, 7] }],
    params: { axis: -1, keepdim: true },
    run: (x, c) => T.sum(x[0], p(c, 'axis'), b(c, 'keepdim')),
  },
  { name: 'sum all', op: 'sumall', inputs: [{ shape: [3, 5, 7] }], run: (x) => T.sum(x[0]) },
  {
    name: 'mean axis 0',
    op: 'mean',
    inputs: [{ shape: [3, 5, 7] }],
    params: { axis: 0, keepdim: false },
    run: (x, c) => T.mean(x[0], p(c, 'axis'), b(c, 'keepdim')),
  },
  {
    name: 'max axis 1',
    op: 'max',
    inputs: [{ shape: [3, 5, 7], init: 'distinct' }],
    params: { axis: 1, keepdim: true },
    fdStep: 1e-2,
    run: (x, c) => T.max(x[0], p(c, 'axis'), b(c, 'keepdim')),
  },
  {
    name: 'reshape',
    op: 'reshape',
    inputs: [{ shape: [3, 5, 7] }],
    params: { shape: [5, 21] },
    run: (x, c) => T.reshape(x[0], c.params!.shape as number[]),
  },
  {
    name: 'transpose',
    op: 'transpose',
    inputs: [{ shape: [3, 5, 7] }],
    params: { a: 0, b: 2 },
    run: (x, c) => T.transpose(x[0], p(c, 'a'), p(c, 'b')),
  },
  {
    name: 'permute',
    op: 'permute',
    inputs: [{ shape: [2, 3, 5, 7] }],
    params: { perm: [2, 0, 3, 1] },
    run: (x, c) => T.permute(x[0], c.params!.perm as number[]),
  },
  {
    name: 'slice',
    op: 'slice',
    inputs: [{ shape: [3, 9, 5] }],
    params: { axis: 1, start: 2, end: 7 },
    run: (x, c) => T.slice(x[0], p(c, 'axis'), p(c, 'start'), p(c, 'end')),
  },
  {
    name: 'concat',
    op: 'concat',
    inputs: [{ shape: [3, 2, 5] }, { shape: [3, 4, 5] }, { shape: [3, 1, 5] }],
    params: { axis: 1 },
    run: (x, c) => T.concat(x, p(c, 'axis')),
  },
  {
    name: 'embedding repeated ids',
    op: 'embedding',
    inputs: [{ shape: [11, 6] }],
    ints: { ids: [3, 0, 10, 3, 7, 3, 1] },
    params: { idsShape: [7] },
    run: (x, c) => T.embedding(x[0], ints(c, 'ids')),
  },
  {
    name: 'rmsnorm',
    op: 'rmsnorm',
    inputs: [{ shape: [3, 5, 7] }, { shape: [7], init: 'positive' }],
    params: { eps: 1e-6 },
    run: (x, c) => T.rmsnorm(x[0], x[1], p(c, 'eps')),
  },
  {
    name: 'rope',
    op: 'rope',
    inputs: [{ shape: [2, 5, 3, 8] }],
    ints: { positions: [0, 1, 2, 3, 4, 7, 8, 9, 10, 11] },
    params: { theta: 10000, maxPos: 16 },
    run: (x, c) => T.rope(x[0], T.ropeTables(8, p(c, 'maxPos'), p(c, 'theta')), ints(c, 'positions')),
  },
  { name: 'silu', op: 'silu', inputs: [{ shape: [3, 11] }], run: (x) => T.silu(x[0]) },
  { name: 'swiglu', op: 'swiglu', inputs: [{ shape: [3, 11] }, { shape: [3, 11] }], run: (x) => T.swiglu(x[0], x[1]) },
  { name: 'softmax', op: 'softmax', inputs: [{ shape: [3, 5, 7] }], run: (x) => T.softmax(x[0]) },
  { name: 'logSoftmax', op: 'logSoftmax', inputs: [{ shape: [3, 5, 7] }], run: (x) => T.logSoftmax(x[0]) },
  {
    name: 'logsumexp axis 1',
    op: 'logsumexp',
    inputs: [{ shape: [3, 5, 7] }],
    params: { axis: 1 },
    run: (x, c) => T.logsumexp(x[0], p(c, 'axis')),
  },
  {
    name: 'crossEntropy mean ignore',
    op: 'crossEntropy',
    inputs: [{ shape: [7, 13] }],
    ints: { targets: [3, -100, 12, 0, 5, -100, 9] },
    params: { sum: false },
    run: (x, c) => T.crossEntropy(x[0], ints(c, 'targets')),
  },
  {
    name: 'crossEntropy sum 3-d',
    op: 'crossEntropy',
    inputs: [{ shape: [2, 3, 5] }],
    ints: { targets: [1, 4, 0, 2, 2, 3] },
    params: { sum: true },
    run: (x, c) => T.crossEntropy(x[0], ints(c, 'targets'), { reduction: 'sum' }),
  },
  {
    name: 'linearCrossEntropy mean ignore, 3 chunks',
    op: 'linearCrossEntropy',
    inputs: [{ shape: [11, 6] }, { shape: [13, 6] }],
    ints: { targets: [3, -100, 12, 0, 5, 7, 9, -100, 1, 2, 11] },
    params: { sum: false },
    run: (x, c) => T.linearCrossEntropy(x[0], x[1], ints(c, 'targets'), { chunkRows: 4 }),
  },
  {
    name: 'linearCrossEntropy sum, one chunk',
    op: 'linearCrossEntropy',
    inputs: [{ shape: [7, 5] }, { shape: [9, 5] }],
    ints: { targets: [1, 8, 0, 2, 2, 3, 4] },
    params: { sum: true },
    run: (x, c) => T.linearCrossEntropy(x[0], x[1], ints(c, 'targets'), { reduction: 'sum' }),
  },
  {
    name: 'attention causal GQA',
    op: 'attention',
    inputs: [{ shape: [2, 5, 6, 4] }, { shape: [2, 5, 2, 4] }, { shape: [2, 5, 2, 4] }],
    params: { causal: true },
    run: (x, c) => T.attention(x[0], x[1], x[2], { causal: b(c, 'causal') }),
  },
  {
    name: 'attention KV-cache queries',
    op: 'attention',
    inputs: [{ shape: [2, 3, 3, 5] }, { shape: [2, 7, 1, 5] }, { shape: [2, 7, 1, 5] }],
    params: { causal: true },
    run: (x, c) => T.attention(x[0], x[1], x[2], { causal: b(c, 'causal') }),
  },
  {
    name: 'attention padded non-causal',
    op: 'attention',
    inputs: [{ shape: [3, 4, 4, 3] }, { shape: [3, 6, 2, 3] }, { shape: [3, 6, 2, 3] }],
    ints: { mask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1] },
    params: { causal: false },
    run: (x, c) => T.attention(x[0], x[1], x[2], { causal: b(c, 'causal'), keyMask: Uint8Array.from(c.ints!.mask) }),
  },
  {
    name: 'attention left-padded causal',
    op: 'attention',
    inputs: [{ shape: [2, 5, 2, 4] }, { shape: [2, 5, 2, 4] }, { shape: [2, 5, 2, 4] }],
    ints: { mask: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1] },
    params: { causal: true },
    run: (x, c) => T.attention(x[0], x[1], x[2], { causal: b(c, 'causal'), keyMask: Uint8Array.from(c.ints!.mask) }),
  },
  { name: 'l2normalize', op: 'l2normalize', inputs: [{ shape: [4, 9] }], run: (x) => T.l2normalize(x[0]) },
  {
    name: 'cosineSimilarity broadcast',
    op: 'cosine',
    inputs: [{ shape: [3, 1, 6] }, { shape: [4, 6] }],
    run: (x) => T.cosineSimilarity(x[0], x[1]),
  },
  {
    name: 'cosineMatrix',
    op: 'cosineMatrix',
    inputs: [{ shape: [3, 6] }, { shape: [5, 6] }],
    run: (x) => T.cosineMatrix(x[0], x[1]),
  },
];

/** Deterministic inputs for a case. */
export function makeInputs(c: OpCase, seed: number): Float32Array[] {
  const rng = new T.Rng(seed);
  return c.inputs.map((spec) => {
    const n = spec.shape.reduce((a, d) => a * d, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      switch (spec.init ?? 'normal') {
        case 'normal':
          d[i] = rng.normal();
          break;
        case 'positive':
          d[i] = 0.5 + rng.next() * 1.5;
          break;
        case 'awayFromZero':
          d[i] = (rng.next() < 0.5 ? -1 : 1) * (0.5 + rng.next());
          break;
        case 'distinct':
          d[i] = (((i * 7919) % n) / n - 0.5) * 10 + 0.001 * rng.next();
          break;
      }
    }
    return d;
  });
}
