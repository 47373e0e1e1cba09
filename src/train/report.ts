/**
 * The end-of-run report: an HTML page with SVG line charts of every loss term and the dev nDCG@10
 * against the step, drawn from metrics.jsonl (no scripts, no external assets).
 */
export interface Series {
  name: string;
  points: [number, number][];
  color: string;
}

export const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function tick(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}

/** A line chart of several series sharing axes. */
export function svgChart(title: string, series: Series[], width = 640, height = 300): string {
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const m = { l: 60, r: 130, t: 28, b: 36 };
  const head =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="sans-serif" font-size="11"><text x="${width / 2}" y="16" text-anchor="middle" ` +
    `font-size="13">${esc(title)}</text>`;
  if (pts.length === 0)
    return `${head}<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 === y1) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const W = width - m.l - m.r,
    H = height - m.t - m.b;
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * W;
  const sy = (y: number): number => m.t + H - ((y - y0) / (y1 - y0)) * H;
  const parts = [head, `<rect x="${m.l}" y="${m.t}" width="${W}" height="${H}" fill="none" stroke="#999"/>`];
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4,
      xv = x0 + ((x1 - x0) * i) / 4;
    parts.push(
      `<line x1="${m.l}" x2="${m.l + W}" y1="${sy(yv)}" y2="${sy(yv)}" stroke="#eee"/><text x="${m.l - 4}" ` +
        `y="${sy(yv) + 4}" text-anchor="end">${tick(yv)}</text>`,
    );
    parts.push(`<text x="${sx(xv)}" y="${m.t + H + 14}" text-anchor="middle">${Math.round(xv)}</text>`);
  }
  parts.push(`<text x="${m.l + W / 2}" y="${height - 4}" text-anchor="middle">step</text>`);
  series.forEach((s, k) => {
    const ok = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (ok.length === 0) return;
    const d = ok.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    if (ok.length <= 40)
      for (const [x, y] of ok)
        parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    parts.push(
      `<rect x="${m.l + W + 10}" y="${m.t + k * 16}" width="10" height="10" fill="${s.color}"/><text ` +
        `x="${m.l + W + 24}" y="${m.t + k * 16 + 9}">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Moving average over `window` points, so that noisy per-step losses read as a curve. */
export function smooth(points: [number, number][], window: number): [number, number][] {
  if (window <= 1) return points;
  return points.map(([x], i) => {
    const from = Math.max(0, i - window + 1);
    const ys = points.slice(from, i + 1).map((p) => p[1]);
    return [x, ys.reduce((a, b) => a + b, 0) / ys.length];
  });
}

export interface MetricRecord {
  type: string;
  step: number;
  [k: string]: unknown;
}

/** The HTML report for a run's metrics records. */
export function renderReport(title: string, records: readonly MetricRecord[], notes: string[] = []): string {
  const train = records.filter((r) => r.type === 'train');
  const evals = records.filter((r) => r.type === 'eval');
  const window = Math.max(1, Math.round(train.length / 50));
  const series = (key: string, i: number): Series => ({
    name: key,
    color: COLORS[i % COLORS.length],
    points: smooth(
      train.filter((r) => typeof r[key] === 'number').map((r) => [r.step, r[key] as number]),
      window,
    ),
  });
  const lossChart = svgChart(
    `training loss (moving average of ${window} steps)`,
    ['loss', 'sft', 'kl', 'infonce', 'triplet'].map(series),
  );
  const evalChart = svgChart('dev nDCG@10', [
    { name: 'nDCG@10', color: COLORS[2], points: evals.map((r) => [r.step, r.ndcg10 as number]) },
  ]);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>\
<body style="font-family:sans-serif">
<h1>${esc(title)}</h1>
${notes.map((n) => `<p>${esc(n)}</p>`).join('\n')}
${lossChart}
${evalChart}
</body></html>
`;
}
