import { PackedTopK, packKey, unpackRank, unpackScore } from './top-k.js';
import { createDotKernel, type DotsFn } from './wasm-dot-kernel.js';

/**
 * Exact top-k search for a slice of queries against every document, on L2-normalised rows (so dot = cosine).
 * Runs in a worker or in the calling thread. Work is blocked for the caches: documents come in chunks of CHUNK rows,
 * each chunk is swept in sub-blocks of BLOCK documents by every 4-query group, so a sub-block (BLOCK · dim floats)
 * stays in L2 while the queries stream past it; scores then feed one small heap per query.
 */
const CHUNK = 1024;
const BLOCK = 64;

export interface SliceTask {
  /** All queries, normalised, `dim` floats per row (dim a multiple of 4). */
  queries: Float32Array;
  /** All documents, normalised, same row width. */
  docs: Float32Array;
  dim: number;
  numDocs: number;
  qStart: number;
  qEnd: number;
  k: number;
  /** Document id order (top-k.ts idRanks) for trec_eval's tie rule. */
  idRank: Int32Array;
  kernel: 'wasm' | 'js';
}

export interface SliceResult {
  /** Per query of the slice: document indexes best first, and their cosine scores. */
  docs: Int32Array[];
  scores: Float64Array[];
  kernel: 'wasm' | 'js';
}

/**
 * The plain-TS kernel with the same contract as the WebAssembly one (byte pointers into `mem`): 4 queries × 2
 * documents per step, eight accumulators, so each loaded float feeds several products.
 */
function jsDots(mem: Float32Array): DotsFn {
  return (qPtr, nq, dPtr, nd, dimBytes, outPtr, rowBytes) => {
    const dim = dimBytes >> 2;
    const row = rowBytes >> 2;
    for (let q = 0; q < nq; q += 4) {
      const a0 = (qPtr >> 2) + q * dim,
        a1 = a0 + dim,
        a2 = a1 + dim,
        a3 = a2 + dim;
      for (let d = 0; d < nd; d += 2) {
        const b0 = (dPtr >> 2) + d * dim,
          b1 = b0 + dim;
        let s00 = 0,
          s01 = 0,
          s10 = 0,
          s11 = 0,
          s20 = 0,
          s21 = 0,
          s30 = 0,
          s31 = 0;
        for (let i = 0; i < dim; i++) {
          const x0 = mem[b0 + i]!,
            x1 = mem[b1 + i]!;
          const y0 = mem[a0 + i]!,
            y1 = mem[a1 + i]!,
            y2 = mem[a2 + i]!,
            y3 = mem[a3 + i]!;
          s00 += y0 * x0;
          s01 += y0 * x1;
          s10 += y1 * x0;
          s11 += y1 * x1;
          s20 += y2 * x0;
          s21 += y2 * x1;
          s30 += y3 * x0;
          s31 += y3 * x1;
        }
        const o = (outPtr >> 2) + q * row + d;
        mem[o] = s00;
        mem[o + 1] = s01;
        mem[o + row] = s10;
        mem[o + row + 1] = s11;
        mem[o + 2 * row] = s20;
        mem[o + 2 * row + 1] = s21;
        mem[o + 3 * row] = s30;
        mem[o + 3 * row + 1] = s31;
      }
    }
  };
}

/** `onChunk(docsDone)` is called after each chunk of documents has been scored against the whole slice. */
export function searchSlice(task: SliceTask, onChunk?: (docsDone: number) => void): SliceResult {
  const { queries, docs, dim, numDocs, qStart, qEnd, k, idRank } = task;
  if (dim % 4 !== 0) throw new RangeError('row width must be a multiple of 4 (pad with zeros)');
  const nq = qEnd - qStart;
  const nqPad = (nq + 3) & ~3;
  const dimBytes = dim * 4;
  // Workspace: [queries nqPad × dim][document chunk (CHUNK + 1) × dim][scores nqPad × CHUNK]
  const qPtr = 0;
  const dPtr = nqPad * dimBytes;
  const outPtr = dPtr + (CHUNK + 2) * dimBytes;
  const bytes = outPtr + nqPad * CHUNK * 4;
  let kernelName = task.kernel;
  let mem: Float32Array;
  let dots: DotsFn;
  const wasm = kernelName === 'wasm' ? createDotKernel(bytes) : null;
  if (wasm) {
    mem = new Float32Array(wasm.memory.buffer);
    dots = wasm.dots;
  } else {
    kernelName = 'js';
    mem = new Float32Array(bytes / 4);
    dots = jsDots(mem);
  }
  mem.set(queries.subarray(qStart * dim, qEnd * dim), qPtr / 4);
  // Document index by id rank, to turn packed keys back into documents.
  const docOfRank = new Int32Array(numDocs);
  for (let d = 0; d < numDocs; d++) docOfRank[idRank[d]!] = d;
  const tops = Array.from({ length: nq }, () => new PackedTopK(Math.min(k, numDocs), CHUNK));
  for (let c0 = 0; c0 < numDocs; c0 += CHUNK) {
    const len = Math.min(CHUNK, numDocs - c0);
    mem.set(docs.subarray(c0 * dim, (c0 + len) * dim), dPtr / 4);
    const lenPad = len + (len & 1);
    if (lenPad > len) mem.fill(0, dPtr / 4 + len * dim, dPtr / 4 + lenPad * dim);
    for (let s = 0; s < lenPad; s += BLOCK) {
      dots(qPtr, nqPad, dPtr + s * dimBytes, Math.min(BLOCK, lenPad - s), dimBytes, outPtr + s * 4, CHUNK * 4);
    }
    for (let r = 0; r < nq; r++) {
      const top = tops[r]!;
      const base = outPtr / 4 + r * CHUNK;
      const min = top.minScore;
      for (let j = 0; j < len; j++) {
        const s = mem[base + j]!;
        if (s >= min && Number.isFinite(s)) top.offer(packKey(s, idRank[c0 + j]!));
      }
    }
    onChunk?.(c0 + len);
  }
  const out: SliceResult = { docs: [], scores: [], kernel: kernelName };
  for (const top of tops) {
    const keys = top.sorted();
    out.docs.push(Int32Array.from(keys, (key) => docOfRank[unpackRank(key)]!));
    out.scores.push(Float64Array.from(keys, unpackScore));
  }
  return out;
}
