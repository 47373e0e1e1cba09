/**
 * The search playground: a query, the model's analysis as it is generated (POST /v1/search/stream),
 * the hits with their snippets, scores and relevance marks, and a second ranking beside it with one
 * setting flipped (reasoning or hybrid) and each hit's move between the two.
 */
import {
  ApiError,
  byId,
  el,
  errorText,
  getJson,
  offerKey,
  postEvents,
  postJson,
  setUpKeyForm,
  showMessage,
} from './api.js';

interface Hit {
  rank: number;
  id: string;
  score: number;
  title: string;
  text: string;
  dense_score?: number;
  bm25_score?: number;
  snippet?: { text: string; marks: [number, number][]; cut: { before: boolean; after: boolean } };
  grade?: number | null;
}

interface SearchAnswer {
  query: string;
  reasoning?: string;
  forced?: boolean;
  /** Tokens cut from the query to fit the model's context (the playground asks for cutting). */
  truncated_tokens?: number;
  data: Hit[];
  judgments?: { source: string; query_id: string; relevant: number; ndcg_at_10: number };
  timings: { embed_ms: number; search_ms: number };
}

interface Settings {
  reasoning: boolean;
  hybrid: boolean;
}

const describe = (s: Settings): string =>
  `${s.hybrid ? 'hybrid (dense + BM25)' : 'dense'}, reasoning ${s.reasoning ? 'on' : 'off'}`;

function snippetNode(h: Hit): HTMLElement {
  const p = el('p', { class: 'snippet' });
  if (!h.snippet) {
    p.textContent = h.text.slice(0, 300);
    return p;
  }
  const { text, marks, cut } = h.snippet;
  if (cut.before) p.append('… ');
  let at = 0;
  for (const [a, b] of marks) {
    p.append(text.slice(at, a), el('mark', {}, text.slice(a, b)));
    at = b;
  }
  p.append(text.slice(at));
  if (cut.after) p.append(' …');
  return p;
}

function scoreList(h: Hit, hybrid: boolean): HTMLElement {
  const dl = el('dl', { class: 'scores' });
  const add = (name: string, v: number | undefined, digits: number, why: string): void => {
    dl.append(
      el('dt', {}, name),
      el('dd', v === undefined ? { title: why } : {}, v === undefined ? '—' : v.toFixed(digits)),
    );
  };
  add('dense', h.dense_score, 4, 'not among the dense candidates');
  if (hybrid) {
    add('BM25', h.bm25_score, 2, 'not among the BM25 candidates');
    add('fused', h.score, 4, '');
  }
  return dl;
}

/** `other`: the ranks of the other column, to show each hit's move against it. */
function hitNode(h: Hit, hybrid: boolean, other: Map<string, number> | null): HTMLElement {
  const head = el('div', { class: 'hit-head' }, el('span', { class: 'rank' }, `${h.rank}.`));
  if (h.grade !== undefined) {
    const relevant = h.grade !== null && h.grade >= 1;
    const label =
      h.grade === null ? 'not judged' : relevant ? `judged relevant (grade ${h.grade})` : 'judged not relevant';
    head.append(
      el(
        'span',
        { class: relevant ? 'judged relevant' : 'judged', title: label, 'aria-label': label },
        relevant ? '✓' : '',
      ),
    );
  }
  head.append(el('span', { class: 'title' }, h.title || '(untitled)'), el('span', { class: 'doc-id' }, h.id));
  if (other) {
    const was = other.get(h.id);
    const move =
      was === undefined
        ? ['new', 'not in the other column']
        : was === h.rank
          ? ['=', 'same rank in the other column']
          : null;
    const [text, label] =
      move ??
      (was! > h.rank
        ? [`▲${was! - h.rank}`, `${was! - h.rank} higher than in the other column (rank ${was})`]
        : [`▼${h.rank - was!}`, `${h.rank - was!} lower than in the other column (rank ${was})`]);
    head.append(el('span', { class: 'move', title: label, 'aria-label': label }, text));
  }
  const attrs: Record<string, string> = { class: 'hit', 'data-id': h.id, 'data-rank': String(h.rank) };
  if (h.grade !== undefined) attrs['data-grade'] = h.grade === null ? 'unjudged' : String(h.grade);
  return el('li', attrs, head, snippetNode(h), scoreList(h, hybrid));
}

function renderColumn(
  column: HTMLElement,
  answer: SearchAnswer,
  s: Settings,
  other: SearchAnswer | null,
  analysis: boolean,
): void {
  const ranks = other ? new Map(other.data.map((h) => [h.id, h.rank])) : null;
  const list = el('ol', { class: 'hits' }, ...answer.data.map((h) => hitNode(h, s.hybrid, ranks)));
  const embed = `${answer.timings.embed_ms.toFixed(0)} ms to embed${s.reasoning ? ' (with the analysis)' : ''}`;
  const timing = `${embed}, ${answer.timings.search_ms.toFixed(0)} ms to search`;
  const parts: Node[] = [el('h2', {}, describe(s)), el('p', { class: 'timing' }, timing)];
  if (analysis && answer.reasoning !== undefined)
    parts.push(el('p', { class: 'column-analysis' }, el('strong', {}, 'Analysis: '), answer.reasoning || '(none)'));
  if (answer.judgments) {
    const j = answer.judgments;
    parts.push(
      el(
        'p',
        { class: 'ndcg', 'data-ndcg': String(j.ndcg_at_10) },
        `nDCG@10 ${j.ndcg_at_10.toFixed(4)} — ${j.source} query ${j.query_id}, ` +
          `${j.relevant} relevant document${j.relevant === 1 ? '' : 's'} judged`,
      ),
    );
  }
  if (answer.data.length === 0) parts.push(el('p', {}, 'No documents.'));
  column.replaceChildren(...parts, list);
  column.hidden = false;
}

let running = false;

async function runSearch(): Promise<void> {
  const query = byId<HTMLTextAreaElement>('query').value;
  if (query.trim() === '') {
    showMessage('Type a query first.');
    byId('query').focus();
    return;
  }
  if (running) return;
  running = true;
  const button = byId<HTMLButtonElement>('search-button');
  button.disabled = true;
  showMessage(null);
  const s: Settings = {
    reasoning: byId<HTMLInputElement>('reasoning').checked,
    hybrid: byId<HTMLInputElement>('hybrid').checked,
  };
  const compare = byId<HTMLSelectElement>('compare').value;
  const k = Number(byId<HTMLSelectElement>('k').value);
  const colA = byId('col-a'),
    colB = byId('col-b'),
    analysis = byId('analysis'),
    note = byId('analysis-note'),
    status = byId('status');
  colA.hidden = true;
  colB.hidden = true;
  analysis.textContent = '';
  note.textContent = '';
  byId('analysis-box').hidden = !s.reasoning;
  status.textContent = s.reasoning ? 'The model is analysing the query…' : 'Searching…';
  const request = (t: Settings): Record<string, unknown> => ({
    query,
    k,
    reasoning: t.reasoning ? 'on' : 'off',
    hybrid: t.hybrid,
    highlight: true,
    // a query too long for the context is cut, and the status line says so, rather than refused
    truncate: true,
  });
  try {
    let first: SearchAnswer | null = null;
    await postEvents('v1/search/stream', request(s), (name, data) => {
      if (name === 'reasoning') analysis.textContent = (data as { reasoning: string }).reasoning;
      else if (name === 'result') first = data as SearchAnswer;
      else if (name === 'error') {
        const { status, error } = data as { status: number; error: { message: string } };
        throw new ApiError(error.message, status);
      }
    });
    if (!first) throw new ApiError('The server ended its answer before the hits; search again.', 0);
    const a: SearchAnswer = first;
    if (s.reasoning) {
      analysis.textContent = a.reasoning || '(the model wrote no analysis)';
      note.textContent = a.forced
        ? 'The model did not emit <|embed_token|> within its budget; the token was appended for it.'
        : 'The model emitted <|embed_token|> itself.';
    }
    renderColumn(colA, a, s, null, false);
    if (compare !== 'none') {
      const t: Settings = compare === 'reasoning' ? { ...s, reasoning: !s.reasoning } : { ...s, hybrid: !s.hybrid };
      status.textContent = `Searching again: ${describe(t)}…`;
      const b = await postJson<SearchAnswer>('v1/search', request(t));
      renderColumn(colA, a, s, b, false);
      renderColumn(colB, b, t, a, t.reasoning);
    }
    const cut = a.truncated_tokens
      ? ` The query was cut by ${a.truncated_tokens} tokens to fit the model's context.`
      : '';
    status.textContent = `${a.data.length} hits.${cut}`;
  } catch (e) {
    status.textContent = '';
    showMessage(errorText(e));
    offerKey(e);
  } finally {
    running = false;
    button.disabled = false;
  }
}

/** The fusion /health reports: the weights the model stores for hybrid search (search-r3 fusion), if any. */
interface HealthFusion {
  dense_weight: number;
  k: number;
  chosen_on: string;
}

/** Says how hybrid search fuses on this server, beside its checkbox; where the weights were chosen on hover. */
function showFusion(f: HealthFusion | undefined): void {
  const span = byId('fusion');
  // 1 − 0.7 is 0.30000000000000004 in floating point: shown as the 0.3 it stands for
  const bm25 = Number((1 - (f?.dense_weight ?? 0)).toFixed(6));
  span.textContent = f
    ? `weighted reciprocal rank: dense ${f.dense_weight}, BM25 ${bm25}, k ${f.k}`
    : 'reciprocal rank, k 60: the model stores no weights';
  span.title = f ? `chosen on ${f.chosen_on}` : 'search-r3 fusion chooses weights for a model on dev queries';
}

/** Says at once when the server wants a key this tab does not have, or has no index to search. */
async function checkServer(): Promise<void> {
  try {
    await getJson('v1/models');
    // with the key, /health tells what the server serves
    const health = await getJson<{ index?: unknown; fusion?: HealthFusion }>('health');
    showFusion(health.fusion);
    showMessage(
      health.index === undefined
        ? 'This server has no index to search: start it with search-r3 serve --index <folder>.'
        : null,
    );
  } catch (e) {
    showMessage(errorText(e));
    offerKey(e);
  }
}

byId<HTMLFormElement>('search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void runSearch();
});
byId<HTMLTextAreaElement>('query').addEventListener('keydown', (e) => {
  // Enter searches, Shift+Enter breaks the line, as in a chat box
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    void runSearch();
  }
});
setUpKeyForm(() => void checkServer());
void checkServer();
