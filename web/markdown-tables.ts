/**
 * The recipe's evaluation.md as HTML: its headings, paragraphs and pipe tables, the only Markdown it
 * writes. Text goes in as text nodes, never as HTML.
 */
import { el } from './api.js';

const cells = (line: string): string[] =>
  line
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim().replace(/\*\*/g, '').replace(/`/g, ''));

export function renderMarkdown(markdown: string): HTMLElement {
  const out = el('div', { class: 'markdown' });
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    if (heading) {
      out.append(el(`h${Math.min(6, heading[1]!.length + 2)}` as 'h3', {}, heading[2]!));
    } else if (line.trimStart().startsWith('|')) {
      const rows: string[][] = [];
      for (; i < lines.length && lines[i]!.trimStart().startsWith('|'); i++)
        if (!/^\s*\|[\s:|-]+\|\s*$/.test(lines[i]!)) rows.push(cells(lines[i]!));
      i--;
      const [head, ...body] = rows;
      const table = el('table', {});
      if (head) table.append(el('thead', {}, el('tr', {}, ...head.map((c) => el('th', { scope: 'col' }, c)))));
      table.append(
        el(
          'tbody',
          {},
          ...body.map((r) =>
            el('tr', {}, ...r.map((c, j) => (j === 0 ? el('th', { scope: 'row' }, c) : el('td', {}, c)))),
          ),
        ),
      );
      out.append(el('div', { class: 'table-wrap' }, table));
    } else {
      out.append(el('p', {}, line.replace(/\*\*/g, '').replace(/`/g, '')));
    }
  }
  return out;
}
