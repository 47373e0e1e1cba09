/**
 * Which rows of the embedding table to re-encode at a step. The policy is a pure function of the
 * step's positives, the candidates each response retrieved, the graph neighbourhood of those candidates
 * and the table's versions, so tests can check that a refresh touches exactly the rows it names.
 *
 * local mode, in priority order until `budget` rows are chosen (rows already at the current version
 * are never re-encoded):
 *   1. the positives of the batch (the reward depends on their scores);
 *   2. the top `candidates` rows each response retrieved, rank by rank across responses;
 *   3. up to `neighbours` graph neighbours of each of those candidates, in the same order;
 * then, beyond the budget, `rolling` of the stalest other rows (oldest version, then lowest row),
 * so every row is re-encoded every ≈ N / rolling steps at worst. Every `fullEvery` steps (0 = never)
 * and in exact mode, every stale row is re-encoded.
 */

export type RefreshMode = 'local' | 'exact';

export interface RefreshSettings {
  mode: RefreshMode;
  /** Most rows re-encoded per step for the local region (positives, candidates, neighbours). */
  budget: number;
  /** Retrieved candidates per response that are refreshed (and returned for the contrastive term). */
  candidates: number;
  /** Graph neighbours refreshed per refreshed candidate. */
  neighbours: number;
  /** Stalest rows refreshed per step on top of the budget. */
  rolling: number;
  /** Re-encode the whole corpus every this many steps (0 = never). */
  fullEvery: number;
}

export const DEFAULT_REFRESH: RefreshSettings = {
  mode: 'local',
  budget: 200,
  candidates: 8,
  neighbours: 4,
  rolling: 32,
  fullEvery: 0,
};

export interface RefreshRequest {
  /** Step number (1-based: the first training step is 1). */
  step: number;
  /** The current policy version; rows at it are fresh. */
  version: number;
  versions: Int32Array;
  positives: readonly number[];
  /** Per response, the rows it retrieved, best first. */
  retrieved: readonly (readonly number[])[];
  /** Graph neighbours of a row, nearest first. */
  neighbours: (row: number, k: number) => number[];
}

export interface RefreshPlan {
  /** Rows to re-encode, in priority order, each once. */
  rows: number[];
  counts: { positives: number; candidates: number; neighbours: number; rolling: number; full: number };
}

export function planRefresh(req: RefreshRequest, s: RefreshSettings): RefreshPlan {
  const counts = { positives: 0, candidates: 0, neighbours: 0, rolling: 0, full: 0 };
  const chosen = new Set<number>();
  const rows: number[] = [];
  const stale = (r: number): boolean => req.versions[r] !== req.version;
  if (s.mode === 'exact' || (s.fullEvery > 0 && req.step % s.fullEvery === 0)) {
    for (let r = 0; r < req.versions.length; r++) if (stale(r)) rows.push(r);
    counts.full = rows.length;
    return { rows, counts };
  }
  const take = (r: number, why: keyof typeof counts, limit: number): boolean => {
    if (rows.length >= limit) return false;
    if (!chosen.has(r) && stale(r)) {
      chosen.add(r);
      rows.push(r);
      counts[why]++;
    }
    return true;
  };
  for (const r of req.positives) if (!take(r, 'positives', s.budget)) break;
  // candidates rank by rank across responses, so a small budget still covers every response's top
  const cands: number[] = [];
  const seen = new Set<number>();
  for (let rank = 0; rank < s.candidates; rank++) {
    for (const list of req.retrieved) {
      const r = list[rank];
      if (r !== undefined && !seen.has(r)) {
        seen.add(r);
        cands.push(r);
      }
    }
  }
  for (const r of cands) if (!take(r, 'candidates', s.budget)) break;
  if (s.neighbours > 0 && rows.length < s.budget) {
    outer: for (const c of cands) {
      for (const r of req.neighbours(c, s.neighbours)) if (!take(r, 'neighbours', s.budget)) break outer;
    }
  }
  if (s.rolling > 0) {
    const limit = rows.length + s.rolling;
    for (const r of stalest(req.versions, req.version, chosen, s.rolling)) take(r, 'rolling', limit);
  }
  return { rows, counts };
}

/** The k stale rows with the oldest versions (ties: lowest row), skipping `exclude`. */
export function stalest(versions: Int32Array, version: number, exclude: ReadonlySet<number>, k: number): number[] {
  const idx: number[] = [];
  for (let r = 0; r < versions.length; r++) if (versions[r] !== version && !exclude.has(r)) idx.push(r);
  idx.sort((a, b) => versions[a] - versions[b] || a - b);
  return idx.slice(0, k);
}
