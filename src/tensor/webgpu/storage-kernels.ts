/**
 * WebGPU storage and element-wise kernels: alloc/upload/download, fill, binary, unary, axpby, strided
 * copy, reductions, Σx² and the finite check. An output that is also an input is computed into a fresh
 * buffer and copied back: WebGPU forbids binding one buffer for reading and writing in one dispatch.
 */
import { HalfArray } from '../half-float.js';
import { type BinaryOp, type F32, type Kernels, ReduceOp, type UnaryOp } from '../kernels.js';
import { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { Params, runFlat, runRows, WORKGROUP } from './gpu-dispatch.js';

type GpuKernels = Kernels<GpuArray, GpuArray>;
export type StorageKernels = Pick<
  GpuKernels,
  | 'device'
  | 'alloc'
  | 'empty'
  | 'fromHost'
  | 'halfFromHost'
  | 'toHost'
  | 'holds'
  | 'fill'
  | 'clone'
  | 'binary'
  | 'unary'
  | 'axpby'
  | 'reduce'
  | 'copy'
  | 'sumSquares'
  | 'sumSquaresMany'
  | 'release'
  | 'allFinite'
>;

const RANK = 6;

/** Reads an array's float32 values back (blocks until the GPU has computed them). */
export function download(x: GpuArray): Float32Array {
  const bytes = x.device.read(x.id, 0, x.length * 4);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/**
 * A host array on the GPU for one dispatch, as the same 32-bit words: int32 (token ids, targets, positions;
 * a byte mask widened to int32) or float32 (the uniforms a sampler draws).
 */
export function uploadHost(dev: GpuDevice, x: Int32Array | Uint8Array | Float32Array): GpuArray {
  const words = x instanceof Uint8Array ? Int32Array.from(x) : x;
  const g = new GpuArray(dev, Math.max(words.length, 1), 'f32', words.length === 0);
  if (words.length > 0) dev.write(g.id, 0, words);
  return g;
}

/** Runs f with an output that does not alias any input; copies the result over when it had to. */
export function intoFresh(out: GpuArray, inputs: GpuArray[], f: (o: GpuArray) => void): void {
  if (!inputs.includes(out)) return f(out);
  const tmp = new GpuArray(out.device, out.length);
  f(tmp);
  out.device.copy(tmp.id, 0, out.id, 0, out.length * 4);
  tmp.free();
}

/**
 * How a device wants a reduction split: about `width` invocations, each over at least `perLane` values. A
 * large GPU holds ~100k invocations in flight and hides each load's latency behind the others'; a software
 * adapter runs a few invocations per core, long loops best, and pays for every extra invocation and pass.
 */
export interface ReduceSplit {
  width: number;
  perLane: number;
}
export const GPU_REDUCE: ReduceSplit = { width: 131072, perLane: 16 };
export const SOFTWARE_REDUCE: ReduceSplit = { width: 64, perLane: 1024 };

/**
 * How many lanes (partial results) each output of [outer, n, inner] reduced over n is split into: 1 (one
 * invocation loops over the whole axis) where the outputs alone are an eighth of the width or more, or the
 * axis is shorter than 8·perLane; else enough lanes for about `width` invocations, each over at least
 * perLane values. The split depends on the shape and the device only, so a reduction gives the same bits on
 * every run.
 */
export function reduceLanes(outer: number, n: number, inner: number, split: ReduceSplit): number {
  const outputs = outer * inner;
  if (outputs === 0 || 8 * outputs >= split.width || n < 8 * split.perLane) return 1;
  return Math.min(Math.ceil(split.width / outputs), Math.floor(n / split.perLane));
}

/** The kernels on `dev`, splitting reductions as `reduceSplit` says (tests force a GPU's on a software adapter). */
export function storageKernels(
  dev: GpuDevice,
  reduceSplit = dev.facts.software ? SOFTWARE_REDUCE : GPU_REDUCE,
): StorageKernels {
  const alloc = (n: number): GpuArray => new GpuArray(dev, n);
  // written whole before any kernel reads it: no clear (see GpuDevice.alloc)
  const empty = (n: number): GpuArray => new GpuArray(dev, n, 'f32', false);
  const fromHost = (x: F32): GpuArray => {
    const g = x.length > 0 ? empty(x.length) : alloc(0);
    if (x.length > 0) dev.write(g.id, 0, x);
    return g;
  };
  const copyWhole = (src: GpuArray, dst: GpuArray): void => dev.copy(src.id, 0, dst.id, 0, src.length * 4);
  // Each array's Σx², as (e, q, bad) with Σx² = q·2^(2e) (see sumSquaresPartial), lands in its own slot of one
  // buffer, read back once; the slots add up in double.
  const sumSquaresMany = (xs: readonly GpuArray[]): number => {
    const totals = alloc(3 * Math.max(xs.length, 1));
    xs.forEach((x, slot) => {
      if (x.length === 0) return;
      const perInvocation = Math.max(1, Math.ceil(x.length / (WORKGROUP * 4096)));
      const groups = Math.ceil(x.length / (WORKGROUP * perInvocation));
      const partial = alloc(3 * groups);
      runRows(dev, 'sumSquaresPartial', [x, partial], new Params().u32(x.length, perInvocation), groups);
      runRows(dev, 'sumPartials', [partial, totals], new Params().u32(groups, slot), 1);
      partial.free();
    });
    const t = download(totals);
    totals.free();
    let sum = 0,
      bad = 0;
    for (let slot = 0; slot < xs.length; slot++) {
      sum += t[3 * slot + 1] * 2 ** (2 * t[3 * slot]);
      bad = Math.max(bad, t[3 * slot + 2]);
    }
    return bad === 2 ? NaN : bad === 1 ? Infinity : sum;
  };
  // Folds [outer, n, inner] over n into `lanes` partials per output ([outer, lanes, inner], each with its index
  // along n for max), and those again, until one lane is left: out and arg.
  const reduceInto = (
    op: ReduceOp,
    x: GpuArray,
    argIn: GpuArray | null,
    outer: number,
    n: number,
    inner: number,
    out: GpuArray,
    arg: GpuArray,
  ): void => {
    const lanes = reduceLanes(outer, n, inner, reduceSplit);
    const size = outer * lanes * inner;
    const partial = lanes === 1 ? out : empty(size),
      partialArg = lanes === 1 ? arg : empty(op === ReduceOp.Max ? size : 1);
    const p = new Params()
      .u32(size, n, inner, op)
      .f32(-Infinity)
      .u32(lanes, argIn ? 1 : 0);
    // argIn is only read where x holds partials: otherwise any buffer fills the binding
    runFlat(dev, 'reduce', [x, argIn ?? x, partial, partialArg], p, size);
    if (lanes === 1) return;
    reduceInto(op, partial, op === ReduceOp.Max ? partialArg : null, outer, lanes, inner, out, arg);
    partial.free();
    partialArg.free();
  };
  return {
    device: 'webgpu',
    // cleared by the GPU thread, a fill on the device that costs the host nothing
    alloc,
    empty,
    fromHost,
    halfFromHost(x: HalfArray): GpuArray {
      const g = new GpuArray(dev, x.length, x.dtype);
      if (x.length === 0) return g;
      const padded = x.length % 2 === 0 ? x.bits : Uint16Array.from({ length: x.length + 1 }, (_, i) => x.bits[i] ?? 0);
      dev.write(g.id, 0, padded);
      return g;
    },
    toHost: download,
    holds: (x: unknown) => x instanceof GpuArray && x.device === dev,
    fill(x, value) {
      runFlat(dev, 'fill', [x], new Params().u32(x.length).f32(value), x.length);
    },
    clone(x) {
      const g = alloc(x.length);
      copyWhole(x, g);
      return g;
    },
    binary(op: BinaryOp, a, aStrides, b, bStrides, out, shape) {
      const n = out.length;
      intoFresh(out, [a, b], (o) => {
        const p = new Params().u32(n, shape.length, op).u32s(shape, RANK).u32s(aStrides, RANK).u32s(bStrides, RANK);
        runFlat(dev, 'binary', [a, b, o], p, n);
      });
    },
    unary(op: UnaryOp, x, out) {
      intoFresh(out, [x], (o) => runFlat(dev, 'unary', [x, o], new Params().u32(x.length, op), x.length));
    },
    axpby(alpha, x, beta, out) {
      intoFresh(out, [x], (o) => {
        if (o !== out) copyWhole(out, o);
        runFlat(dev, 'axpby', [x, o], new Params().u32(x.length).f32(alpha, beta), x.length);
      });
    },
    reduce(op: ReduceOp, x, outer, n, inner, out, argmax) {
      const arg = new GpuArray(dev, Math.max(outer * inner, 1));
      intoFresh(out, [x], (o) => reduceInto(op, x, null, outer, n, inner, o, arg));
      // arg has a slot even where there are no outputs (a buffer is never empty)
      if (argmax) argmax.set(new Int32Array(download(arg).buffer, 0, outer * inner));
      arg.free();
    },
    copy(src, srcOff, srcStrides, dst, dstOff, dstStrides, shape, accumulate) {
      const kept: number[] = [],
        red: number[] = [];
      for (let d = 0; d < shape.length; d++) (dstStrides[d] === 0 && shape[d] > 1 ? red : kept).push(d);
      const count = (axes: number[]): number => axes.reduce((acc, d) => acc * shape[d], 1);
      if (count(kept) * count(red) === 0) return;
      const pick = (axes: number[], from: ArrayLike<number>): number[] => axes.map((d) => from[d]);
      intoFresh(dst, [src], (o) => {
        if (o !== dst) copyWhole(dst, o);
        const p = new Params()
          .u32(count(kept), kept.length, count(red), red.length, srcOff, dstOff, accumulate ? 1 : 0)
          .u32s(pick(kept, shape), RANK)
          .u32s(pick(kept, srcStrides), RANK)
          .u32s(pick(kept, dstStrides), RANK)
          .u32s(pick(red, shape), RANK)
          .u32s(pick(red, srcStrides), RANK);
        runFlat(dev, 'copy', [src, o], p, count(kept));
      });
    },
    sumSquares: (x) => sumSquaresMany([x]),
    sumSquaresMany,
    release: (x) => x.free(),
    allFinite(x) {
      if (x.length === 0) return true;
      const flag = alloc(1);
      runFlat(dev, 'allFinite', [x, flag], new Params().u32(x.length), x.length);
      const bad = download(flag)[0] !== 0;
      flag.free();
      return !bad;
    },
  };
}
