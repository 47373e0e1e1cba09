import { kernels } from '../backend.js';
import type { AttentionShape } from '../kernels.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

export interface AttentionOptions {
  causal: boolean;
  /** 1 = real key, 0 = padding, per [batch, keyLen]. */
  keyMask?: Uint8Array | null;
  /** Defaults to 1/sqrt(headDim). */
  scale?: number;
  /**
   * Attend to the first keyLen positions of k and v only (default: all of dimension 1): a KV cache
   * allocated with room to grow holds more positions than are filled.
   */
  keyLen?: number;
}

/**
 * Scaled dot-product attention with grouped KV heads.
 * q [batch, queryLen, queryHeads, headDim]; k, v [batch, positions, kvHeads, headDim] → like q.
 * With causal masking and queryLen < keyLen, the queries are the last queryLen positions (KV cache).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const bad = (why: string): never => {
    throw new TensorError(
      'attention',
      `${why} (q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)})`,
    );
  };
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) bad('q, k and v must be [batch, length, heads, headDim]');
  const [B, T, H, D] = q.shape,
    [Bk, KS, G, Dk] = k.shape;
  const S = opts.keyLen ?? KS;
  if (Bk !== B || Dk !== D || k.shape.join() !== v.shape.join()) bad('shapes do not agree');
  if (!Number.isInteger(S) || S < 0 || S > KS) bad(`keyLen ${S} is not within the ${KS} positions of k and v`);
  if (H % G !== 0) bad(`${H} query heads are not a multiple of ${G} key/value heads`);
  if (opts.causal && T > S) bad('causal attention needs queryLen ≤ keyLen');
  const keyMask = opts.keyMask ?? null;
  if (keyMask && keyMask.length !== B * S) bad(`keyMask has ${keyMask.length} entries, expected ${B * S}`);
  const s: AttentionShape = {
    batch: B,
    queryHeads: H,
    kvHeads: G,
    queryLen: T,
    keyLen: S,
    keyStride: KS,
    headDim: D,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    causal: opts.causal,
    keyMask,
  };
  const out = kernels().empty(q.size),
    lse = kernels().empty(B * H * T);
  kernels().attentionForward(q.buf, k.buf, v.buf, out, lse, s);
  return Tensor.record(
    new Tensor(out, q.shape),
    'attention',
    [q, k, v],
    (g) => {
      const dq = kernels().alloc(q.size),
        dk = kernels().alloc(k.size),
        dv = kernels().alloc(v.size);
      kernels().attentionBackward(q.buf, k.buf, v.buf, out, lse, g, dq, dk, dv, s);
      return [dq, dk, dv];
    },
    [lse],
  );
}
