/**
 * IEEE binary16 (f16) and bfloat16 (bf16) <-> float32 conversion on raw bits.
 *
 * Weights files store 16-bit floats; we compute in float32. Narrowing rounds to nearest, ties to even
 * (what PyTorch, numpy and ggml do), so a value that is representable in the narrow type survives a
 * float32 -> narrow -> float32 round trip bit-exactly.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bit pattern of `x` (NaN payloads preserved). */
export function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** float32 value of a bit pattern. */
export function float32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/** bf16 bits of a float32, round-to-nearest-even; any NaN -> 0x7fc0 (as PyTorch does). */
export function bf16BitsFromFloat32Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  // Adding 0x7fff plus the lowest kept bit carries into the kept half exactly when rounding up.
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16FromFloat32(x: number): number {
  return bf16BitsFromFloat32Bits(float32Bits(x));
}

export function float32FromBf16(h: number): number {
  return float32FromBits((h & 0xffff) << 16);
}

/**
 * f16 bits of a float32, round-to-nearest-even, with subnormals and overflow to ±inf; NaN -> sign|0x7e00 (as PyTorch).
 */
export function f16BitsFromFloat32Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding
  if (e <= 0) {
    // Result is subnormal (or zero): shift the mantissa with its implicit 1 into place.
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h += 1; // may carry into the smallest normal: right
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // carry may reach inf: right
  return sign | h;
}

export function f16FromFloat32(x: number): number {
  return f16BitsFromFloat32Bits(float32Bits(x));
}

export function float32BitsFromF16(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal f16 is a normal float32: normalise the mantissa.
  let e = -14;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e -= 1;
  }
  return (sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Float32Array | undefined;

/** All 65536 f16 values as float32: decoding a tensor is then one lookup per element. */
function f16ToFloat32Table(): Float32Array {
  if (!f16Table) {
    const bits = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bits[h] = float32BitsFromF16(h);
    f16Table = new Float32Array(bits.buffer);
  }
  return f16Table;
}

export function float32FromF16(h: number): number {
  return f16ToFloat32Table()[h & 0xffff]!;
}

/** Decodes `src` (f16 bits) into `dst` (same length). */
export function decodeF16(src: Uint16Array, dst: Float32Array): void {
  const table = f16ToFloat32Table();
  const pairs = pairView(src);
  if (pairs) {
    // Two values per 32-bit load: ~1.7x faster than one 16-bit load each (V8, x86).
    for (let j = 0; j < pairs.length; j++) {
      const w = pairs[j]!;
      dst[2 * j] = table[w & 0xffff]!;
      dst[2 * j + 1] = table[w >>> 16]!;
    }
    for (let i = 2 * pairs.length; i < src.length; i++) dst[i] = table[src[i]!]!;
    return;
  }
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]!]!;
}

/** `src` as little-endian pairs (low half = even index), when its offset allows a 32-bit view. */
function pairView(src: Uint16Array): Uint32Array | null {
  return src.byteOffset % 4 === 0 ? new Uint32Array(src.buffer, src.byteOffset, src.length >>> 1) : null;
}

/** Decodes `src` (bf16 bits) into `dst` (same length): bf16 is the top half of a float32. */
export function decodeBf16(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  const pairs = pairView(src);
  let i = 0;
  if (pairs) {
    for (let j = 0; j < pairs.length; j++) {
      const w = pairs[j]!;
      out[2 * j] = w << 16;
      out[2 * j + 1] = w & 0xffff0000;
    }
    i = 2 * pairs.length;
  }
  for (; i < src.length; i++) out[i] = src[i]! << 16;
}

/**
 * Encodes float32 `src` into f16 bits `dst` (same length). Returns the largest magnitude among `src`'s
 * values (NaN when one is NaN), found in the same loop at no measurable cost, so that a caller can tell
 * whether any went beyond f16's range without a pass of its own. Magnitudes order as their bit patterns
 * with the sign cleared, and NaN's patterns are the largest.
 */
export function encodeF16(src: Float32Array, dst: Uint16Array): number {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  let top = 0;
  for (let i = 0; i < src.length; i++) {
    const b = bits[i]!;
    const magnitude = b & 0x7fffffff;
    if (magnitude > top) top = magnitude;
    dst[i] = f16BitsFromFloat32Bits(b);
  }
  return float32FromBits(top);
}

/** Encodes float32 `src` into bf16 bits `dst` (same length). */
export function encodeBf16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) dst[i] = bf16BitsFromFloat32Bits(bits[i]!);
}

/** The 16-bit float formats a frozen tensor may be held in. */
export type HalfDtype = 'f16' | 'bf16';

/**
 * A frozen tensor's values as 16-bit patterns (IEEE f16 or bfloat16), half the memory of float32.
 * Kernels that read one (matmul's weight operand, the embedding lookup) widen it to float32 as they go.
 */
export class HalfArray {
  constructor(
    readonly dtype: HalfDtype,
    readonly bits: Uint16Array,
  ) {}

  get length(): number {
    return this.bits.length;
  }

  /** Elements [begin, end) as a HalfArray sharing these bits. */
  subarray(begin: number, end?: number): HalfArray {
    return new HalfArray(this.dtype, this.bits.subarray(begin, end));
  }

  /** Narrows float32 values (round to nearest even). */
  static from(values: Float32Array, dtype: HalfDtype): HalfArray {
    const bits = new Uint16Array(values.length);
    if (dtype === 'bf16') encodeBf16(values, bits);
    else encodeF16(values, bits);
    return new HalfArray(dtype, bits);
  }
}

/** Widens `src` into `dst` (same length). */
export function widenHalf(src: HalfArray, dst: Float32Array): void {
  if (src.dtype === 'bf16') decodeBf16(src.bits, dst);
  else decodeF16(src.bits, dst);
}

/** True when no value of `h` is NaN or ±Inf (all exponent bits set). */
export function halfAllFinite(h: HalfArray): boolean {
  const mask = h.dtype === 'bf16' ? 0x7f80 : 0x7c00;
  const bits = h.bits;
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & mask) === mask) return false;
  return true;
}
