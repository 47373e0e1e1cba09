import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bf16BitsFromFloat32Bits,
  f16BitsFromFloat32Bits,
  float32BitsFromF16,
  float32Bits,
  float32FromBits,
  decodeF16,
  decodeBf16,
  encodeF16,
  encodeBf16,
} from '../../src/model/half-float.js';
import { runOracle } from '../helpers/python-oracle.js';
import { SeededRandom } from '../helpers/seeded-random.js';

/** float32 bit patterns that stress rounding: specials, boundaries, exact ties, subnormals, random bits. */
function interestingFloat32Bits(): Uint32Array {
  const out: number[] = [];
  const specials = [
    0,
    -0,
    1,
    -1,
    0.5,
    65504,
    65505,
    65519.99,
    65520,
    1e-8,
    5.960464477539063e-8,
    2.9802322387695312e-8,
    2.98023259e-8,
    6.103515625e-5,
    6.1035e-5,
    3.4028234663852886e38,
    Infinity,
    -Infinity,
    1.401298464324817e-45,
    1.1754943508222875e-38,
    3.14159265,
    -2.718281828,
    1e30,
    -1e-30,
  ];
  for (const s of specials) out.push(float32Bits(s));
  out.push(0x7fc00000, 0xffc00001, 0x7f800001); // NaNs
  // Ties and near-ties for bf16 (low 16 bits around 0x8000) and f16 (low 13 bits around 0x1000).
  const rng = new SeededRandom(7);
  for (let i = 0; i < 2000; i++) {
    const hi = rng.nextUint32() & 0xffff0000;
    for (const lo of [0x7fff, 0x8000, 0x8001, 0x18000, 0x0]) out.push((hi | (lo & 0xffff)) + (lo & 0x10000));
    const base = rng.nextUint32() & 0xffffe000;
    for (const lo of [0x0fff, 0x1000, 0x1001, 0x3000]) out.push((base | lo) >>> 0);
  }
  // Every exponent from f16-subnormal to overflow, random mantissas.
  for (let exp = 90; exp <= 150; exp++) {
    for (let i = 0; i < 200; i++) out.push(((rng.int(2) << 31) | (exp << 23) | (rng.nextUint32() & 0x7fffff)) >>> 0);
  }
  for (let i = 0; i < 20000; i++) out.push(rng.nextUint32());
  return Uint32Array.from(out.map((b) => b >>> 0));
}

const isNaN32 = (bits: number): boolean => (bits & 0x7fffffff) > 0x7f800000;

test('f16/bf16 rounding and decoding agree bit-for-bit with PyTorch', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'half-'));
  try {
    const bits = interestingFloat32Bits();
    const input = path.join(dir, 'in.bin');
    const output = path.join(dir, 'out.bin');
    await fsp.writeFile(input, new Uint8Array(bits.buffer));
    await runOracle('half_float.py', { input, output });
    const raw = await fsp.readFile(output);
    const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    const n = bits.length;
    const torchBf16 = new Uint16Array(buf, 0, n);
    const torchF16 = new Uint16Array(buf, 2 * n, n);
    const torchFromF16 = new Uint32Array(buf.slice(4 * n, 4 * n + 4 * 65536));
    const torchFromBf16 = new Uint32Array(buf.slice(4 * n + 4 * 65536));
    for (let i = 0; i < n; i++) {
      const b = bits[i]!;
      const oursB = bf16BitsFromFloat32Bits(b);
      const ours = f16BitsFromFloat32Bits(b);
      if (isNaN32(b)) {
        // NaN payloads differ between torch's code paths; any quiet NaN is right.
        assert.equal(oursB & 0x7fc0, 0x7fc0, 'bf16 of NaN is a quiet NaN');
        assert.equal(ours & 0x7e00, 0x7e00, 'f16 of NaN is a quiet NaN');
        continue;
      }
      assert.equal(oursB, torchBf16[i], `bf16 of 0x${b.toString(16)} (${float32FromBits(b)})`);
      assert.equal(ours, torchF16[i], `f16 of 0x${b.toString(16)} (${float32FromBits(b)})`);
    }
    for (let h = 0; h < 65536; h++) {
      const ours = float32BitsFromF16(h);
      if (isNaN32(ours)) assert.ok(isNaN32(torchFromF16[h]!), `f16 0x${h.toString(16)} is NaN`);
      else assert.equal(ours, torchFromF16[h], `f32 of f16 0x${h.toString(16)}`);
      assert.equal((h << 16) >>> 0, torchFromBf16[h], `f32 of bf16 0x${h.toString(16)}`);
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('array decoders agree with the scalar ones at any offset and length (paired fast path and tail)', () => {
  const all = new Uint16Array(65536 + 3).map((_, i) => i & 0xffff);
  for (const [off, len] of [
    [0, 65539],
    [1, 65536],
    [2, 7],
    [3, 1],
    [0, 0],
  ] as const) {
    const src = all.subarray(off, off + len);
    const f = new Float32Array(len);
    const b = new Float32Array(len);
    decodeF16(src, f);
    decodeBf16(src, b);
    for (let i = 0; i < len; i++) {
      const h = src[i]!;
      const want = float32BitsFromF16(h);
      const got = new Uint32Array(f.buffer)[i]!;
      if (!(isNaN32(want) && isNaN32(got))) assert.equal(got, want, `f16 0x${h.toString(16)} at offset ${off}`);
      assert.equal(new Uint32Array(b.buffer)[i], (h << 16) >>> 0, `bf16 0x${h.toString(16)} at offset ${off}`);
    }
  }
});

test('array codecs round-trip every non-NaN 16-bit value exactly', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const keep = all.filter((h) => (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0); // f16 non-NaN
  const f = new Float32Array(keep.length);
  decodeF16(keep, f);
  const back = new Uint16Array(keep.length);
  encodeF16(f, back);
  assert.deepEqual(back, keep);

  const keepB = all.filter((h) => (h & 0x7f80) !== 0x7f80 || (h & 0x7f) === 0); // bf16 non-NaN
  const fb = new Float32Array(keepB.length);
  decodeBf16(keepB, fb);
  const backB = new Uint16Array(keepB.length);
  encodeBf16(fb, backB);
  assert.deepEqual(backB, keepB);
});
