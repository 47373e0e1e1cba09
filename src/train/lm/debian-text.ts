/**
 * Pretraining text that Debian packages install: dictionaries (GCIDE, FOLDOC, The Devil's Dictionary,
 * WordNet), manuals (the Perl documentation, PostgreSQL's, Python's, the Debian Administrator's Handbook
 * in every language it ships, Debian Policy, the Developer's Reference, the GNU Coding Standards) and the
 * two texts the first default model used (the Jargon File, Debian Reference). Each is turned into plain
 * prose: markup and code blocks go (code would spend the tokenizer's merges on syntax that queries and
 * documents never contain), each file is read once, and documents are yielded as they are made.
 *
 * Every source names its package, its licence as the package's copyright file states it, and an
 * attribution; corpus-build copies them into manifest.json and the recipe into the model card.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface DebianTextSource {
  name: string;
  /** The Debian package that installs the text. */
  pkg: string;
  licence: string;
  attribution: string;
  /** The files read, under `root` (empty when the package is not installed). */
  files(root: string): string[];
  documents(files: readonly string[]): AsyncGenerator<string>;
}

/** Characters per document: paragraphs (or entries) are packed up to about this size, never split. */
export const DOCUMENT_CHARS = 3000;

/** A file's bytes as text; .gz and dictzip's .dz are gzip streams. */
export function readText(file: string): string {
  const raw = readFileSync(file);
  return (/\.(gz|dz)$/.test(file) ? gunzipSync(raw) : raw).toString('utf8');
}

/** Files under `dir` (recursively) whose path relative to it matches `keep`, sorted, so the order is stable. */
export function listFiles(dir: string, keep: (rel: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && keep(path.relative(dir, p))) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** The first existing folder among `root`/pattern with one `*` in its last component (e.g. python3.*), newest first. */
function versioned(root: string, parent: string, prefix: RegExp, rest: string): string | null {
  const base = path.join(root, parent);
  if (!existsSync(base)) return null;
  const names = readdirSync(base)
    .filter((n) => prefix.test(n))
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  for (const n of names) {
    const p = path.join(base, n, rest);
    if (existsSync(p) && statSync(p).isDirectory()) return p;
  }
  return null;
}

/** Paragraphs (or entries) packed into documents of about `chars` characters, in their order. */
export function* packParagraphs(paragraphs: Iterable<string>, chars = DOCUMENT_CHARS): Generator<string> {
  let doc: string[] = [],
    size = 0;
  for (const p of paragraphs) {
    doc.push(p);
    size += p.length + 2;
    if (size >= chars) {
      yield doc.join('\n\n');
      doc = [];
      size = 0;
    }
  }
  if (doc.length > 0) yield doc.join('\n\n');
}

/** Paragraphs of a plain text: blocks between blank lines, trailing space removed. */
export function textParagraphs(text: string): string[] {
  return text
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n+/)
    .map((p) => p.replace(/\s+$/, ''))
    .filter((p) => p.trim() !== '');
}

/**
 * Paragraphs seen once: manuals repeat their navigation and boilerplate on every page, and a translation
 * keeps the paragraphs nobody translated in the original language. Both are dropped after the first time.
 * `text` says what of an item is compared; an item for which it gives null (a heading) is always kept.
 */
export function* once<T = string>(
  items: Iterable<T>,
  seen: Set<string>,
  text: (item: T) => string | null = String,
): Generator<T> {
  for (const item of items) {
    const p = text(item);
    if (p !== null) {
      if (seen.has(p)) continue;
      seen.add(p);
    }
    yield item;
  }
}

// ---- dictd dictionaries (dict-gcide, dict-foldoc, dict-devil) ----

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** dictd's index numbers: base 64, most significant digit first. */
export function dictdNumber(s: string): number {
  let v = 0;
  for (const c of s) {
    const d = B64.indexOf(c);
    if (d < 0) throw new Error(`'${s}' is not a dictd base-64 number`);
    v = v * 64 + d;
  }
  return v;
}

/**
 * The raw text of each entry of a dictd dictionary, in file order, each once (several headwords can point
 * at one entry), the 00-database-* entries (the dictionary's own header) left out.
 */
export function dictdRawEntries(index: string, dict: Buffer): string[] {
  const spans = new Map<number, number>();
  for (const line of index.split('\n')) {
    const f = line.split('\t');
    if (f.length < 3 || f[0].startsWith('00-database-') || f[0].startsWith('00database')) continue;
    spans.set(dictdNumber(f[1]), dictdNumber(f[2]));
  }
  return [...spans]
    .sort((a, b) => a[0] - b[0])
    .map(([offset, length]) => dict.subarray(offset, offset + length).toString('utf8'));
}

/**
 * Dictionary text as prose: pronunciations and cross-reference braces removed, source tags such as
 * "[1913 Webster]" on their own lines dropped, lines of a paragraph joined; paragraphs one a line.
 */
export function cleanDictdText(raw: string): string {
  // GCIDE's pronunciations (\En"e*my\) are markup, not words
  const text = raw.replace(/[ \t]*\\[^\\\n]{1,80}\\/g, '');
  return textParagraphs(text.replace(/[{}]/g, ''))
    .map((p) =>
      p
        .split('\n')
        .filter((l) => !/^\s*\[[^\]]*\]\s*$/.test(l))
        .map((l) => l.trim())
        .join(' ')
        .replace(/\s+/g, ' ')
        .trim(),
    )
    .filter((p) => p !== '')
    .join('\n');
}

/** Entries of a dictd dictionary (dictdRawEntries), cleaned (cleanDictdText); empty ones left out. */
export function dictdEntries(index: string, dict: Buffer): string[] {
  return dictdRawEntries(index, dict)
    .map(cleanDictdText)
    .filter((e) => e !== '');
}

function dictdSource(
  name: string,
  pkg: string,
  dictName: string,
  licence: string,
  attribution: string,
): DebianTextSource {
  return {
    name,
    pkg,
    licence,
    attribution,
    files: (root) => {
      const index = path.join(root, 'usr/share/dictd', `${dictName}.index`);
      const dict = path.join(root, 'usr/share/dictd', `${dictName}.dict.dz`);
      return existsSync(index) && existsSync(dict) ? [index, dict] : [];
    },
    async *documents(files) {
      const dict = gunzipSync(readFileSync(files[1]));
      yield* packParagraphs(dictdEntries(readFileSync(files[0], 'utf8'), dict));
    },
  };
}

// ---- WordNet (wordnet-base) ----

export const WORDNET_POS: Record<string, string> = { noun: 'noun', verb: 'verb', adj: 'adjective', adv: 'adverb' };

export interface WordnetSynset {
  /** Its words (lemmas) in the file's order, underscores as spaces, adjective markers such as (a) removed. */
  words: string[];
  gloss: string;
}

/**
 * The synsets of a WordNet data.<pos> file, in file order. The licence header (lines that begin with
 * spaces) is not text of the database.
 */
export function wordnetSynsets(data: string): WordnetSynset[] {
  const out: WordnetSynset[] = [];
  for (const line of data.split('\n')) {
    if (line === '' || line.startsWith(' ')) continue;
    const bar = line.indexOf(' | ');
    if (bar < 0) continue;
    const head = line.slice(0, bar).split(' ');
    const count = parseInt(head[3], 16);
    const words: string[] = [];
    for (let i = 0; i < count; i++) {
      const w = head[4 + 2 * i];
      if (w) words.push(w.replace(/\([a-z]+\)$/, '').replace(/_/g, ' '));
    }
    const gloss = line.slice(bar + 3).trim();
    if (words.length > 0 && gloss !== '') out.push({ words, gloss });
  }
  return out;
}

/**
 * One line per synset of a WordNet data.<pos> file: its words, the part of speech, the gloss
 * ("dog, domestic dog, Canis familiaris (noun): a member of the genus Canis ...").
 */
export function wordnetGlosses(data: string, pos: string): string[] {
  return wordnetSynsets(data).map((s) => `${s.words.join(', ')} (${pos}): ${s.gloss}`);
}

// ---- POD (perl-doc) ----

const POD_ENTITIES: Record<string, string> = { lt: '<', gt: '>', verbar: '|', sol: '/', quot: '"', amp: '&' };

/** POD formatting codes (B<>, C<< >>, L<text|target>, E<lt>, X<>, ...) replaced by the text they show. */
export function podInline(s: string): string {
  const code = (c: string, body: string): string => {
    switch (c) {
      case 'X':
      case 'Z':
        return '';
      case 'E': {
        if (/^\d+$/.test(body)) return String.fromCodePoint(Number(body));
        if (/^0x[0-9a-f]+$/i.test(body)) return String.fromCodePoint(parseInt(body, 16));
        return POD_ENTITIES[body] ?? htmlEntity(body) ?? body;
      }
      case 'L': {
        const bar = body.indexOf('|');
        if (bar >= 0) return body.slice(0, bar);
        const m = /^(.*?)\/"?(.*?)"?$/.exec(body);
        if (m) return m[1] !== '' ? `${m[2]} in ${m[1]}` : m[2];
        return body;
      }
      default:
        return body;
    }
  };
  let prev = '';
  // C<< a->b >> first (its body may hold < and >), then the innermost single-bracket codes, until none is left
  for (let i = 0; i < 20 && prev !== s; i++) {
    prev = s;
    for (let n = 4; n >= 2; n--)
      s = s.replace(new RegExp(`([A-Z])<{${n}}\\s+([\\s\\S]*?)\\s+>{${n}}`, 'g'), (_, c: string, body: string) =>
        code(c, body),
      );
    s = s.replace(/([A-Z])<([^<>]*)>/g, (_, c: string, body: string) => code(c, body));
  }
  return s;
}

/** A block of a manual's text: a heading (its level, =head2 or <h2> being 2) or body text (level 0). */
export interface TextBlock {
  text: string;
  heading: number;
}

/**
 * The prose blocks of a POD document: headings (=headN), items and ordinary paragraphs (lines joined,
 * formatting codes resolved); verbatim (code) paragraphs, =begin/=end and =for blocks, and other commands
 * left out.
 */
export function podBlocks(src: string): TextBlock[] {
  const out: TextBlock[] = [];
  let inBlock = false,
    inPod = true;
  for (const para of src.replace(/\r\n/g, '\n').split(/\n[ \t]*\n+/)) {
    if (para.trim() === '') continue;
    const cmd = /^=([a-z]+\d?)\s*([\s\S]*)$/.exec(para);
    if (cmd) {
      const [, name, rest] = cmd;
      if (name === 'cut') inPod = false;
      else inPod = true;
      if (name === 'begin') inBlock = true;
      else if (name === 'end') inBlock = false;
      else if (!inBlock && (/^head\d$/.test(name) || name === 'item')) {
        const text = podInline(rest.replace(/^[*]\s*|^\d+\.?\s*/, '').replace(/\s+/g, ' ')).trim();
        if (text !== '') out.push({ text, heading: name === 'item' ? 0 : Number(name.slice(4)) });
      }
      continue;
    }
    if (!inPod || inBlock || /^[ \t]/.test(para)) continue;
    const text = podInline(para.replace(/\s+/g, ' ')).trim();
    if (text !== '') out.push({ text, heading: 0 });
  }
  return out;
}

/** The prose of a POD document (podBlocks' texts), headings and items included. */
export function podParagraphs(src: string): string[] {
  return podBlocks(src).map((b) => b.text);
}

// ---- HTML manuals (postgresql-doc, debian-handbook, python3-doc) ----

const HTML_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  mdash: '—',
  ndash: '–',
  hellip: '…',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  laquo: '«',
  raquo: '»',
  copy: '©',
  reg: '®',
  trade: '™',
  times: '×',
  para: '¶',
  sect: '§',
  deg: '°',
  middot: '·',
  bull: '•',
  rarr: '→',
  larr: '←',
};

function htmlEntity(name: string): string | undefined {
  if (name.startsWith('#x') || name.startsWith('#X')) return String.fromCodePoint(parseInt(name.slice(2), 16));
  if (name.startsWith('#')) return String.fromCodePoint(Number(name.slice(1)));
  return HTML_ENTITIES[name];
}

export function decodeEntities(s: string): string {
  return s.replace(/&(#[xX]?[0-9a-fA-F]+|[a-zA-Z]+);/g, (m, name: string) => htmlEntity(name) ?? m);
}

/** Tags inside a line of text: removed without a space, so that "<b>PostgreSQL</b>'s" stays one word. */
const INLINE_TAGS =
  /<\/?(a|abbr|acronym|b|big|cite|code|em|font|i|kbd|q|samp|small|span|strong|sub|sup|tt|u|var)\b[^>]*>/gi;

function blockText(inner: string): string {
  return decodeEntities(inner.replace(INLINE_TAGS, '').replace(/<[^>]*>/g, ' '))
    .replace(/[\s\u00a0]+/g, ' ')
    .trim();
}

/** Enough words to be prose; CJK text has no spaces between words, so its characters are counted. */
function isProse(text: string): boolean {
  if (text.split(' ').length >= 3) return true;
  return /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u.test(text) && text.length >= 8;
}

/** A block of an HTML page: a heading (<hN>: N) or another block (0), and whether it is prose. */
export interface HtmlBlock extends TextBlock {
  /** Long enough to be prose, and not almost all inside links (contents entries, "Prev"/"Next"). */
  prose: boolean;
  /** All of its text lies inside links (a sidebar's "Table of Contents", a contents entry). */
  linkOnly: boolean;
}

/**
 * The blocks of an HTML page, in order: the text of each paragraph, heading, list item and definition
 * (and DocBook's <div class="para">), tags removed and entities decoded. Scripts, styles, code listings
 * (<pre>), the manuals' navigation bars and the permalink marks of Sphinx headings go.
 */
export function htmlBlocks(html: string): HtmlBlock[] {
  const body = html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|pre|head)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<ul\b[^>]*class="docnav[^"]*"[^>]*>[\s\S]*?<\/ul>/gi, ' ')
    .replace(/<a\b[^>]*class="headerlink"[^>]*>[\s\S]*?<\/a>/gi, ' ');
  const out: HtmlBlock[] = [];
  // DocBook's publican (the handbook) writes its paragraphs as <div class="para">
  const block = new RegExp(
    String.raw`<(p|h[1-6]|li|dt|dd|blockquote|caption)\b[^>]*>([\s\S]*?)<\/\1>` +
      String.raw`|<div\b[^>]*\bclass="para"[^>]*>([\s\S]*?)<\/div>`,
    'gi',
  );
  for (let m = block.exec(body); m; m = block.exec(body)) {
    const inner = m[2] ?? m[3];
    const text = blockText(inner);
    if (text === '') continue;
    const unlinked = blockText(inner.replace(/<a\b[^>]*>[\s\S]*?<\/a>/gi, ' '));
    const heading = m[1] && /^h\d$/i.test(m[1]) ? Number(m[1][1]) : 0;
    out.push({ text, heading, prose: isProse(text) && isProse(unlinked), linkOnly: unlinked === '' });
  }
  return out;
}

/**
 * The prose blocks of an HTML page (htmlBlocks), in order; a block whose text is too short to be prose or
 * lies almost all inside links (contents entries, "Prev"/"Next") is left out.
 */
export function htmlParagraphs(html: string): string[] {
  return htmlBlocks(html)
    .filter((b) => b.prose)
    .map((b) => b.text);
}

function htmlSource(
  name: string,
  pkg: string,
  licence: string,
  attribution: string,
  folders: (root: string) => string[],
  skip: (rel: string) => boolean = () => false,
): DebianTextSource {
  return {
    name,
    pkg,
    licence,
    attribution,
    files: (root) => folders(root).flatMap((d) => listFiles(d, (rel) => rel.endsWith('.html') && !skip(rel))),
    async *documents(files) {
      const seen = new Set<string>();
      // a page's paragraphs stay together in one document run; documents never straddle two pages
      for (const f of files) yield* packParagraphs(once(htmlParagraphs(readFileSync(f, 'utf8')), seen));
    },
  };
}

// ---- plain text and GNU info ----

/** The text of a GNU info file: its nodes without their header lines, menus and the tag table. */
export function infoParagraphs(src: string): string[] {
  const out: string[] = [];
  for (const node of src.split('\x1f')) {
    const body = node.replace(/^\n?File: [^\n]*\n/, '').replace(/^\n+/, '');
    if (/^\s*(Tag Table:|End Tag Table|Local Variables:)/.test(body)) continue;
    for (const p of textParagraphs(body)) {
      if (/^\* Menu:/.test(p) || p.split('\n').every((l) => /^\* .*::|^\s*$/.test(l) || /^\s{10,}\S/.test(l))) continue;
      out.push(p);
    }
  }
  return out;
}

function textSource(
  name: string,
  pkg: string,
  licence: string,
  attribution: string,
  file: string,
  paragraphs: (text: string) => string[] = textParagraphs,
): DebianTextSource {
  return {
    name,
    pkg,
    licence,
    attribution,
    files: (root) => (existsSync(path.join(root, file)) ? [path.join(root, file)] : []),
    async *documents(files) {
      for (const f of files) yield* packParagraphs(paragraphs(readText(f)));
    },
  };
}

// ---- the sources ----

const copyright = (pkg: string): string => `per /usr/share/doc/${pkg}/copyright`;

export const DEBIAN_TEXT_SOURCES: readonly DebianTextSource[] = [
  textSource(
    'debian-jargon-file',
    'jargon-text',
    `public domain (${copyright('jargon-text')})`,
    'The Jargon File 4.4.7, Eric S. Raymond et al. (Debian package jargon-text)',
    'usr/share/doc/jargon-text/jargon.txt.gz',
  ),
  textSource(
    'debian-reference',
    'debian-reference-en',
    `GPL-2+ (${copyright('debian-reference-en')})`,
    'Debian Reference, Osamu Aoki (Debian package debian-reference-en)',
    'usr/share/debian-reference/debian-reference.en.txt.gz',
  ),
  dictdSource(
    'debian-gcide',
    'dict-gcide',
    'gcide',
    `GPL-2+ (${copyright('dict-gcide')})`,
    "GCIDE, the GNU Collaborative International Dictionary of English, from Webster's Revised Unabridged " +
      'Dictionary (1913) and WordNet, edited by Patrick J. Cassidy and volunteers (Debian package dict-gcide)',
  ),
  dictdSource(
    'debian-foldoc',
    'dict-foldoc',
    'foldoc',
    `GFDL 1.1+, no invariant sections (${copyright('dict-foldoc')})`,
    'The Free On-line Dictionary of Computing, https://foldoc.org/, Editor Denis Howe (Debian package dict-foldoc)',
  ),
  dictdSource(
    'debian-devil',
    'dict-devil',
    'devil',
    `public domain (${copyright('dict-devil')})`,
    "The Devil's Dictionary, Ambrose Bierce, 1911 (Debian package dict-devil)",
  ),
  {
    name: 'debian-wordnet',
    pkg: 'wordnet-base',
    licence: `WordNet 3.0 licence (permissive, with attribution; ${copyright('wordnet-base')})`,
    attribution: 'WordNet 3.0, Copyright 2006 by Princeton University (Debian package wordnet-base); synset glosses',
    files: (root) =>
      Object.keys(WORDNET_POS)
        .map((p) => path.join(root, 'usr/share/wordnet', `data.${p}`))
        .filter((f) => existsSync(f)),
    async *documents(files) {
      for (const f of files) {
        const pos = WORDNET_POS[path.extname(f).slice(1)] ?? 'word';
        yield* packParagraphs(wordnetGlosses(readFileSync(f, 'utf8'), pos));
      }
    },
  },
  {
    name: 'debian-perl-doc',
    pkg: 'perl-doc',
    licence: `GPL-1+ or Artistic (${copyright('perl-doc')})`,
    attribution:
      "Perl's documentation (perlfaq, perlop, perlre, ...), Larry Wall and the Perl 5 Porters (Debian perl-doc)",
    files: (root) => {
      const pod = versioned(root, 'usr/share/perl', /^5\.\d+/, 'pod');
      return pod ? listFiles(pod, (rel) => rel.endsWith('.pod')) : [];
    },
    async *documents(files) {
      for (const f of files) yield* packParagraphs(podParagraphs(readFileSync(f, 'utf8')));
    },
  },
  htmlSource(
    'debian-postgresql-doc',
    'postgresql-doc-15',
    'PostgreSQL Licence (BSD-style; per /usr/share/doc/postgresql-doc-*/copyright)',
    'PostgreSQL Documentation, The PostgreSQL Global Development Group (Debian package postgresql-doc-15)',
    (root) => {
      const d = versioned(root, 'usr/share/doc', /^postgresql-doc-\d+$/, 'html');
      return d ? [d] : [];
    },
  ),
  htmlSource(
    'debian-handbook',
    'debian-handbook',
    `GPL-2+ or CC BY-SA 3.0 (${copyright('debian-handbook')})`,
    "The Debian Administrator's Handbook, Raphaël Hertzog and Roland Mas, with its translators: every " +
      'language the package ships, English first, untranslated paragraphs kept once (Debian package debian-handbook)',
    (root) => {
      const base = path.join(root, 'usr/share/doc/debian-handbook/html');
      if (!existsSync(base)) return [];
      const langs = readdirSync(base).filter((l) => statSync(path.join(base, l)).isDirectory());
      // English first, so that a translation's untranslated (English) paragraphs are the repeats dropped
      return langs
        .sort((a, b) => Number(b === 'en-US') - Number(a === 'en-US') || a.localeCompare(b))
        .map((l) => path.join(base, l));
    },
    (rel) => rel.startsWith('Common_Content'),
  ),
  htmlSource(
    'debian-python-doc',
    'python3-doc',
    'PSF License Agreement (per /usr/share/doc/python3.*/html/license.html and /usr/share/doc/python3.*-doc/copyright)',
    'The Python documentation, Python Software Foundation (Debian package python3-doc)',
    (root) => {
      const d = versioned(root, 'usr/share/doc', /^python3\.\d+$/, 'html');
      return d ? [d] : [];
    },
    // the changelog is a list of issue numbers, the indexes lists of names: not prose
    (rel) =>
      /^_(sources|static|downloads|images)\//.test(rel) ||
      /^(genindex|py-modindex|search)/.test(rel) ||
      rel === 'whatsnew/changelog.html',
  ),
  textSource(
    'debian-policy',
    'debian-policy',
    `GPL-2+ (${copyright('debian-policy')})`,
    'Debian Policy Manual, the Debian Policy Editors and many Debian contributors (Debian package debian-policy)',
    'usr/share/doc/debian-policy/policy.txt.gz',
  ),
  textSource(
    'debian-developers-reference',
    'developers-reference',
    `GPL-2 (${copyright('developers-reference')})`,
    "Debian Developer's Reference, Christian Schwarz, Adam Di Carlo and Debian contributors (Debian package " +
      'developers-reference)',
    'usr/share/developers-reference/developers-reference.txt.gz',
  ),
  textSource(
    'debian-gnu-standards',
    'gnu-standards',
    `GFDL 1.3+, no invariant sections (${copyright('gnu-standards')})`,
    'GNU Coding Standards, Richard Stallman and the GNU Project (Debian package gnu-standards)',
    'usr/share/info/standards.info.gz',
    (t) => infoParagraphs(t),
  ),
];

/** Debian packages whose text the corpus reads when they are installed (apt-get install them first). */
export const DEBIAN_TEXT_PACKAGES: readonly string[] = DEBIAN_TEXT_SOURCES.map((s) => s.pkg);

/** The installed version of a package, from dpkg's status file under `root`, or null. */
export function packageVersion(root: string, pkg: string): string | null {
  const status = path.join(root, 'var/lib/dpkg/status');
  if (!existsSync(status)) return null;
  for (const stanza of readFileSync(status, 'utf8').split(/\n\n+/)) {
    if (!new RegExp(`^Package: ${pkg.replace(/[.+]/g, '\\$&')}$`, 'm').test(stanza)) continue;
    if (!/^Status: .* installed$/m.test(stanza)) return null;
    return /^Version: (.+)$/m.exec(stanza)?.[1] ?? null;
  }
  return null;
}
