/**
 * The error measure of the kernel tests: relErr = max|got − want| / max(max|want|, 1e-6) over finite
 * entries; a non-finite entry must be matched exactly (NaN by NaN), else the error is Infinity.
 */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let maxDiff = 0,
    maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i],
      g = got[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(w, g) && !(Number.isNaN(w) && Number.isNaN(g))) return Infinity;
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(g - w));
    maxRef = Math.max(maxRef, Math.abs(w));
  }
  return maxDiff / Math.max(maxRef, 1e-6);
}
