/**
 * Audit of the local-refresh environment against exact mode: the same responses are scored by both
 * environments at every audited step; this module turns the per-step records into the figures the
 * audit reports (encodes and wall time per step, staleness, |Δreward|, Spearman's ρ).
 */

export interface AuditStep {
  step: number;
  localEncodes: number;
  exactEncodes: number;
  localSeconds: number;
  exactSeconds: number;
  /** Mean staleness of the local table after its refresh. */
  localStaleness: number;
  /** The same responses' rewards in each environment, flattened over queries and responses. */
  localRewards: number[];
  exactRewards: number[];
}

export interface AuditSummary {
  steps: number;
  responses: number;
  /** ratio: exact ÷ local, null when the local side encodes none (no ratio to give). */
  encodesPerStep: { local: number; exact: number; ratio: number | null };
  secondsPerStep: { local: number; exact: number };
  meanStaleness: number;
  meanAbsRewardDiff: number;
  maxAbsRewardDiff: number;
  /** Spearman's ρ over every audited response (pooled), and the mean of per-step ρ. */
  spearman: number;
  meanStepSpearman: number;
  meanReward: { local: number; exact: number };
}

/** Average ranks (1-based; ties share the mean of their positions). */
export function averageRanks(x: readonly number[]): number[] {
  const idx = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
  const ranks = new Array<number>(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]] === x[idx[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) ranks[idx[t]] = r;
    i = j + 1;
  }
  return ranks;
}

export function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  if (n !== b.length) throw new Error(`pearson: ${n} vs ${b.length} values`);
  if (n === 0) return NaN;
  const ma = a.reduce((s, v) => s + v, 0) / n,
    mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma,
      db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 && sbb === 0) return 1; // both constant and equal in order: identical rankings
  if (saa === 0 || sbb === 0) return 0;
  return sab / Math.sqrt(saa * sbb);
}

/** Spearman's rank correlation with tie-averaged ranks (Pearson on ranks). */
export function spearman(a: readonly number[], b: readonly number[]): number {
  return pearson(averageRanks(a), averageRanks(b));
}

const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((s, v) => s + v, 0) / xs.length);

export function summariseAudit(steps: readonly AuditStep[]): AuditSummary {
  const local = steps.flatMap((s) => s.localRewards),
    exact = steps.flatMap((s) => s.exactRewards);
  const diffs = local.map((v, i) => Math.abs(v - exact[i]));
  const le = mean(steps.map((s) => s.localEncodes)),
    ee = mean(steps.map((s) => s.exactEncodes));
  return {
    steps: steps.length,
    responses: local.length,
    encodesPerStep: { local: le, exact: ee, ratio: le > 0 ? ee / le : null },
    secondsPerStep: { local: mean(steps.map((s) => s.localSeconds)), exact: mean(steps.map((s) => s.exactSeconds)) },
    meanStaleness: mean(steps.map((s) => s.localStaleness)),
    meanAbsRewardDiff: mean(diffs),
    maxAbsRewardDiff: diffs.length ? Math.max(...diffs) : NaN,
    spearman: spearman(local, exact),
    meanStepSpearman: mean(steps.map((s) => spearman(s.localRewards, s.exactRewards))),
    meanReward: { local: mean(local), exact: mean(exact) },
  };
}

/** How many fewer documents the local side encodes per step than the exact one, in words true at every count. */
function encodeComparison(local: number, exact: number): string {
  if (local === 0) return exact === 0 ? 'neither encodes any' : 'the local side encodes none';
  if (exact === 0) return 'the exact side encodes none';
  if (local === exact) return 'as many';
  return exact > local ? `${(exact / local).toFixed(1)}× fewer locally` : `${(local / exact).toFixed(1)}× more locally`;
}

export function formatAudit(s: AuditSummary): string {
  const f = (x: number, d = 4): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  return [
    `audited steps ${s.steps} (${s.responses} responses)`,
    `document encodes / step: local ${f(s.encodesPerStep.local, 1)}, exact ${f(s.encodesPerStep.exact, 1)} ` +
      `(${encodeComparison(s.encodesPerStep.local, s.encodesPerStep.exact)})`,
    `environment wall time / step: local ${f(s.secondsPerStep.local, 3)} s, exact ${f(s.secondsPerStep.exact, 3)} s`,
    `mean staleness of the local table (policy versions behind): ${f(s.meanStaleness, 3)}`,
    `reward: mean local ${f(s.meanReward.local)}, exact ${f(s.meanReward.exact)}; mean |Δ| ` +
      `${f(s.meanAbsRewardDiff)}, max |Δ| ${f(s.maxAbsRewardDiff)}`,
    `Spearman ρ(local, exact): pooled ${f(s.spearman)}, mean per step ${f(s.meanStepSpearman)}`,
  ].join('\n');
}
