/**
 * The streaming decoder must give, at every token, exactly the text of the whole sequence so far: a streamed
 * chat completion and a streamed analysis send what it returns. Sequences mix real text in many scripts,
 * lone byte tokens that end inside a character, special tokens (left out) and non-special added tokens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamingDecoder } from '../../src/model/streaming-decoder.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { readQwenReferenceFiles } from '../helpers/qwen-reference-tokenizer.js';
import { seededRandom, variedStrings } from '../helpers/varied-strings.js';

const { tokenizerJson, tokenizerConfig } = readQwenReferenceFiles();
const qwen = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);

/** Token sequences of text, with byte tokens, special and non-special added tokens thrown in. */
function mixedSequences(tok: Tokenizer, count: number, seed: number): number[][] {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const bytes = Object.entries(tokenizerJson.model.vocab)
    .filter(([t]) => [...t].length === 1)
    .map(([, id]) => id);
  const added = tok.addedTokens.map((t) => t.id);
  return variedStrings(count, seed).map((text) => {
    const ids: number[] = [];
    for (const id of tok.encode(text)) {
      const r = random();
      if (r < 0.1) ids.push(pick(bytes));
      else if (r < 0.15) ids.push(pick(added));
      else if (r < 0.17) ids.push(Math.floor(random() * bytes.length * 500));
      ids.push(id);
    }
    return ids;
  });
}

function assertStreamsAsWhole(tok: Tokenizer, sequences: readonly number[][]): void {
  for (const ids of sequences) {
    const stream = new StreamingDecoder(tok);
    ids.forEach((id, i) => {
      const whole = tok.decode(ids.slice(0, i + 1), { skipSpecialTokens: true });
      assert.equal(stream.push(id), whole, `token ${i} of ${JSON.stringify(ids)}`);
    });
  }
}

test('streamed text equals the whole decode at every token, on the Qwen tokenizer (byte-level)', () => {
  assert.equal(qwen.decodesByBytes, true);
  const sequences = mixedSequences(qwen, 300, 7);
  const splits = sequences.flat().filter((id) => !qwen.isSpecial(id) && qwen.decode([id]).endsWith('\uFFFD'));
  assert.ok(splits.length > 500, `tokens that end inside a character: ${splits.length}`);
  assert.ok(
    sequences.flat().some((id) => qwen.isSpecial(id)),
    'special tokens',
  );
  assert.ok(
    sequences.flat().some((id) => id >= 151643 && !qwen.isSpecial(id)),
    'non-special added tokens',
  );
  assertStreamsAsWhole(qwen, sequences);
});

test('a decoder that cleans up spaces is decoded whole at each token, and streams as its whole decode', () => {
  const tidy = Tokenizer.fromJSON(tokenizerJson, { ...tokenizerConfig, clean_up_tokenization_spaces: true });
  assert.equal(tidy.decodesByBytes, false);
  // " ." becomes "." only once the "." comes: the text so far is not the text before plus the new token's
  const ids = tidy.encode("Yes . No , it is n't so ! 日本 .");
  assert.notEqual(tidy.decode(ids), ids.map((id) => tidy.decode([id])).join(''));
  assertStreamsAsWhole(tidy, [ids, ...mixedSequences(tidy, 40, 11)]);
});
