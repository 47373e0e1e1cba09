/**
 * The tokens that end an assistant turn: one list for the embedder's reasoning, the RL trainer's rollouts
 * and the server's chat completions, so that a model stops at the same tokens wherever it generates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assistantEndTokens } from '../../src/embed/prompts.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { Tokenizer } from '../../src/model/tokenizer.js';

function tokenizer(specialTokens: string[], eos: string | null): Tokenizer {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300, specialTokens });
  return Tokenizer.fromJSON(tokenizerJson, { ...tokenizerConfig, eos_token: eos });
}

test(
  'assistant end tokens: <|im_end|> and <|endoftext|> by name, then an EOS of another name as ""; ' + 'each id once',
  () => {
    const tok = tokenizer(['<|endoftext|>', '<|im_start|>', '<|im_end|>', '</s>'], '</s>');
    const ends = assistantEndTokens(tok);
    const id = (t: string): number => tok.tokenToId(t)!;
    const named = (t: string): [number, string] => [id(t), t];
    assert.deepEqual([...ends], [named('<|im_end|>'), named('<|endoftext|>'), [id('</s>'), '']]);
    // Qwen2's config names <|im_end|> as EOS: it is listed once, by its name
    const qwen = tokenizer(['<|endoftext|>', '<|im_start|>', '<|im_end|>'], '<|im_end|>');
    assert.deepEqual([...assistantEndTokens(qwen).values()], ['<|im_end|>', '<|endoftext|>']);
    // a vocabulary without the chat tokens ends turns at its EOS only
    const plain = tokenizer(['</s>'], '</s>');
    assert.deepEqual([...assistantEndTokens(plain)], [[plain.tokenToId('</s>')!, '']]);
    assert.equal(assistantEndTokens(tokenizer(['</s>'], null)).size, 0);
  },
);
