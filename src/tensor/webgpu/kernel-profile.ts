/**
 * Where a GPU's time goes, kernel by kernel: the GPU thread times every dispatch with timestamp queries
 * while a profile is on (dispatch-timer.ts), and this is what comes back, and the tables it prints as.
 * The sum of the kernels' times against the wall-clock time of the same work tells GPU-bound work
 * (the two close) from work bound by the host or by dispatch overhead (the GPU idle for the difference).
 */

/** The dispatches of one kernel over one grid of workgroups during a profile, and their GPU time in all. */
export interface KernelTime {
  kernel: string;
  groups: [number, number, number];
  dispatches: number;
  seconds: number;
}

/** Sums times by kernel name (over every grid), costliest first; ties by name, for a stable table. */
export function byKernel(times: readonly KernelTime[]): { kernel: string; dispatches: number; seconds: number }[] {
  const sums = new Map<string, { kernel: string; dispatches: number; seconds: number }>();
  for (const t of times) {
    const s = sums.get(t.kernel) ?? { kernel: t.kernel, dispatches: 0, seconds: 0 };
    s.dispatches += t.dispatches;
    s.seconds += t.seconds;
    sums.set(t.kernel, s);
  }
  return [...sums.values()].sort((a, b) => b.seconds - a.seconds || a.kernel.localeCompare(b.kernel));
}

/** The share of `wallSeconds` the GPU spent in these kernels (at most 1: timer and clock may disagree). */
export function gpuBusyShare(times: readonly KernelTime[], wallSeconds: number): number {
  return Math.min(1, times.reduce((s, t) => s + t.seconds, 0) / wallSeconds);
}

const ms = (s: number): string => (s * 1e3).toFixed(3);
const perDispatch = (t: { dispatches: number; seconds: number }): string =>
  ((t.seconds * 1e6) / Math.max(t.dispatches, 1)).toFixed(1);

/**
 * Markdown: the `top` costliest kernels (the rest summed in one row), the GPU time in all and, given the
 * wall-clock seconds of the same work, the share of it the GPU was busy; then the `top` costliest
 * (kernel, grid) pairs, which tell one product of a step from another.
 */
export function kernelProfileTable(times: readonly KernelTime[], wallSeconds?: number, top = 12): string {
  const kernels = byKernel(times);
  const gpuSeconds = kernels.reduce((s, t) => s + t.seconds, 0);
  const dispatches = kernels.reduce((s, t) => s + t.dispatches, 0);
  const shown = kernels.slice(0, top);
  const rest = kernels.slice(top);
  if (rest.length > 0) {
    shown.push({
      kernel: `${rest.length} other kernel${rest.length === 1 ? '' : 's'}`,
      dispatches: rest.reduce((s, t) => s + t.dispatches, 0),
      seconds: rest.reduce((s, t) => s + t.seconds, 0),
    });
  }
  const share = (s: number): string => (gpuSeconds > 0 ? `${((100 * s) / gpuSeconds).toFixed(1)} %` : '—');
  let total = `GPU time ${ms(gpuSeconds)} ms in ${dispatches} dispatches`;
  if (wallSeconds !== undefined && wallSeconds > 0) {
    const busy = (100 * gpuBusyShare(times, wallSeconds)).toFixed(1);
    total += ` of ${ms(wallSeconds)} ms wall-clock: the GPU was busy ${busy} % of the time`;
  }
  const grids = [...times].sort((a, b) => b.seconds - a.seconds || a.kernel.localeCompare(b.kernel)).slice(0, top);
  return [
    '| kernel | dispatches | GPU ms | µs per dispatch | share of GPU time |',
    '|---|---:|---:|---:|---:|',
    ...shown.map(
      (t) => `| ${t.kernel} | ${t.dispatches} | ${ms(t.seconds)} | ${perDispatch(t)} | ${share(t.seconds)} |`,
    ),
    total,
    '',
    '| kernel | workgroups (x×y×z) | dispatches | GPU ms | µs per dispatch |',
    '|---|---|---:|---:|---:|',
    ...grids.map(
      (t) => `| ${t.kernel} | ${t.groups.join('×')} | ${t.dispatches} | ${ms(t.seconds)} | ${perDispatch(t)} |`,
    ),
  ].join('\n');
}
