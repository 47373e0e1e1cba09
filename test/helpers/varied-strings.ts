import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A deterministic (seeded) set of varied strings for tokenizer tests: slices of real multilingual
 * text from ../shared/data (SciFact English, DRCD Chinese, ARCD Arabic, XQuAD in 12 languages),
 * joined with code, emoji (ZWJ sequences, skin tones, flags, keycaps), runs of spaces, tabs and
 * newlines, digit runs, English contractions in any case, decomposed (NFD) accents, control
 * characters, and Qwen's special tokens written into the text.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const sharedDataDir = path.resolve(repoRoot, '../shared/data');

/** mulberry32: a small seeded PRNG, so every run tests the same strings. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CORPORA = [
  'scifact/corpus.jsonl',
  'drcd/beir/dev/corpus.jsonl',
  'arcd/beir/test/corpus.jsonl',
  ...['ar', 'de', 'el', 'en', 'es', 'hi', 'ro', 'ru', 'th', 'tr', 'vi', 'zh'].map(
    (l) => `xquad/beir/${l}/corpus.jsonl`,
  ),
];

/**
 * Documents (as arrays of code points, so slices never split a surrogate pair) from each corpus.
 * U+FEFF (a byte-order mark some XQuAD texts start with) and U+0085 (NEL) are removed: Oniguruma,
 * which HF's Rust tokenizers use, counts NEL as \s and not U+FEFF, JavaScript's RegExp the other way
 * round, so implementations built on a plain JS RegExp (like @lenml/tokenizers) split text around them
 * differently. Those cases have their own test with ids from the Rust implementation.
 */
function loadDocuments(perCorpus: number): string[][][] {
  return CORPORA.map((rel) => {
    const lines = readFileSync(path.join(sharedDataDir, rel), 'utf8').split('\n', perCorpus);
    return lines
      .filter((l) => l.trim().length > 0)
      .map((l) => {
        const doc = JSON.parse(l) as { title?: string; text: string };
        return Array.from(`${doc.title ?? ''}\n${doc.text}`.replace(/[\uFEFF\u0085]/g, ''));
      });
  });
}

const CODE = [
  'def f(x):\n    return x ** 2  # square\n',
  'for (let i = 0; i < n; i++) {\n\tsum += a[i];\n}',
  'const re = /^\\s*(\\d+)\\s*$/u;',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
  '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
  '<div class="x">&amp;&lt;</div>',
  'SELECT id, COUNT(*) FROM t WHERE x >= 10 GROUP BY id;',
  'if [[ -f "$FILE" ]]; then echo "ok" >&2; fi',
  '    indented()\n        deeper()\n',
  'x=1;y=2;z=x+y',
  'https://example.org/path?q=a+b&lang=zh#frag',
  'user.name+tag@example.com',
  'fn main() -> Result<(), Box<dyn Error>> { Ok(()) }',
  '```python\nprint("hi")\n```',
  'a_b_c __init__ camelCaseName SCREAMING_CASE',
];

const EMOJI = [
  '😀',
  '🙂',
  '👍',
  '👍🏻',
  '👍🏼',
  '👍🏽',
  '👍🏾',
  '👍🏿',
  '👨‍👩‍👧‍👦',
  '👩🏽‍💻',
  '🏳️‍🌈',
  '🧑🏿‍🤝‍🧑🏻',
  '❤️',
  '🇯🇵',
  '🇸🇦',
  '1️⃣',
  '#️⃣',
  '🐈‍⬛',
  '😶‍🌫️',
  '🫠',
  '✅',
  '🔥🔥🔥',
];

const CONTRACTIONS = [
  "it's",
  "IT'S",
  "It'S",
  "don't",
  "DON'T",
  "we're",
  "WE'RE",
  "they've",
  "I'm",
  "I'M",
  "we'll",
  "WE'LL",
  "he'd",
  "HE'D",
  "'s",
  "'S",
  "'t",
  "'re",
  "'ve",
  "'m",
  "'ll",
  "'d",
  "rock'n'roll",
  "o'clock",
  "''",
  "'",
];

const SPECIAL = [
  '<|im_start|>',
  '<|im_end|>',
  '<|endoftext|>',
  '<|im_start|>user\n',
  '<|im_start',
  '<|endoftext',
  '|>',
  '<||>',
  '<|im_end|><|im_end|>',
];

const MISC = [
  '!!!???',
  '...',
  '…',
  '—',
  '–',
  '«»',
  '“quoted”',
  '„Anführung“',
  '¿Qué?',
  '¡Hola!',
  '(see Fig. 3b)',
  '[1,2]',
  '100%',
  '$5.00',
  '€12',
  '±0.5',
  '≤≥≠',
  '∑∫√∞',
  'x²+y³',
  '½',
  'ℕ',
  '½',
  'ﬁ',
  'Å',
  'Ǆ',
  'ß',
  'İ',
  'ς',
  '\u0000',
  '\u0007',
  '\u001b[0m',
  '\u007f',
  '\u200b',
  '\u200d',
  '\u2028',
  'a\u0301',
  'e\u0301\u0302',
  'ğ',
  '가각',
  'ｶﾀｶﾅ',
  'Ｆｕｌｌ',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '𠀀𠀁',
];

const SPACES = [' ', ' ', ' ', '\t', '\n', '\n', '\r\n', '\r', '\u00a0', '\u3000', '\u2003', '\u202f'];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

function int(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** `count` varied strings, the same ones for the same seed. */
export function variedStrings(count: number, seed = 20251125): string[] {
  const rand = seededRandom(seed);
  const corpora = loadDocuments(60);
  const textSlice = (): string => {
    const doc = pick(rand, pick(rand, corpora));
    const len = int(rand, 1, 160);
    const start = int(rand, 0, Math.max(0, doc.length - len));
    return doc.slice(start, start + len).join('');
  };
  const whitespaceRun = (): string => {
    let s = '';
    const n = int(rand, 1, 14);
    for (let i = 0; i < n; i++) s += pick(rand, SPACES);
    return s;
  };
  const digits = (): string => {
    const kind = int(rand, 0, 4);
    const n = int(rand, 1, 24);
    let s = '';
    for (let i = 0; i < n; i++) s += String(int(rand, 0, 9));
    if (kind === 1) return `${s.slice(0, 3)}.${s.slice(3)}`;
    if (kind === 2) return Number(s.slice(0, 12)).toLocaleString('en-US');
    if (kind === 3) return [...s].map((d) => String.fromCharCode(0x0660 + Number(d))).join(''); // Arabic-Indic
    if (kind === 4) return [...s].map((d) => String.fromCharCode(0xff10 + Number(d))).join(''); // full width
    return s;
  };
  const piece = (): string => {
    const r = rand();
    if (r < 0.42) {
      const text = textSlice();
      return rand() < 0.08 ? text.normalize('NFD') : text;
    }
    if (r < 0.5) return pick(rand, CODE);
    if (r < 0.58) return pick(rand, EMOJI);
    if (r < 0.67) return whitespaceRun();
    if (r < 0.74) return digits();
    if (r < 0.81) return pick(rand, CONTRACTIONS);
    if (r < 0.88) return pick(rand, SPECIAL);
    return pick(rand, MISC);
  };
  const out: string[] = [];
  while (out.length < count) {
    const n = int(rand, 1, 7);
    let s = '';
    for (let i = 0; i < n; i++) {
      if (i > 0 && rand() < 0.5) s += pick(rand, ['', ' ', ' ', '\n', '  ', '\t', '. ']);
      s += piece();
    }
    out.push(s);
  }
  return out;
}
