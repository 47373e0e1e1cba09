/**
 * The byte-level BPE tokenizer format as Qwen2 lays it out, in one place: the pre-tokenizer pattern,
 * GPT-2's byte alphabet, and tokenizer.json + tokenizer_config.json for a list of merges. Both the BPE
 * trainer and the tiny test tokenizers write their files through it.
 */
import { QWEN2_5_CHAT_TEMPLATE } from './qwen2-chat-template.js';
import {
  type AddedTokenConfig,
  type AddedTokenJson,
  specialAddedToken,
  type TokenizerConfig,
  type TokenizerJson,
} from './tokenizer-json.js';

/**
 * Qwen2's pre-tokenizer split pattern (Oniguruma syntax, as tokenizer.json stores it): contractions,
 * letter runs with one leading non-letter, single digits, punctuation runs, newline runs, spaces.
 * llama.cpp recognises it as `tokenizer.ggml.pre = "qwen2"`.
 */
export const QWEN2_PRETOKENIZER_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| " +
  '?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';

/** The special tokens a Search-R3 model needs: Qwen's document end and chat markers, and the embedding token. */
export const TINY_SPECIAL_TOKENS: readonly string[] = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|embed_token|>',
];

/**
 * GPT-2's byte-to-character table, which byte-level BPE uses so that every byte is a printable
 * character: printable Latin-1 bytes map to themselves, the other 68 to U+0100 onwards. In this order
 * they are ids 0..255 of Qwen2's vocabulary.
 */
export function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = printable.map((b) => String.fromCharCode(b));
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) chars.push(String.fromCharCode(256 + next++));
  }
  return chars;
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

/**
 * tokenizer.json and tokenizer_config.json for learned merges, laid out as Qwen2's: byte tokens 0..255,
 * merge i → id 256 + i, special tokens after; eos <|im_end|>, pad <|endoftext|>, Qwen2.5's chat template.
 */
export function bpeTokenizerFiles(
  merges: ReadonlyArray<readonly [string, string]>,
  specialTokens: readonly string[] = TINY_SPECIAL_TOKENS,
  chatTemplate = QWEN2_5_CHAT_TEMPLATE,
): { tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfig } {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((ch, id) => (vocab[ch] = id));
  merges.forEach(([a, b], i) => (vocab[a + b] = 256 + i));
  const first = 256 + merges.length;
  const addedTokens: AddedTokenJson[] = specialTokens.map((content, i) => specialAddedToken(first + i, content));
  const tokenizerJson: TokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_PRETOKENIZER_PATTERN }, behavior: 'Isolated', invert: false },
        BYTE_LEVEL,
      ],
    },
    post_processor: { ...BYTE_LEVEL },
    decoder: { ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
  const decoder: Record<string, AddedTokenConfig> = {};
  for (const { id, ...rest } of addedTokens) decoder[String(id)] = rest;
  const has = (t: string): string | null => (specialTokens.includes(t) ? t : null);
  const tokenizerConfig: TokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: specialTokens.filter((t) => t !== '<|endoftext|>'),
    bos_token: null,
    chat_template: chatTemplate,
    clean_up_tokenization_spaces: false,
    eos_token: has('<|im_end|>') ?? has('<|endoftext|>'),
    errors: 'replace',
    model_max_length: 32768,
    pad_token: has('<|endoftext|>'),
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig };
}
