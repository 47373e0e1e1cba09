/**
 * Lucene stores each document's length in one byte (SmallFloat.intToByte4: exact below 24, then 4 significant bits)
 * and BM25 sees the decoded value. Matching it keeps our BM25 scores on Lucene's, hence Pyserini's, footing.
 */
function longToInt4(i: number): number {
  const numBits = 32 - Math.clz32(i); // lengths are below 2^31
  if (numBits < 4) return i;
  const shift = numBits - 4;
  let encoded = Math.floor(i / 2 ** shift);
  encoded &= 0x07; // the leading bit is implicit
  encoded |= (shift + 1) << 3; // 0 is reserved for the subnormal values
  return encoded;
}

function int4ToLong(i: number): number {
  const bits = i & 0x07;
  const shift = (i >>> 3) - 1;
  return shift === -1 ? bits : (bits | 0x08) * 2 ** shift;
}

const MAX_INT4 = longToInt4(0x7fffffff);
const NUM_FREE_VALUES = 255 - MAX_INT4;

/** SmallFloat.intToByte4, as an unsigned byte. */
export function intToByte4(i: number): number {
  if (!Number.isInteger(i) || i < 0) throw new RangeError(`length ${i} must be a non-negative integer`);
  return i < NUM_FREE_VALUES ? i : NUM_FREE_VALUES + longToInt4(i - NUM_FREE_VALUES);
}

/** SmallFloat.byte4ToInt for an unsigned byte. */
export function byte4ToInt(b: number): number {
  return b < NUM_FREE_VALUES ? b : NUM_FREE_VALUES + int4ToLong(b - NUM_FREE_VALUES);
}
