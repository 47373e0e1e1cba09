/**
 * Stage-1 pairs from the Debian text packages the pretraining corpus reads (debian-text.ts parses them):
 * term → definition from the dictionaries (GCIDE, FOLDOC, WordNet), and section heading → section text from
 * the manuals (Perl's, PostgreSQL's and Python's documentation, the Debian Administrator's Handbook, Debian
 * Policy, the Developer's Reference, the GNU Coding Standards).
 *
 * The pairs are made where the packages are installed and travel as one JSONL file in the FlagEmbedding form
 * ({"query", "pos", "neg"}) that a `jsonl` stage-1 source reads, with a manifest beside it that names every
 * package, its licence and attribution, and how many pairs it gave: the machine that trains has no Debian
 * packages, and what travels there is tightly limited, so a seeded sample of each kind is kept.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomically, writeTextFileAtomically } from '../../io/atomic-file.js';
import { Rng } from '../../tensor/index.js';
import {
  DEBIAN_TEXT_SOURCES,
  type DebianTextSource,
  type HtmlBlock,
  type TextBlock,
  WORDNET_POS,
  cleanDictdText,
  dictdRawEntries,
  htmlBlocks,
  infoParagraphs,
  once,
  packageVersion,
  podBlocks,
  readText,
  textParagraphs,
  wordnetSynsets,
} from '../lm/debian-text.js';
import { splitSentences, wordCount } from './pseudo-queries.js';
import { makeFolder } from '../../io/make-folder.js';

/** A query and its positives: one line of the pairs file (no hard negatives: in-batch ones serve). */
export interface PairExample {
  query: string;
  pos: string[];
}

/** A headword's sense, or a section, as one source gives it. */
interface Found {
  key: string;
  query: string;
  text: string;
  source: string;
}

/**
 * Characters of a positive: stage 1 reads sequences of 256 tokens (about 3.5 characters each in this corpus)
 * with the prompt around the text, so more than this would be cut there anyway and only fill the file.
 */
export const POSITIVE_CHARS = 600;

/**
 * Senses kept per headword. A headword's senses are all right answers for it, so they are its positives in
 * one example (the trainer picks one per batch and never counts the others as its negatives); as separate
 * examples, each would be an in-batch negative of the others. Three keep the line short, and more than
 * three senses of one word would mostly be the rare ones.
 */
export const MAX_SENSES = 3;

/** Fewest words a definition or section text has to be a useful positive ("See Enemy." is not). */
const MIN_WORDS = 4;
const MIN_SECTION_WORDS = 12;

/** `text` cut to at most `chars` characters: after its last whole sentence that fits, else at a space. */
export function cutText(text: string, chars: number = POSITIVE_CHARS): string {
  if (text.length <= chars) return text;
  let out = '';
  for (const s of splitSentences(text)) {
    const next = out === '' ? s : `${out} ${s}`;
    if (next.length > chars) break;
    out = next;
  }
  if (out.length >= chars / 2) return out;
  const space = text.lastIndexOf(' ', chars - 1);
  return `${text.slice(0, space > chars / 2 ? space : chars - 1).trimEnd()}…`;
}

/** A headword worth asking for: letters first, no markup (GCIDE writes accents as ["o]), not a number. */
function isTerm(term: string): boolean {
  return term.length >= 2 && term.length <= 60 && /^\p{L}[\p{L}\p{M}\p{N} '’.\-/+#]*$/u.test(term);
}

/**
 * A GCIDE entry's headword and definition. The first line is the headword, its pronunciation, the part of
 * speech and the start of the etymology ("Enemy \En"e*my\, n.; pl. {Enemies}. [OF. enemi, ..."): the
 * definition is what follows the line, and the rest of the etymology when its bracket is still open.
 */
export function gcideSense(raw: string): { term: string; definition: string } | null {
  const lines = raw.split('\n');
  const head = lines[0];
  const term = (head.includes('\\') ? head.slice(0, head.indexOf('\\')) : head.split(',')[0]).trim();
  let body = lines.slice(1).join('\n');
  const open = head.lastIndexOf('['),
    close = head.lastIndexOf(']');
  if (open > close) {
    const end = body.indexOf(']');
    if (end < 0) return null;
    body = body.slice(end + 1);
  }
  return { term, definition: cleanDictdText(body).replace(/\n/g, ' ').replace(GCIDE_PREAMBLE, '') };
}

/**
 * What some GCIDE entries still have before the definition, on the line after the headword: the
 * pronunciation in parentheses, then the part of speech, then the etymology in brackets ("([e^]d`[-u]*k…),
 * n. [Cf. F. …] Capability of being educated."; accents inside are bracketed too, ['e]), or of a plural
 * that ends its sentence ("(p[a^]r"[.a]*d[o^]ks*[e^]z). [F. paradoxe …] 1. …"). Only with a part of
 * speech or a full stop after it is a parenthesis a pronunciation: "(Zo["o]l.) A group …" is the subject.
 */
const GCIDE_PART_OF_SPEECH = String.raw`(?:(?:n|a|v|adv|prep|conj|interj|pron|p\. ?p|v\. ?[ti]|imp|pl)\.[,;]?\s*)+`;
const GCIDE_PREAMBLE = new RegExp(
  String.raw`^\([^()]*\)(?:,\s*${GCIDE_PART_OF_SPEECH}|\.\s*)(?:\[(?:[^[\]]|\[[^[\]]{1,4}\])*\]\s*)?`,
);

/**
 * A FOLDOC entry's headword (its first paragraph) and definition (the rest), without the subject tags
 * ("<programming, tool>") and the date of the last edit ("(2018-05-22)").
 */
export function foldocSense(raw: string): { term: string; definition: string } | null {
  const blank = raw.search(/\n[ \t]*\n/);
  if (blank < 0) return null;
  const definition = cleanDictdText(raw.slice(blank))
    .split('\n')
    .filter((p) => !/^\(\d{4}-\d{2}-\d{2}\)$/.test(p))
    .join(' ')
    .replace(/(^|\d\.\s|\s)<[^<>\n]{1,60}>\s*/g, '$1')
    .trim();
  return { term: raw.slice(0, blank).trim(), definition };
}

/**
 * Headings that name no topic: a manual has one of each in many places ("Description", "See also", a
 * man page's "NAME"), so as queries they would have many right answers and teach nothing. Headings that
 * still occur with more than one text are dropped as well (distinctSections).
 */
const GENERIC_HEADINGS = new Set([
  'abstract',
  'acknowledgements',
  'acknowledgments',
  'appendix',
  'arguments',
  'author',
  'authors',
  'availability',
  'bugs',
  'caution',
  'caveats',
  'compatibility',
  'contents',
  'copyright',
  'description',
  'details',
  'diagnostics',
  'environment',
  'example',
  'examples',
  'files',
  'footnotes',
  'further reading',
  'glossary',
  'history',
  'important',
  'index',
  'introduction',
  'license',
  'licence',
  'limitations',
  'name',
  'navigation',
  'next topic',
  'note',
  'notes',
  'options',
  'overview',
  'parameters',
  'preface',
  'previous topic',
  'references',
  'return value',
  'return values',
  'see also',
  'summary',
  'synopsis',
  'table of contents',
  'this page',
  'tip',
  'tips',
  'todo',
  'usage',
  'warning',
  'warnings',
]);

/**
 * A heading as a query: its section number ("6.2.", "Chapter 6.", "Kapitel 6.", "第 6 章", "A.1") and trailing marks
 * removed; null when nothing that names a topic is left (a number, a generic heading, a stray link).
 */
export function headingQuery(heading: string): string | null {
  const h = heading
    .replace(/\s+/g, ' ')
    .replace(/[\s¶:#]+$/u, '')
    .replace(
      /^(?:\p{L}+\s+\d+(?:\.\d+)*\.\s+|\d+(?:\.\d+)*\.?\s+|[A-Z](?:\.\d+)+\.?\s+|第\s*\d+\s*[章節节]\.?\s*)/u,
      '',
    )
    .trim();
  if (h.length < 3 || h.length > 120 || !/\p{L}/u.test(h)) return null;
  return GENERIC_HEADINGS.has(h.toLowerCase()) ? null : h;
}

/** Sections of a manual's blocks: each heading with the body blocks up to the next heading of any level. */
export function blockSections(blocks: readonly TextBlock[]): Array<{ heading: string; text: string }> {
  const out: Array<{ heading: string; text: string }> = [];
  let heading: string | null = null,
    body: string[] = [];
  const flush = (): void => {
    if (heading !== null && body.length > 0) out.push({ heading, text: body.join(' ') });
    body = [];
  };
  for (const b of blocks) {
    if (b.heading > 0) {
      flush();
      heading = b.text;
    } else body.push(b.text.replace(/\s+/g, ' '));
  }
  flush();
  return out;
}

/**
 * An HTML page's blocks as sections see them: every heading (one whose text lies all inside links, a
 * sidebar's "Table of Contents", ends the section before it and starts none) and the prose body blocks.
 */
export function htmlSectionBlocks(blocks: readonly HtmlBlock[]): TextBlock[] {
  return blocks
    .filter((b) => b.heading > 0 || b.prose)
    .map((b) => ({ text: b.heading > 0 && b.linkOnly ? '' : b.text, heading: b.heading }));
}

/** A paragraph that is a heading of a plain-text manual: one line underlined with * = - ~ ^ (reST, makeinfo). */
export function underlinedHeading(paragraph: string): string | null {
  const lines = paragraph.split('\n');
  if (lines.length !== 2) return null;
  const [text, rule] = [lines[0].trim(), lines[1].trim()];
  return /^([*=\-~^])\1{2,}$/.test(rule) && rule.length >= text.length / 2 ? text : null;
}

/** Sections of a plain-text manual's paragraphs (textParagraphs, infoParagraphs): underlined headings. */
export function underlinedSections(paragraphs: readonly string[]): Array<{ heading: string; text: string }> {
  return blockSections(
    paragraphs.map((p) => {
      const h = underlinedHeading(p);
      return h !== null ? { text: h, heading: 1 } : { text: p, heading: 0 };
    }),
  );
}

type Extract = (files: readonly string[]) => Iterable<{ query: string; text: string }>;

function* dictdSenses(
  files: readonly string[],
  sense: (raw: string) => { term: string; definition: string } | null,
): Generator<{ query: string; text: string }> {
  for (const raw of dictdRawEntries(readFileSync(files[0], 'utf8'), gunzipSync(readFileSync(files[1])))) {
    const s = sense(raw);
    if (s) yield { query: s.term, text: s.definition };
  }
}

/** Every word of a synset asks for its gloss: "Canis familiaris" and "dog" both mean the domestic dog. */
function* wordnetSenses(files: readonly string[]): Generator<{ query: string; text: string }> {
  for (const f of files) {
    if (!(path.extname(f).slice(1) in WORDNET_POS)) continue;
    for (const s of wordnetSynsets(readFileSync(f, 'utf8'))) for (const w of s.words) yield { query: w, text: s.gloss };
  }
}

function* sectionsOf(
  files: readonly string[],
  sections: (file: string) => Array<{ heading: string; text: string }>,
): Generator<{ query: string; text: string }> {
  for (const f of files) for (const s of sections(f)) yield { query: s.heading, text: s.text };
}

/**
 * What each source gives, by its name in DEBIAN_TEXT_SOURCES (whose file lists are used). The Devil's
 * Dictionary is left out: its definitions are satire, not meanings. Debian Reference's text has no marked
 * headings, and the Jargon File's entries are already in the corpus as prose.
 */
const TERM_SOURCES: Record<string, Extract> = {
  // WordNet first: its lemmas keep their case (proper nouns), and the first source names a merged headword
  'debian-wordnet': wordnetSenses,
  'debian-gcide': (files) => dictdSenses(files, gcideSense),
  'debian-foldoc': (files) => dictdSenses(files, foldocSense),
};

const SECTION_SOURCES: Record<string, Extract> = {
  'debian-perl-doc': (files) => sectionsOf(files, (f) => blockSections(podBlocks(readFileSync(f, 'utf8')))),
  'debian-postgresql-doc': htmlSections,
  // every language the handbook ships, English first: a translation's untranslated paragraphs were seen in
  // English and are left out, so a translated heading heads the text translated with it
  'debian-handbook': htmlSections,
  'debian-python-doc': htmlSections,
  'debian-policy': (files) => sectionsOf(files, (f) => underlinedSections(textParagraphs(readText(f)))),
  'debian-developers-reference': (files) => sectionsOf(files, (f) => underlinedSections(textParagraphs(readText(f)))),
  'debian-gnu-standards': (files) => sectionsOf(files, (f) => underlinedSections(infoParagraphs(readText(f)))),
};

/** A manual's HTML pages as sections; a body paragraph is kept the first time only, as the corpus keeps it. */
function htmlSections(files: readonly string[]): Iterable<{ query: string; text: string }> {
  const seen = new Set<string>();
  const body = (b: TextBlock): string | null => (b.heading > 0 ? null : b.text);
  return sectionsOf(files, (f) =>
    blockSections([...once(htmlSectionBlocks(htmlBlocks(readFileSync(f, 'utf8'))), seen, body)]),
  );
}

export type PairKind = 'term' | 'heading';

/** The Debian sources that give pairs of a kind, in the order they are read. */
export function pairSources(kind: PairKind): DebianTextSource[] {
  const names = Object.keys(kind === 'term' ? TERM_SOURCES : SECTION_SOURCES);
  return names.map((n) => DEBIAN_TEXT_SOURCES.find((s) => s.name === n)!);
}

/** A source's usable senses (headword → definition) or sections (heading → text), each cut to POSITIVE_CHARS. */
function* found(kind: PairKind, source: DebianTextSource, files: readonly string[]): Generator<Found> {
  const extract = (kind === 'term' ? TERM_SOURCES : SECTION_SOURCES)[source.name];
  for (const x of extract(files)) {
    const query = kind === 'term' ? (isTerm(x.query.trim()) ? x.query.trim() : null) : headingQuery(x.query);
    const text = x.text.replace(/\s+/g, ' ').trim();
    if (query === null || wordCount(text) < (kind === 'term' ? MIN_WORDS : MIN_SECTION_WORDS)) continue;
    yield { key: query.toLowerCase(), query, text: cutText(text), source: source.name };
  }
}

/**
 * One example per headword (its key: lower case), its senses the positives: up to MAX_SENSES, taken in
 * turn from each source that defines it (so a word in WordNet and GCIDE gets both dictionaries' views),
 * each in that source's order. The query is the headword as the first source writes it.
 */
export function termExamples(senses: readonly Found[]): Array<PairExample & { sources: string[] }> {
  const byKey = new Map<string, { query: string; bySource: Map<string, string[]> }>();
  for (const s of senses) {
    let e = byKey.get(s.key);
    if (!e) byKey.set(s.key, (e = { query: s.query, bySource: new Map() }));
    let list = e.bySource.get(s.source);
    if (!list) e.bySource.set(s.source, (list = []));
    if (!list.includes(s.text)) list.push(s.text);
  }
  const out: Array<PairExample & { sources: string[] }> = [];
  for (const { query, bySource } of byKey.values()) {
    const pos: string[] = [],
      sources = new Set<string>();
    const lists = [...bySource];
    for (let i = 0; pos.length < MAX_SENSES && lists.some(([, l]) => i < l.length); i++)
      for (const [source, l] of lists)
        if (i < l.length && pos.length < MAX_SENSES && !pos.includes(l[i])) {
          pos.push(l[i]);
          sources.add(source);
        }
    out.push({ query, pos, sources: [...sources] });
  }
  return out;
}

/**
 * One example per heading that names one section: a heading found with one text (a translation that kept
 * the English section repeats it, and counts once) is kept, one found with several texts is ambiguous
 * ("Syntax" of every statement) and dropped, with every section it heads.
 */
export function sectionExamples(sections: readonly Found[]): Array<PairExample & { sources: string[] }> {
  const byKey = new Map<string, { query: string; texts: Set<string>; source: string }>();
  for (const s of sections) {
    const e = byKey.get(s.key);
    if (e) e.texts.add(s.text);
    else byKey.set(s.key, { query: s.query, texts: new Set([s.text]), source: s.source });
  }
  return [...byKey.values()]
    .filter((e) => e.texts.size === 1)
    .map((e) => ({ query: e.query, pos: [...e.texts], sources: [e.source] }));
}

/** The first `n` of a seeded shuffle of `items` (all of them, shuffled, when there are fewer). */
export function seededSample<T>(items: readonly T[], n: number, seed: number): T[] {
  return new Rng(seed).shuffle([...items]).slice(0, n);
}

/**
 * The sample the recipe's gpu profile keeps (and the CLI's defaults): about a third of its stage-1 examples
 * (27.7 k in all), ≈ 0.89 MB with xz -9, inside the ≈ 1 MB the transfer to the GPU machine leaves for them
 * (docs/default-model-v2.md).
 */
export const DEFAULT_PAIRS_SAMPLE = { maxTerms: 6000, maxHeadings: 3000, seed: 0 } as const;

export interface PairsOptions {
  /** Term → definition examples kept at most. */
  maxTerms: number;
  /** Heading → section examples kept at most. */
  maxHeadings: number;
  seed: number;
  /** Where Debian's files are looked for (default '/'; a test points it at a folder of fixtures). */
  debianRoot?: string;
  /** Only these sources (names in DEBIAN_TEXT_SOURCES); default every source that gives pairs. */
  only?: readonly string[];
}

export interface PairsManifestSource {
  name: string;
  pkg: string;
  kind: PairKind;
  licence: string;
  /** With the installed package's version. */
  attribution: string;
  /** Examples this source contributes to before sampling, and in the file. */
  available: number;
  kept: number;
}

export interface PairsManifest {
  schema: typeof PAIRS_MANIFEST_SCHEMA;
  seed: number;
  maxTerms: number;
  maxHeadings: number;
  available: Record<PairKind, number>;
  kept: Record<PairKind, number>;
  sources: PairsManifestSource[];
  /** The pairs file: its name (beside the manifest), bytes and sha256. */
  file: { name: string; bytes: number; sha256: string };
}

export const PAIRS_MANIFEST_SCHEMA = 'search-r3/debian-pairs@1';

/** The manifest written beside a pairs file: pairs.jsonl → pairs.manifest.json. */
export function pairsManifestPath(file: string): string {
  return path.join(path.dirname(file), `${path.basename(file).replace(/\.jsonl$/, '')}.manifest.json`);
}

/** The Debian packages a pairs build needs that are not installed: one sentence says which, and how to install. */
export class MissingPackagesError extends Error {
  constructor(readonly packages: readonly string[]) {
    super(
      `the Debian package${packages.length > 1 ? 's' : ''} ${packages.join(', ')} ` +
        `${packages.length > 1 ? 'are' : 'is'} not installed; run bash scripts/setup.sh (it installs them) first`,
    );
    this.name = 'MissingPackagesError';
  }
}

/** The chosen sources gave no pair to keep: an empty pairs file would train nothing, so none is written. */
export class NoPairsError extends Error {
  constructor(sources: readonly string[], available: Record<PairKind, number>) {
    super(
      `${sources.join(', ')} gave no pairs (${available.term} term → definition, ${available.heading} heading → ` +
        'section examples found, before the caps); choose other sources with --only, or raise the caps',
    );
    this.name = 'NoPairsError';
  }
}

/**
 * Builds the pairs file `out` and its manifest (pairsManifestPath(out)), both written under a temporary
 * name before either is renamed into place, the pairs file first: a failed write changes neither, and a
 * manifest is never there without the file it describes.
 * Every source it reads must be installed: a sample of a smaller pool would be another sample.
 */
export async function buildDebianPairs(
  out: string,
  o: PairsOptions,
  say?: (line: string) => void,
): Promise<PairsManifest> {
  const root = o.debianRoot ?? '/';
  const kinds: PairKind[] = ['term', 'heading'];
  const wanted = kinds.flatMap((kind) =>
    pairSources(kind)
      .filter((s) => !o.only || o.only.includes(s.name))
      .map((source) => ({ kind, source, files: source.files(root) })),
  );
  const missing = wanted.filter((w) => w.files.length === 0).map((w) => w.source.pkg);
  if (missing.length > 0) throw new MissingPackagesError(missing);

  const manifest: PairsManifest = {
    schema: PAIRS_MANIFEST_SCHEMA,
    seed: o.seed,
    maxTerms: o.maxTerms,
    maxHeadings: o.maxHeadings,
    available: { term: 0, heading: 0 },
    kept: { term: 0, heading: 0 },
    sources: [],
    file: { name: path.basename(out), bytes: 0, sha256: '' },
  };
  const lines: string[] = [];
  for (const kind of kinds) {
    const all: Found[] = [];
    for (const w of wanted.filter((x) => x.kind === kind)) {
      const before = all.length;
      for (const f of found(kind, w.source, w.files)) all.push(f);
      say?.(
        `${w.source.name}: ${(all.length - before).toLocaleString('en')} ${kind === 'term' ? 'senses' : 'sections'}`,
      );
    }
    const examples = kind === 'term' ? termExamples(all) : sectionExamples(all);
    const kept = seededSample(examples, kind === 'term' ? o.maxTerms : o.maxHeadings, o.seed);
    manifest.available[kind] = examples.length;
    manifest.kept[kind] = kept.length;
    for (const w of wanted.filter((x) => x.kind === kind)) {
      const version = packageVersion(root, w.source.pkg);
      const count = (xs: typeof examples): number => xs.filter((e) => e.sources.includes(w.source.name)).length;
      manifest.sources.push({
        name: w.source.name,
        pkg: w.source.pkg,
        kind,
        licence: w.source.licence,
        attribution: version ? `${w.source.attribution}, version ${version}` : w.source.attribution,
        available: count(examples),
        kept: count(kept),
      });
    }
    say?.(`${kind} pairs: ${kept.length.toLocaleString('en')} kept of ${examples.length.toLocaleString('en')}`);
    for (const e of kept) lines.push(JSON.stringify({ query: e.query, pos: e.pos, neg: [] }) + '\n');
  }
  if (lines.length === 0) throw new NoPairsError([...new Set(wanted.map((w) => w.source.name))], manifest.available);
  const text = lines.join('');
  manifest.file.bytes = Buffer.byteLength(text);
  manifest.file.sha256 = createHash('sha256').update(text).digest('hex');
  await makeFolder(path.dirname(out));
  // the manifest's temporary file is written first and renamed only once the pairs file is in place, so a
  // failure (a full disk, --out a folder) leaves no manifest describing a file that was never written
  await writeFileAtomically(pairsManifestPath(out), async (tmp) => {
    await fsp.writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n');
    await writeTextFileAtomically(out, text);
  });
  return manifest;
}

/**
 * A pairs manifest, or null when `file` has none beside it (any other JSONL file of pairs), it is not one, or
 * it describes another file: the two are renamed into place one after the other, so a build killed between
 * the renames leaves a new file beside the manifest of the old one, whose sources and licences are not its own.
 */
export function readPairsManifest(file: string): PairsManifest | null {
  let m: Partial<PairsManifest>;
  let text: Buffer;
  try {
    m = JSON.parse(readFileSync(pairsManifestPath(file), 'utf8')) as Partial<PairsManifest>;
    text = readFileSync(file);
  } catch {
    return null;
  }
  if (m.schema !== PAIRS_MANIFEST_SCHEMA || !Array.isArray(m.sources)) return null;
  const sha256 = createHash('sha256').update(text).digest('hex');
  return m.file?.bytes === text.length && m.file.sha256 === sha256 ? (m as PairsManifest) : null;
}
