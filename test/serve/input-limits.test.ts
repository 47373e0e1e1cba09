/** The per-input limits' messages (src/serve/input-limits.ts): what is over, by how much, and what to do. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpError } from '../../src/serve/http-error.js';
import { checkInputChars, checkInputTokens } from '../../src/serve/input-limits.js';

const refusal = (f: () => void): HttpError => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'context_length_exceeded');
    return e;
  }
  assert.fail('not refused');
};

test('an input over the per-input limit is told to shorten it or, where the request can, to set truncate', () => {
  checkInputTokens(20, 'query', 20, 'truncate');
  const tokens = refusal(() => checkInputTokens(21, 'query', 20, 'truncate'));
  assert.equal(tokens.param, 'query');
  assert.equal(
    tokens.message,
    'query has 21 tokens; this server accepts at most 20 tokens per input (--max-tokens); shorten it, or set ' +
      "'truncate' to true to cut it to fit.",
  );
  const ids = refusal(() => checkInputTokens(21, 'input[0]', 20));
  assert.match(ids.message, /\(--max-tokens\); shorten it\.$/);
  checkInputChars('a'.repeat(80), 'input[2]', 20, 2, 'search_r3.truncate');
  const chars = refusal(() => checkInputChars('a'.repeat(81), 'input[2]', 20, 2, 'search_r3.truncate'));
  assert.equal(chars.param, 'input[2]');
  assert.match(chars.message, /^input\[2\] has 81 characters, more than any text of at most 20 tokens can have; /);
  assert.match(chars.message, /shorten it, or set 'search_r3\.truncate' to true to cut it to fit\.$/);
});
