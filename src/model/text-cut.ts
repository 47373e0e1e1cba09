/**
 * Where a text may be cut before encoding without changing a single token: positions c with
 * encode(text) = encode(text[0, c)) ++ encode(text[c, end)). With them the first n tokens of a long text
 * (all that a prompt cut to its context keeps) come from encoding a prefix, not the whole text.
 *
 * Why a position passing `isTextCut` is such a cut, step by step through the engine's encode
 * (@huggingface/tokenizers: added-token split, normalizer, pre-tokenizer, BPE per piece, post-processor),
 * for the tokenizers `textCutRules` accepts:
 *
 * 1. Added tokens are found by a left-to-right longest match of their literal contents. No occurrence of
 *    any of them overlaps [j, m) (j ≤ c − 1 < c < m, below), so none crosses c: every match before c is
 *    decided by characters before c, and the scan after c starts afresh, as it would on text[c, end).
 *    The section of plain text around c is therefore split at c and nothing else changes.
 * 2. NFC: every ASCII character is a starter that nothing composes with from before (quick-check Yes, and
 *    no canonical composition has an ASCII second part), so NFC(x + y) = NFC(x) + NFC(y) whenever y starts
 *    with ASCII. The character at c is ASCII, and so is the one at j; hence the section's NFC splits at c,
 *    its left part ends as NFC(text[j, c)) ends and its right part starts as NFC(text[c, m)) starts.
 * 3. The Qwen2 split pattern (as the engine compiles it) has no look-behind and no anchors, and each of its
 *    alternatives reaches past a letter only by extending a run of letters (\p{L}+ or a contraction's
 *    letters): its other runs (white space, punctuation, newlines) stop at a letter. When the left part
 *    ends with a letter and the right part starts with a non-letter, no match can cover both sides, and
 *    any match attempt left of c sees the non-letter exactly as it sees the end of the text: both stop a
 *    letter run. So the pieces left of c are those of the left part alone, and the right part's pieces
 *    are found from c on as if it stood alone.
 * 4. ByteLevel (no regex, no prefix space), BPE and the ByteLevel post-processor work piece by piece.
 *
 * Tokenizers with anything else (another pattern or normalizer, added tokens that strip spaces, match
 * single words or match after normalization, a config that trims or lowercases) get no rules: callers then
 * encode the whole text.
 */
import { QWEN2_PRETOKENIZER_PATTERN } from './byte-level-bpe.js';
import type { TokenizerConfig, TokenizerJson } from './tokenizer-json.js';

/** What `isTextCut` needs to know of a tokenizer whose structure it has been checked against. */
export interface TextCutRules {
  /** The added tokens' contents, which must not cross a cut. */
  readonly addedTokens: readonly string[];
  /** The longest of them, in UTF-16 units. */
  readonly longestAdded: number;
}

/**
 * How far (UTF-16 units) a cut may lie from the nearest ASCII character on either side; past it a position
 * is not taken, which keeps the NFC checks short (text without ASCII has no cuts).
 */
const NFC_REACH = 64;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function isByteLevel(v: unknown): boolean {
  return isRecord(v) && v.type === 'ByteLevel' && v.add_prefix_space !== true && v.use_regex === false;
}

function isQwen2PreTokenizer(p: unknown): boolean {
  if (!isRecord(p) || p.type !== 'Sequence' || !Array.isArray(p.pretokenizers) || p.pretokenizers.length !== 2)
    return false;
  const [split, bytes] = p.pretokenizers as unknown[];
  return (
    isRecord(split) &&
    split.type === 'Split' &&
    isRecord(split.pattern) &&
    split.pattern.Regex === QWEN2_PRETOKENIZER_PATTERN &&
    split.behavior === 'Isolated' &&
    split.invert === false &&
    isByteLevel(bytes)
  );
}

/** The rules for a tokenizer built the way Qwen2's is, or null when a text must be encoded whole. */
export function textCutRules(json: TokenizerJson, config: TokenizerConfig): TextCutRules | null {
  const normalizer = json.normalizer;
  if (normalizer !== null && !(isRecord(normalizer) && normalizer.type === 'NFC')) return null;
  if (!isQwen2PreTokenizer(json.pre_tokenizer)) return null;
  if (json.post_processor !== null && !isByteLevel(json.post_processor)) return null;
  const flags = config as Record<string, unknown>;
  if (flags.remove_space === true || flags.do_lowercase_and_remove_accent === true) return null;
  // the engine's default for a missing `normalized` is "not special"
  const plain = json.added_tokens.every(
    (t) => !t.lstrip && !t.rstrip && !t.single_word && !(t.normalized ?? !t.special) && t.content.length > 0,
  );
  if (!plain) return null;
  const addedTokens = json.added_tokens.map((t) => t.content);
  return { addedTokens, longestAdded: addedTokens.reduce((a, t) => Math.max(a, t.length), 0) };
}

const isAsciiLetter = (u: number): boolean => (u >= 0x41 && u <= 0x5a) || (u >= 0x61 && u <= 0x7a);
const LAST_IS_LETTER = /\p{L}$/u;
const FIRST_IS_LETTER = /^\p{L}/u;

/** True when encode(text) = encode(text[0, at)) ++ encode(text[at, end)) is sure (see the module comment). */
export function isTextCut(text: string, at: number, rules: TextCutRules): boolean {
  if (at <= 0 || at >= text.length) return false;
  const next = text.charCodeAt(at);
  if (next >= 0x80 || isAsciiLetter(next)) return false;
  // an ASCII non-letter just before the cut ends the left part as it is: not a letter
  const prev = text.charCodeAt(at - 1);
  if (prev < 0x80 && !isAsciiLetter(prev)) return false;
  let j = at - 1;
  while (j >= 0 && j >= at - NFC_REACH && text.charCodeAt(j) >= 0x80) j--;
  if (j < 0 || j < at - NFC_REACH) return false;
  let m = at + 1;
  while (m < text.length && m <= at + NFC_REACH && text.charCodeAt(m) >= 0x80) m++;
  if (m > at + NFC_REACH) return false;
  if (!LAST_IS_LETTER.test(text.slice(j, at).normalize('NFC'))) return false;
  if (FIRST_IS_LETTER.test(text.slice(at, m).normalize('NFC'))) return false;
  return !addedTokenOverlaps(text, j, m, rules);
}

/** Whether an occurrence of an added token overlaps text[from, to). */
function addedTokenOverlaps(text: string, from: number, to: number, rules: TextCutRules): boolean {
  if (rules.longestAdded === 0) return false;
  const base = Math.max(0, from - rules.longestAdded + 1);
  const window = text.slice(base, to + rules.longestAdded - 1);
  for (const t of rules.addedTokens) {
    for (let i = window.indexOf(t); i >= 0; i = window.indexOf(t, i + 1)) {
      if (base + i < to && base + i + t.length > from) return true;
    }
  }
  return false;
}

/** The first cut at or after `from` and before `to`, or -1 when there is none. */
export function nextTextCut(text: string, from: number, rules: TextCutRules, to = text.length): number {
  for (let at = Math.max(1, from); at < Math.min(to, text.length); at++) if (isTextCut(text, at, rules)) return at;
  return -1;
}

/** The last cut at or before `before` and not before `downTo`, or -1 when there is none. */
export function previousTextCut(text: string, before: number, rules: TextCutRules, downTo = 1): number {
  for (let at = Math.min(before, text.length - 1); at >= Math.max(1, downTo); at--)
    if (isTextCut(text, at, rules)) return at;
  return -1;
}
