/**
 * The snippets of /v1/search's `highlight`: a window of a hit's text around its first match, with the words BM25's
 * analyzer matches marked, as a client slices them out of the window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryTerms, snippet } from '../../src/serve/snippet.js';

test('the marks are the words whose analysed form the query has, as offsets into the window', () => {
  const s = snippet('Proteins bind. The binding of a protein to DNA.', queryTerms('protein binding'));
  assert.deepEqual(
    s.marks.map(([a, b]) => s.text.slice(a, b)),
    ['Proteins', 'bind', 'binding', 'protein'],
  );
  assert.deepEqual(s.cut, { before: false, after: false });
});

test('a long text is windowed around its first match, at word boundaries', () => {
  const text = `${'filler words here. '.repeat(40)}The heart pumps blood. ${'more text after. '.repeat(40)}`;
  const s = snippet(text, queryTerms('heart'), 120);
  assert.ok(s.text.length <= 120, `${s.text.length} characters`);
  assert.deepEqual(s.cut, { before: true, after: true });
  assert.deepEqual(
    s.marks.map(([a, b]) => s.text.slice(a, b)),
    ['heart'],
  );
  assert.match(s.text, /^filler|^words|^here/, 'begins at a word');
});

test('a window never ends inside a character of two UTF-16 units (an emoji)', () => {
  // emoji are no words, so the word boundary does not move the end: the cut could fall between the two halves
  for (let pad = 0; pad < 4; pad++) {
    const text = `cell ${'x'.repeat(pad)}${'😀'.repeat(200)}`;
    const s = snippet(text, queryTerms('cell'), 300);
    assert.ok(s.cut.after);
    assert.ok(s.text.length <= 300);
    assert.equal(s.text, Buffer.from(s.text, 'utf8').toString('utf8'), `no lone surrogate (pad ${pad})`);
    assert.equal(s.text.at(-1), '😀'.at(-1), 'ends with a whole emoji');
  }
});
