/**
 * Fused softmax attention on WebGPU (the WGSL and its design: wgsl/attention.ts). The forward pass is one
 * dispatch; the backward pass three: (lse, D) per query row, dq per query block, dk and dv per key block.
 * A key mask is uploaded once per distinct content and reused by every layer that passes the same array.
 */
import type { AttentionShape, Kernels } from '../kernels.js';
import { GpuArray } from './gpu-array.js';
import { type GpuDevice, GpuError } from './gpu-device.js';
import { Params, grid, runFlat } from './gpu-dispatch.js';
import { intoFresh, uploadHost } from './storage-kernels.js';
import { ATTENTION_DIMS, ATTENTION_WORKGROUP, attentionKernelName, attentionTileRows } from './wgsl/attention.js';

export type AttentionKernels = Pick<Kernels<GpuArray, GpuArray>, 'attentionForward' | 'attentionBackward'>;

/** The smallest headDim bucket that holds headDim (the kernels keep a row in registers). */
function bucket(headDim: number): number {
  const d = ATTENTION_DIMS.find((x) => headDim <= x);
  if (d === undefined) {
    const most = ATTENTION_DIMS.at(-1);
    throw new GpuError(`attention on WebGPU takes heads of up to ${most} dimensions, not ${headDim}: use --device cpu`);
  }
  return d;
}

/**
 * Key lanes per query row: with few queries (decoding), a row's keys are split over several invocations
 * so the workgroup is not mostly idle; never more lanes than a tile has keys.
 */
function lanesFor(queryLen: number, maxd: number): number {
  let rows = 1;
  while (rows < Math.min(queryLen, ATTENTION_WORKGROUP)) rows *= 2;
  return Math.min(attentionTileRows(maxd), ATTENTION_WORKGROUP / rows);
}

/** The parameter block the three tiled kernels share (see wgsl/attention.ts). */
function shapeParams(s: AttentionShape, maskOff: number, rows: number, lanes: number, blocks: number): Params {
  return new Params()
    .u32(s.batch, s.queryHeads, s.kvHeads, s.queryLen, s.keyLen, s.keyStride ?? s.keyLen, s.headDim)
    .f32(s.scale)
    .u32(s.causal ? 1 : 0, s.keyMask ? 1 : 0, maskOff, rows, lanes, blocks);
}

/**
 * `unrolled` picks the kernels whose loops over a row have constant bounds (see wgsl/attention.ts): by
 * default on hardware GPUs, not on CPU Vulkan drivers, which compile them slowly.
 */
export function attentionKernels(dev: GpuDevice, unrolled = !dev.facts.software): AttentionKernels {
  const kernel = (kind: string, maxd: number): string => attentionKernelName(kind, maxd, unrolled);
  const masks = new WeakMap<Uint8Array, { bytes: Buffer; gpu: GpuArray }>();
  let noMask: GpuArray | null = null;

  /** The mask as int32 on the GPU; the same array with the same content is not uploaded again. */
  const maskOnGpu = (m: Uint8Array | null): GpuArray => {
    if (!m) return (noMask ??= new GpuArray(dev, 1));
    const view = Buffer.from(m.buffer, m.byteOffset, m.byteLength);
    const hit = masks.get(m);
    if (hit && hit.bytes.equals(view)) return hit.gpu;
    const gpu = uploadHost(dev, m);
    masks.set(m, { bytes: Buffer.from(view), gpu });
    return gpu;
  };

  return {
    attentionForward(q, k, v, out, lse, s) {
      const { batch: B, queryHeads: H, queryLen: T } = s;
      if (B * H * T === 0) return;
      const maxd = bucket(s.headDim);
      const lanes = lanesFor(T, maxd),
        rows = ATTENTION_WORKGROUP / lanes,
        blocks = Math.ceil(T / rows);
      const mask = maskOnGpu(s.keyMask);
      const p = shapeParams(s, 0, rows, lanes, blocks);
      intoFresh(out, [q, k, v], (o) =>
        intoFresh(lse, [q, k, v, o], (l) =>
          dev.run(
            kernel('attentionForward', maxd),
            [q, k, v, mask, o, l].map((a) => a.id),
            p.buffer,
            grid(B * H * blocks),
          ),
        ),
      );
    },

    attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, s) {
      const { batch: B, queryHeads: H, kvHeads: G, queryLen: T, keyLen: S, headDim: D } = s;
      const KS = s.keyStride ?? S;
      const maxd = bucket(D);
      const queryRows = B * H * T;
      const maskLen = s.keyMask ? B * S : 0;
      // aux: (lse bits, Σ dout∘out) per query row, then the key mask: one buffer keeps every kernel at ≤ 8
      // storage bindings
      const aux = new GpuArray(dev, Math.max(2 * queryRows + maskLen, 1));
      const maskOff = 2 * queryRows;
      runFlat(dev, 'attentionDelta', [out, dout, lse, aux], new Params().u32(queryRows, H, T, D), queryRows);
      if (maskLen > 0) dev.copy(maskOnGpu(s.keyMask).id, 0, aux.id, maskOff * 4, maskLen * 4);
      const inputs = [q, k, v, out, lse, dout];
      if (queryRows > 0) {
        const lanes = lanesFor(T, maxd),
          rows = ATTENTION_WORKGROUP / lanes,
          blocks = Math.ceil(T / rows);
        const p = shapeParams(s, maskOff, rows, lanes, blocks);
        intoFresh(dq, inputs, (o) =>
          dev.run(
            kernel('attentionBackwardQuery', maxd),
            [q, k, v, dout, aux, o].map((a) => a.id),
            p.buffer,
            grid(B * H * blocks),
          ),
        );
      }
      const keyBlocks = Math.ceil(KS / ATTENTION_WORKGROUP);
      if (B * G * keyBlocks > 0) {
        const p = shapeParams(s, maskOff, ATTENTION_WORKGROUP, 1, keyBlocks);
        intoFresh(dk, inputs, (ok) =>
          intoFresh(dv, [...inputs, ok], (ov) =>
            dev.run(
              kernel('attentionBackwardKey', maxd),
              [q, k, v, dout, aux, ok, ov].map((a) => a.id),
              p.buffer,
              grid(B * G * keyBlocks),
            ),
          ),
        );
      }
      aux.free();
    },
  };
}
