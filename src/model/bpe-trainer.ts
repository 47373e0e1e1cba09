/**
 * Training a byte-level BPE tokenizer in the Qwen2 style: NFC normalisation, Qwen2's pre-tokenizer
 * split, the 256 byte-level base tokens (ids 0..255 in GPT-2's byte-to-character order), merges learned
 * by pair frequency over the counted pre-tokenized words, then the special tokens as added tokens.
 * The result is a standard tokenizer.json + tokenizer_config.json (Qwen2.5 chat template) that our
 * Tokenizer and llama.cpp (through the GGUF export, `pre = qwen2`) both load.
 *
 * The merge loop is incremental: a pair → count map, a pair → words index and a max-heap with lazy
 * invalidation, so each merge only rewrites the words that contain its pair. Ties in pair counts are
 * broken by the pair's token strings (left, then right; byte-level characters in UTF-16 code-unit
 * order), which depends on nothing but the word counts: the same text gives the same tokenizer,
 * whatever order the files or words come in.
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { splitLines, TEXT_UNITS, type NumberedLine } from '../io/line-split.js';
import { listFilesUnder, type ListSkipReason } from '../io/list-files.js';
import { bpeTokenizerFiles, byteLevelAlphabet, TINY_SPECIAL_TOKENS } from './byte-level-bpe.js';

export { bpeTokenizerFiles };
import type { TokenizerConfig, TokenizerJson } from './tokenizer-json.js';

/**
 * QWEN2_PRETOKENIZER_PATTERN for JavaScript's RegExp: `(?i:...)` spelled out (Node 20 has no inline
 * modifiers), and \s / \S as Unicode White_Space, which Oniguruma (Rust tokenizers) uses: it includes
 * U+0085 and excludes U+FEFF, the other way round from JavaScript's \s.
 */
const WS = '\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
export const QWEN2_PRETOKENIZER_JS = new RegExp(
  "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])" +
    '|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+' +
    '|\\p{N}' +
    `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
    `|[${WS}]*[\\r\\n]+` +
    `|[${WS}]+(?![^${WS}])` +
    `|[${WS}]+`,
  'gu',
);

/** Splits (already NFC-normalised) text into pre-tokens as Qwen2's pre-tokenizer does. */
export function preTokenize(text: string): string[] {
  return text.match(QWEN2_PRETOKENIZER_JS) ?? [];
}

/**
 * Counts of distinct pre-tokenized words: the trainer's whole view of the text (memory grows with distinct words only).
 */
export class WordCounter {
  readonly counts = new Map<string, number>();
  bytes = 0;
  private readonly specials: readonly string[];

  constructor(specialTokens: readonly string[] = TINY_SPECIAL_TOKENS) {
    this.specials = specialTokens;
  }

  /**
   * Adds a text: NFC-normalised, special tokens written in it removed (they are added tokens, never merged),
   * pre-tokenized, counted.
   */
  add(text: string): void {
    let t = text.normalize('NFC');
    for (const s of this.specials) if (t.includes(s)) t = t.split(s).join(' ');
    this.bytes += Buffer.byteLength(t);
    for (const w of preTokenize(t)) this.counts.set(w, (this.counts.get(w) ?? 0) + 1);
  }
}

export interface BpeTrainOptions {
  /** Total token ids: 256 byte tokens + merges + special tokens. */
  vocabSize: number;
  /**
   * Added special tokens, given the ids after the merges. Default <|endoftext|>, <|im_start|>, <|im_end|>,
   * <|embed_token|>.
   */
  specialTokens?: readonly string[];
  /** A pair seen fewer times than this is never merged (training stops early, with a smaller vocabulary). Default 2. */
  minFrequency?: number;
  /** Called every `progressEvery` merges (default 500) with merges done and wanted. */
  onProgress?: (done: number, wanted: number) => void;
  progressEvery?: number;
}

export interface BpeTrainResult {
  /** Merges in creation order: merge i makes token id 256 + i. */
  merges: Array<[string, string]>;
  /** Byte-level token strings by id (bytes then merges; specials not included). */
  tokens: string[];
  /** Why training stopped short of the requested size, if it did. */
  stoppedEarly: string | null;
}

/**
 * Learns BPE merges from word counts. Each round merges the most frequent adjacent pair (count summed
 * over words × word counts); ties go to the smaller (left, right) token strings.
 */
export function learnMerges(words: ReadonlyMap<string, number>, options: BpeTrainOptions): BpeTrainResult {
  const specials = options.specialTokens ?? TINY_SPECIAL_TOKENS;
  const wanted = options.vocabSize - 256 - specials.length;
  if (!Number.isInteger(options.vocabSize) || wanted < 0) {
    throw new RangeError(
      `vocabSize must be an integer ≥ ${256 + specials.length} (256 bytes + ${specials.length} special ` +
        `tokens), got ${options.vocabSize}.`,
    );
  }
  const minFrequency = options.minFrequency ?? 2;
  const alphabet = byteLevelAlphabet();
  const byteId = new Int32Array(256);
  // byteLevelAlphabet() lists characters in id order; the byte each character stands for is its code
  // point for the printable ones and (code − 256)-th unprintable byte otherwise: rebuild the byte → id map.
  const unprintable: number[] = [];
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    if (!printable) unprintable.push(b);
  }
  alphabet.forEach((ch, id) => {
    const c = ch.charCodeAt(0);
    byteId[c >= 256 ? unprintable[c - 256]! : c] = id;
  });
  const tokens = [...alphabet];

  // Words as symbol-id arrays, in a canonical order (sorted by text) so nothing depends on input order.
  const entries = [...words.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const symbols: Int32Array[] = [];
  const freq: number[] = [];
  for (const [w, c] of entries) {
    const bytes = Buffer.from(w, 'utf8');
    if (bytes.length < 2) continue; // no pair to merge
    const s = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) s[i] = byteId[bytes[i]!]!;
    symbols.push(s);
    freq.push(c);
  }

  // A pair is one number key. Below 32,768 ids it stays under 2^30, a V8 small integer, which makes
  // the pair maps several times faster and lighter than heap-number keys; larger vocabularies use 2^21.
  const SHIFT = options.vocabSize <= 32768 ? 32768 : 2 ** 21;
  const keyOf = (a: number, b: number): number => a * SHIFT + b;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < symbols.length; w++) {
    const s = symbols[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = keyOf(s[i]!, s[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + freq[w]!);
      let list = pairWords.get(k);
      if (list === undefined) pairWords.set(k, (list = []));
      if (list[list.length - 1] !== w) list.push(w);
    }
  }

  const heap = new PairHeap(tokens, SHIFT);
  for (const [k, c] of pairCount) heap.push(k, c);

  const indexWord = (k: number, w: number): void => {
    let l = pairWords.get(k);
    if (l === undefined) pairWords.set(k, (l = []));
    if (l[l.length - 1] !== w) l.push(w);
  };
  const merges: Array<[string, string]> = [];
  let stoppedEarly: string | null = null;
  const every = options.progressEvery ?? 500;
  while (merges.length < wanted) {
    const top = heap.pop();
    if (top === null) {
      stoppedEarly = `no pairs left to merge after ${merges.length} merges`;
      break;
    }
    const current = pairCount.get(top.key) ?? 0;
    if (current !== top.count) {
      // stale entry: counts of existing pairs only fall, so re-queue with the true count
      if (current > 0) heap.push(top.key, current);
      continue;
    }
    if (current < minFrequency) {
      stoppedEarly =
        `the most frequent remaining pair occurs ${current} times (< minFrequency ` +
        `${minFrequency}) after ${merges.length} merges`;
      break;
    }
    const a = Math.floor(top.key / SHIFT),
      b = top.key % SHIFT;
    const id = tokens.length;
    tokens.push(tokens[a]! + tokens[b]!);
    merges.push([tokens[a]!, tokens[b]!]);
    const touched = new Set<number>();
    const list = pairWords.get(top.key) ?? [];
    pairWords.delete(top.key);
    const add = (k: number, d: number): void => {
      const c = (pairCount.get(k) ?? 0) + d;
      if (c > 0) pairCount.set(k, c);
      else pairCount.delete(k);
    };
    for (const w of list) {
      const s = symbols[w]!;
      const f = freq[w]!;
      // Merge left to right, updating only the pairs around each merge site, as the sequence reads at
      // that moment: the left neighbour is already rewritten (it may be the token just made), the
      // right one not yet. So for "x a b a b y": (x,a)→(x,X), (b,a)→(X,a)→(X,X), (b,y)→(X,y).
      const out = new Int32Array(s.length);
      let n = 0;
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          if (n > 0) {
            const left = out[n - 1]!;
            add(keyOf(left, a), -f);
            const k = keyOf(left, id);
            add(k, f);
            touched.add(k);
            indexWord(k, w);
          }
          if (i + 2 < s.length) {
            const right = s[i + 2]!;
            add(keyOf(b, right), -f);
            const k = keyOf(id, right);
            add(k, f);
            touched.add(k);
            indexWord(k, w);
          }
          out[n++] = id;
          i++;
        } else out[n++] = s[i]!;
      }
      if (n < s.length) symbols[w] = out.slice(0, n); // else the index was stale: the word lost this pair earlier
    }
    pairCount.delete(top.key);
    // pairs with the new token are the only ones whose counts grew: queue them with their final counts
    for (const k of touched) {
      const c = pairCount.get(k);
      if (c !== undefined) heap.push(k, c);
    }
    if (options.onProgress && merges.length % every === 0) options.onProgress(merges.length, wanted);
  }
  return { merges, tokens, stoppedEarly };
}

/** Max-heap of (count, pair) ordered by count, then by the smaller (left, right) token strings. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  constructor(
    private readonly tokens: readonly string[],
    private readonly shift: number,
  ) {}

  /** True when entry i ranks above entry j. */
  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!,
      cj = this.counts[j]!;
    if (ci !== cj) return ci > cj;
    const ki = this.keys[i]!,
      kj = this.keys[j]!;
    if (ki === kj) return false;
    const li = this.tokens[Math.floor(ki / this.shift)]!,
      lj = this.tokens[Math.floor(kj / this.shift)]!;
    if (li !== lj) return li < lj;
    return this.tokens[ki % this.shift]! < this.tokens[kj % this.shift]!;
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(key: number, count: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): { key: number; count: number } | null {
    const n = this.counts.length;
    if (n === 0) return null;
    const top = { key: this.keys[0]!, count: this.counts[0]! };
    this.swap(0, n - 1);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    const m = n - 1;
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let best = i;
      if (l < m && this.above(l, best)) best = l;
      if (r < m && this.above(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }
}

/** Why listInputFiles left a file out: listFilesUnder's reasons, or that an earlier input gave it already. */
export type InputSkipReason = ListSkipReason | 'given more than once';

/**
 * Files under the given files/folders, the order text is read in: a file named is always read; in
 * folders (recursively, sorted; links as listFilesUnder follows them) only .jsonl and .txt files, so a
 * corpus folder's manifest.json is not taken for text. Each file is read once, where it first comes: a file
 * named twice, or both named and in a folder named, would count its text twice. A path that does not exist is
 * an error naming it.
 */
export async function listInputFiles(
  inputs: readonly string[],
  onSkip?: (file: string, why: InputSkipReason) => void,
): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const take = (file: string): void => {
    const real = realpathSync(file);
    if (seen.has(real)) return onSkip?.(file, 'given more than once');
    seen.add(real);
    out.push(file);
  };
  for (const p of inputs) {
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) throw new InputFileError(`${p}: no such file or folder`);
    if (st.isDirectory()) (await listFilesUnder(p, (name) => /\.(jsonl|txt)$/.test(name), onSkip)).forEach(take);
    else if (st.isFile()) take(p);
  }
  return out;
}

/**
 * listInputFiles with what it left out said: a line per reason ("skipped 2 files with a name not in UTF-8"),
 * so every command that reads text reports the files it silently would not read, in the same words.
 */
export async function listInputFilesReported(
  inputs: readonly string[],
): Promise<{ files: string[]; skipped: string[] }> {
  const leftOut = new Map<InputSkipReason, number>();
  const files = await listInputFiles(inputs, (_, why) => leftOut.set(why, (leftOut.get(why) ?? 0) + 1));
  const skipped = [...leftOut].map(([why, n]) => `skipped ${n} ${n === 1 ? 'file' : 'files'} ${why}`);
  return { files, skipped };
}

/** An input path that does not exist. */
export class InputFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputFileError';
  }
}

/**
 * The text of one line of a .jsonl document file: its "title" and "text" joined by a newline ('' when
 * it has neither). A line that is no JSON object is an InputFileError naming the file and line.
 */
export function jsonlDocumentText(line: string, file: string, lineNumber: number): string {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    doc = undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    const want = 'each line of a .jsonl document file is {"title", "text"}';
    throw new InputFileError(`${file}:${lineNumber}: not a JSON object; ${want}`);
  }
  const { title, text } = doc as { title?: unknown; text?: unknown };
  return [title, text].filter((x): x is string => typeof x === 'string' && x !== '').join('\n');
}

/** Bytes of a multi-byte UTF-8 character after its first (10xxxxxx). */
const isContinuation = (byte: number): boolean => (byte & 0xc0) === 0x80;

/**
 * Where the character being decoded at `end` began: the offset of its first byte when `bytes[0, end)` stops inside
 * one, else `end`. For bytes that decode as far as `end`.
 */
function characterStart(bytes: Uint8Array, end: number): number {
  for (let i = end - 1; i >= 0 && i >= end - 3; i--) {
    const b = bytes[i]!;
    if (isContinuation(b)) continue;
    const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return i + length > end ? i : end;
  }
  return end;
}

/**
 * The 1-based line of `file` that byte `offset` is on, counted by reading the file again up to it: only a
 * refusal names a line, so reading valid text does not count line breaks as it goes.
 */
async function lineAtOffset(file: string, offset: number): Promise<number> {
  let line = 1;
  if (offset === 0) return line; // no byte before it, and a stream cannot end (inclusively) at byte -1
  for await (const chunk of createReadStream(file, { end: offset - 1 }) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) line++;
  }
  return line;
}

/**
 * The text of a file decoded as strict UTF-8, a piece at a time (any size). A file that is not UTF-8 text (a
 * gzip file, Latin-1, UTF-16) is an InputFileError naming the byte offset and line of the first bad character:
 * decoded leniently, its bytes would become U+FFFD and odd characters, and the tokenizer would learn them.
 */
export async function* readUtf8Text(file: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0; // bytes before this chunk
  let tail = new Uint8Array(0); // the previous chunk's last bytes: a character may continue in this chunk
  const notUtf8 = async (at: number): Promise<InputFileError> =>
    new InputFileError(
      `${file}: is not UTF-8 text (invalid UTF-8 at byte offset ${at}, line ${await lineAtOffset(file, at)}); ` +
        'give plain text or .jsonl files in UTF-8 (decompress or convert this one first)',
    );
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let text: string;
    try {
      text = decoder.decode(chunk, { stream: true });
    } catch {
      // Find the byte again with a fresh decoder, from the first character that may be unfinished. Leading
      // continuation bytes of the tail end characters that began before it, which decoded already.
      let start = 0;
      while (start < tail.length && isContinuation(tail[start]!)) start++;
      const carried = tail.length - start;
      const bytes = Buffer.concat([tail.subarray(start), chunk]);
      const decodes = (n: number): boolean => {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
          return true;
        } catch {
          return false;
        }
      };
      // bytes[0, good) decodes and bytes[0, bad) does not: halve the gap down to the byte that fails
      let good = carried,
        bad = bytes.length;
      while (bad - good > 1) {
        const mid = (good + bad) >>> 1;
        if (decodes(mid)) good = mid;
        else bad = mid;
      }
      // the bad character may have begun in the previous chunk
      throw await notUtf8(offset + characterStart(bytes, good) - carried);
    }
    offset += chunk.length;
    tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - 3)));
    if (text !== '') yield text;
  }
  try {
    decoder.decode();
  } catch {
    // the file ends inside a character
    throw await notUtf8(offset - tail.length + characterStart(tail, tail.length));
  }
}

/**
 * The longest line readUtf8Lines takes, in UTF-16 units (so at least as many UTF-8 bytes). A line is held whole
 * before it is parsed: without a bound, a file with no line break would grow until V8's string limit (about 512
 * MiB) killed the process without naming the file.
 */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

/**
 * The lines of a strict UTF-8 file (readUtf8Text), one at a time with their 1-based numbers, as splitLines splits
 * them: a line ends at \n, \r\n or a lone \r; only the line being read is held, and one longer than `maxLineChars`
 * is an InputFileError naming its number.
 */
export function readUtf8Lines(file: string, maxLineChars = MAX_LINE_CHARS): AsyncGenerator<NumberedLine> {
  return splitLines(
    readUtf8Text(file),
    TEXT_UNITS,
    maxLineChars,
    (line) =>
      new InputFileError(
        `${file}: line ${line} is longer than ${maxLineChars} characters (no line break in it); each line ` +
          'is one record: check that this is a text or JSON-lines file, and split a record this long',
      ),
  );
}

/** A whole file decoded as strict UTF-8 (readUtf8Text): an InputFileError where it is not UTF-8 text. */
export async function readUtf8File(file: string): Promise<string> {
  let text = '';
  for await (const piece of readUtf8Text(file)) text += piece;
  return text;
}

/** What reading one file gave the counter. */
interface CountedFile {
  /** .jsonl lines with no text to learn from (no non-empty string "title" or "text"), skipped. */
  skippedLines: number;
}

/**
 * Streams a file into the counter. `.jsonl` files hold one document per line: its "title" and "text"
 * (joined by a newline) are the text; a .jsonl file none of whose lines has either is an InputFileError.
 * Other files are plain text, read line by line and pre-tokenized in chunks of whole lines (a run of blank
 * lines across a chunk boundary is split there: a negligible difference in the counts). Text must be UTF-8.
 */
export async function countFile(file: string, counter: WordCounter): Promise<CountedFile> {
  const jsonl = file.endsWith('.jsonl');
  let chunk = '';
  let documents = 0;
  let skippedLines = 0;
  for await (const { text: line, line: n } of readUtf8Lines(file)) {
    if (jsonl) {
      if (line.trim() === '') continue;
      const text = jsonlDocumentText(line, file, n);
      if (text === '') {
        skippedLines++;
        continue;
      }
      counter.add(text);
      documents++;
    } else {
      chunk += line + '\n';
      if (chunk.length >= 1 << 16) {
        counter.add(chunk);
        chunk = '';
      }
    }
  }
  if (chunk !== '') counter.add(chunk);
  if (documents === 0 && skippedLines > 0) {
    throw new InputFileError(
      `${file}: none of its ${skippedLines} lines has a non-empty string "title" or "text"; ` +
        'each line of a .jsonl document file is {"title", "text"}',
    );
  }
  return { skippedLines };
}

export interface TrainTokenizerSummary {
  files: string[];
  /** .jsonl lines skipped for having no text (no non-empty string "title" or "text"). */
  skippedLines: number;
  /** UTF-8 bytes of text counted (after NFC). */
  bytes: number;
  distinctWords: number;
  merges: number;
  vocabSize: number;
  stoppedEarly: string | null;
  countSeconds: number;
  mergeSeconds: number;
}

/**
 * Reads every input file, learns the merges and returns the two tokenizer files' contents with a
 * summary; `onStage` reports progress lines (counting per file, merges every 500).
 */
export async function trainBpeTokenizer(
  inputs: readonly string[],
  options: BpeTrainOptions & { onStage?: (msg: string) => void },
): Promise<{ tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfig; summary: TrainTokenizerSummary }> {
  const { files, skipped } = await listInputFilesReported(inputs);
  // a file left out of the text is said, as index says it: the tokenizer would silently miss its words
  for (const line of skipped) options.onStage?.(line);
  const specials = options.specialTokens ?? TINY_SPECIAL_TOKENS;
  const counter = new WordCounter(specials);
  const t0 = performance.now();
  let skippedLines = 0;
  for (const f of files) {
    const counted = await countFile(f, counter);
    skippedLines += counted.skippedLines;
    const skipped = counted.skippedLines > 0 ? `; ${skippedLinesText(counted.skippedLines)}` : '';
    options.onStage?.(
      `counted ${f}: ${(counter.bytes / 1e6).toFixed(1)} MB, ${counter.counts.size} distinct words so far${skipped}`,
    );
  }
  if (counter.bytes === 0) {
    throw new InputFileError(
      `${inputs.join(', ')}: no text to learn from (${files.length} ${files.length === 1 ? 'file' : 'files'} read)`,
    );
  }
  const t1 = performance.now();
  const result = learnMerges(counter.counts, {
    ...options,
    onProgress:
      options.onProgress ??
      ((done, wanted) =>
        options.onStage?.(`merges ${done}/${wanted} (${((performance.now() - t1) / 1000).toFixed(1)} s)`)),
  });
  const t2 = performance.now();
  const files2 = bpeTokenizerFiles(result.merges, specials);
  return {
    ...files2,
    summary: {
      files,
      skippedLines,
      bytes: counter.bytes,
      distinctWords: counter.counts.size,
      merges: result.merges.length,
      vocabSize: 256 + result.merges.length + specials.length,
      stoppedEarly: result.stoppedEarly,
      countSeconds: (t1 - t0) / 1000,
      mergeSeconds: (t2 - t1) / 1000,
    },
  };
}

/** How many .jsonl lines were skipped, and why, for messages. */
export function skippedLinesText(n: number): string {
  return `skipped ${n} .jsonl line${n === 1 ? '' : 's'} with no non-empty string "title" or "text"`;
}
