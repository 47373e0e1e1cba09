/**
 * Paired significance tests over per-query scores of two runs (same queries, same order), so that "A beats B"
 * comes with a p-value: Student's paired t-test (two-sided) and a paired randomisation (sign-flip) test.
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction for the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/** Regularised incomplete beta I_x(a, b). */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) past it.
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Two-sided p-value of Student's t with `df` degrees of freedom: P(|T| >= |t|) = I_{df/(df+t²)}(df/2, 1/2). */
export function studentTTwoSidedP(t: number, df: number): number {
  if (!Number.isFinite(t)) return Number.isNaN(t) ? NaN : 0;
  return regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
}

export interface PairedTestResult {
  /** Mean of a - b. */
  meanDifference: number;
  /** Number of paired observations. */
  n: number;
  /** Two-sided p-value. */
  p: number;
}

export interface PairedTTestResult extends PairedTestResult {
  t: number;
  df: number;
}

function checkPairs(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new RangeError(`paired samples differ in length (${a.length} vs ${b.length})`);
  if (a.length < 2) throw new RangeError('a paired test needs at least 2 queries');
}

/** Student's paired t-test, two-sided (scipy.stats.ttest_rel). Identical runs give t = NaN and p = 1. */
export function pairedTTest(a: ArrayLike<number>, b: ArrayLike<number>): PairedTTestResult {
  checkPairs(a, b);
  const n = a.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += a[i]! - b[i]!;
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const dev = a[i]! - b[i]! - mean;
    ss += dev * dev;
  }
  const sd = Math.sqrt(ss / (n - 1));
  const df = n - 1;
  if (sd === 0)
    return { meanDifference: mean, n, t: mean === 0 ? NaN : Math.sign(mean) * Infinity, df, p: mean === 0 ? 1 : 0 };
  const t = mean / (sd / Math.sqrt(n));
  return { meanDifference: mean, n, t, df, p: studentTTwoSidedP(t, df) };
}

/** A small seeded generator (mulberry32): the same seed gives the same p-value on every machine. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomizationOptions {
  /** Random sign assignments to draw (default 10,000). */
  trials?: number;
  seed?: number;
}

/**
 * Paired randomisation test, two-sided: under the null hypothesis each query's difference is as likely to have
 * either sign, so flip signs at random and count how often |mean| is at least the observed one. The p-value counts
 * the observed assignment too, (hits + 1) / (trials + 1), so it is never 0.
 */
export function pairedRandomizationTest(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: RandomizationOptions = {},
): PairedTestResult & { trials: number } {
  checkPairs(a, b);
  const n = a.length;
  const trials = options.trials ?? 10000;
  const rand = mulberry32(options.seed ?? 42);
  const diff = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    diff[i] = a[i]! - b[i]!;
    sum += diff[i]!;
  }
  const observed = Math.abs(sum);
  // Sums are compared with a relative tolerance: re-adding the same terms in another order may differ in the last bit.
  const eps = 1e-12 * diff.reduce((s, x) => s + Math.abs(x), 0);
  let hits = 0;
  for (let t = 0; t < trials; t++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += rand() < 0.5 ? -diff[i]! : diff[i]!;
    if (Math.abs(s) >= observed - eps) hits++;
  }
  return { meanDifference: sum / n, n, p: (hits + 1) / (trials + 1), trials };
}
