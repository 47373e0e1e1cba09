/**
 * The run dashboard: every numeric field of every record a run logs in metrics.jsonl, one chart per
 * record type and field, the runs overlaid; polled from /v1/runs/{id} while the runs train, each read
 * starting where the last one stopped. Records of type "data" (a run's data statistics) are shown as
 * a table beside the config rather than as one-point curves.
 */
/*! uPlot, bundled here: Copyright (c) 2022 Leon Sorokin, MIT License (uplot.LICENSE.txt beside this file) */
import uPlot from 'uplot';
import { byId, el, errorText, getJson, offerKey, setUpKeyForm, showMessage } from './api.js';
import { renderMarkdown } from './markdown-tables.js';
import type { RunList, RunUpdate } from '../src/serve/run-source.js';

interface RunState {
  id: string;
  name: string;
  stage: string | null;
  shown: boolean;
  next: number;
  file: string | null;
  damaged: number;
  incomplete: number;
  problem: string | null;
  config: unknown;
  data: Record<string, unknown> | null;
  /** metric → [step, value] in the order logged. */
  series: Map<string, [number, number][]>;
}

const COLORS = ['#1f5fbf', '#c2410c', '#15803d', '#9333ea', '#b91c1c', '#0e7490', '#a16207', '#4b5563'];
const pollMs = Math.max(100, Number(new URLSearchParams(location.search).get('poll') ?? 2000) || 2000);

const runs = new Map<string, RunState>();
const charts = new Map<string, { plot: uPlot; figure: HTMLElement; runs: string[] }>();
let evaluationsShown = '';

/** Numeric fields of a record, nested objects flattened with dots (stage 2's env.meanStaleness). */
function numericFields(r: Record<string, unknown>, prefix = '', out: [string, number][] = []): [string, number][] {
  for (const [k, v] of Object.entries(r)) {
    if (prefix === '' && (k === 'type' || k === 'step')) continue;
    if (typeof v === 'number' && Number.isFinite(v)) out.push([prefix + k, v]);
    else if (v && typeof v === 'object' && !Array.isArray(v))
      numericFields(v as Record<string, unknown>, `${prefix}${k}.`, out);
  }
  return out;
}

function addRecords(run: RunState, records: Record<string, unknown>[]): void {
  for (const r of records) {
    const type = String(r.type);
    if (type === 'data') {
      run.data = r;
      continue;
    }
    const step = r.step as number;
    for (const [key, v] of numericFields(r)) {
      const metric = `${type} · ${key}`;
      let s = run.series.get(metric);
      if (!s) run.series.set(metric, (s = []));
      s.push([step, v]);
    }
  }
}

/** uPlot's aligned columns: the union of the runs' steps, and each run's values there (null where it has none). */
function aligned(metric: string, shown: RunState[]): uPlot.AlignedData {
  const steps = new Set<number>();
  for (const r of shown) for (const [x] of r.series.get(metric) ?? []) steps.add(x);
  const xs = [...steps].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const columns = shown.map((r) => {
    const ys: (number | null)[] = new Array(xs.length).fill(null);
    for (const [x, y] of r.series.get(metric) ?? []) ys[at.get(x)!] = y;
    return ys;
  });
  return [xs, ...columns] as uPlot.AlignedData;
}

/** Charts side by side, as many as fit at 360 px or more each. */
function chartWidth(): number {
  const room = byId('charts').clientWidth;
  const columns = Math.max(1, Math.floor(room / 380));
  return Math.max(280, Math.floor((room - 16 * (columns - 1)) / columns) - 26);
}

function filterText(): string {
  return byId<HTMLInputElement>('metric-filter').value.trim().toLowerCase();
}

function drawCharts(): void {
  const shown = [...runs.values()].filter((r) => r.shown);
  const filter = filterText();
  const metrics = [...new Set(shown.flatMap((r) => [...r.series.keys()]))]
    .filter((m) => filter === '' || m.toLowerCase().includes(filter))
    .sort();
  const ids = shown.map((r) => r.id).join(',');
  for (const [metric, c] of charts)
    if (!metrics.includes(metric) || c.runs.join(',') !== ids) {
      c.plot.destroy();
      c.figure.remove();
      charts.delete(metric);
    }
  const container = byId('charts');
  for (const metric of metrics) {
    const data = aligned(metric, shown);
    const points = shown.reduce((n, r) => n + (r.series.get(metric)?.length ?? 0), 0);
    const latest = shown
      .map((r) => {
        const s = r.series.get(metric);
        const last = s?.[s.length - 1];
        return last ? `${r.name} ${Number(last[1].toPrecision(4))} at step ${last[0]}` : null;
      })
      .filter(Boolean)
      .join('; ');
    let c = charts.get(metric);
    if (!c) {
      const plotBox = el('div', { class: 'plot' });
      const caption = el('figcaption', {}, metric);
      const summary = el('p', { class: 'latest' });
      const figure = el('figure', { class: 'chart', 'data-metric': metric }, caption, plotBox, summary);
      container.append(figure);
      const opts: uPlot.Options = {
        width: chartWidth(),
        height: 200,
        scales: { x: { time: false } },
        axes: [{ label: 'step' }, {}],
        series: [
          { label: 'step' },
          ...shown.map((r, i) => ({ label: r.name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true })),
        ],
      };
      const plot = new uPlot(opts, data, plotBox);
      c = { plot, figure, runs: shown.map((r) => r.id) };
      charts.set(metric, c);
    } else {
      c.plot.setData(data);
    }
    c.figure.setAttribute('data-points', String(points));
    c.figure.querySelector('.latest')!.textContent = `${points} points — latest: ${latest}`;
    c.figure.setAttribute('aria-label', `${metric}: ${points} points; latest ${latest}`);
  }
  const none = byId('no-charts');
  none.hidden = metrics.length > 0;
  none.textContent =
    filter && shown.some((r) => r.series.size > 0)
      ? `No metric matches “${filter}”.`
      : 'No metrics yet: the curves appear as the runs log their first steps.';
}

function renderSide(): void {
  const list = byId('run-list');
  list.replaceChildren(
    ...[...runs.values()].map((r, i) => {
      const box = el('input', { type: 'checkbox', id: `show-${r.id}`, 'data-run': r.id });
      (box as HTMLInputElement).checked = r.shown;
      box.addEventListener('change', () => {
        r.shown = (box as HTMLInputElement).checked;
        drawCharts();
      });
      const swatch = el('span', {
        class: 'swatch',
        style: `background:${COLORS[i % COLORS.length]}`,
        'aria-hidden': 'true',
      });
      const label = el('label', { for: `show-${r.id}` }, swatch, `${r.name}${r.stage ? ` (${r.stage})` : ''}`);
      return el('li', {}, box, label);
    }),
  );
  const select = byId<HTMLSelectElement>('config-run');
  const chosen = select.value;
  select.replaceChildren(...[...runs.values()].map((r) => el('option', { value: r.id }, r.name)));
  if (chosen && runs.has(chosen)) select.value = chosen;
  renderConfig();
}

function renderConfig(): void {
  const run = runs.get(byId<HTMLSelectElement>('config-run').value);
  const text = run
    ? [
        run.config === null ? '(this run folder has no run-config.json)' : JSON.stringify(run.config, null, 2),
        ...(run.data ? ['', 'data:', JSON.stringify(run.data, null, 2)] : []),
      ].join('\n')
    : '';
  byId('config').textContent = text;
}

/** One message for everything worth saying about the runs (damaged lines, cut lines, missing files). */
function renderProblems(extra: string[]): void {
  const lines = [...extra];
  for (const r of runs.values()) {
    if (r.problem) lines.push(r.problem);
    if (r.damaged > 0)
      lines.push(
        `${r.name}: ${r.damaged} line(s) of metrics.jsonl are not metrics records (a damaged file); they are skipped.`,
      );
    if (r.incomplete > 0)
      lines.push(
        `${r.name}: metrics.jsonl ends in an incomplete line (${r.incomplete} bytes), cut short or still ` +
          'being written; it is skipped until it is complete.',
      );
  }
  showMessage(lines.length > 0 ? lines.join('\n') : null, 'note');
}

async function poll(): Promise<void> {
  const list = await getJson<RunList>('v1/runs');
  let changed = false;
  for (const r of list.runs)
    if (!runs.has(r.id)) {
      runs.set(r.id, {
        ...r,
        shown: true,
        next: 0,
        file: null,
        damaged: 0,
        incomplete: 0,
        problem: null,
        config: null,
        data: null,
        series: new Map(),
      });
      changed = true;
    } else if (runs.get(r.id)!.stage !== r.stage) {
      runs.get(r.id)!.stage = r.stage;
      changed = true;
    }
  for (const run of runs.values()) {
    for (let more = true; more;) {
      const q = `from=${run.next}${run.file ? `&file=${encodeURIComponent(run.file)}` : ''}`;
      const u = await getJson<RunUpdate>(`v1/runs/${encodeURIComponent(run.id)}?${q}`);
      if (u.reset) {
        run.series.clear();
        run.damaged = 0;
        run.data = null;
      }
      addRecords(run, u.records);
      run.next = u.next;
      run.file = u.file || null;
      run.damaged += u.damagedLines;
      run.incomplete = u.incompleteBytes;
      run.problem = u.problem;
      if (JSON.stringify(u.config) !== JSON.stringify(run.config) || u.records.some((r) => r.type === 'data')) {
        run.config = u.config;
        changed = true;
      }
      more = u.more;
    }
  }
  if (changed) renderSide();
  drawCharts();
  renderProblems(list.problems);
  const evals = JSON.stringify(list.evaluations);
  if (evals !== evaluationsShown) {
    evaluationsShown = evals;
    const box = byId('evaluations');
    box.replaceChildren(
      ...list.evaluations.map((e) =>
        el('section', { class: 'evaluation' }, el('h2', {}, e.title), renderMarkdown(e.markdown)),
      ),
    );
    box.hidden = list.evaluations.length === 0;
  }
  byId('updated').textContent = `Updated ${new Date().toLocaleTimeString()}; every ${pollMs / 1000} s.`;
}

let timer: number | null = null;
async function loop(): Promise<void> {
  timer = null;
  try {
    await poll();
  } catch (e) {
    showMessage(errorText(e));
    offerKey(e);
  }
  timer = window.setTimeout(() => void loop(), pollMs);
}

byId<HTMLSelectElement>('config-run').addEventListener('change', renderConfig);
byId<HTMLInputElement>('metric-filter').addEventListener('input', drawCharts);
setUpKeyForm(() => {
  if (timer !== null) clearTimeout(timer);
  void loop();
});
window.addEventListener('resize', () => {
  for (const c of charts.values()) c.plot.setSize({ width: chartWidth(), height: 200 });
});
void loop();
