/**
 * The plain-text pretraining corpus for the project's own default model: documents (never queries)
 * from ../shared/data and public text that Debian packages install, each source with its licence and
 * attribution; deduplicated, split into train/valid by a seeded hash of each document (so the split
 * and the order depend only on the text and the seed), and written as JSONL shards ({"text","source"})
 * with a manifest of sources, licences, document and byte counts, and each file's sha256.
 *
 * Left out on purpose: every query file (SciFact/NFCorpus test queries above all: they are the
 * evaluation), Climate-FEVER's claims (its queries), STS-B's dev and test sentences (an evaluation),
 * and NFCorpus, whose only text here is preprocessed (lowercased, stop words and punctuation removed),
 * which would teach a language model broken English.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { documentText, streamBeirCorpus } from '../../eval/beir.js';
import { writeDirAtomically } from '../../io/atomic-file.js';
import { DataError } from '../sft/data.js';
import { DEBIAN_TEXT_PACKAGES, DEBIAN_TEXT_SOURCES, packageVersion } from './debian-text.js';

export interface CorpusSource {
  name: string;
  /** Licence of the text, as its README or Debian copyright file states it. */
  licence: string;
  attribution: string;
  /** Files read (relative to the data folder, or absolute for Debian files). */
  paths: string[];
  /** Yields the source's documents. */
  documents(): AsyncGenerator<string>;
}

const XQUAD_LANGS = ['ar', 'de', 'el', 'en', 'es', 'hi', 'ro', 'ru', 'th', 'tr', 'vi', 'zh'];
const STSB_LANGS = ['de', 'en', 'es', 'fr', 'it', 'ja', 'nl', 'pl', 'pt', 'ru', 'zh'];

/** Line `n` of `file`, which must be a JSON object (`want` says what one holds); a DataError naming both if not. */
function jsonObjectLine(line: string, file: string, n: number, want: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    v = undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new DataError(file, `not a JSON object (a cut or damaged file?); each line is ${want}`, n);
  return v as Record<string, unknown>;
}

/** The documents of BEIR corpus files as text (title, a newline, body), read as eval reads a corpus. */
async function* beirCorpus(files: string[]): AsyncGenerator<string> {
  for (const f of files) {
    for await (const d of streamBeirCorpus(f)) {
      const text = documentText(d).trim();
      if (text !== '') yield text;
    }
  }
}

/** One CSV record's fields (RFC 4180 quoting: "a ""b"", c" is one field). */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) {
          v += line.slice(i);
          i = line.length;
          break;
        }
        v += line.slice(i, q);
        if (line[q + 1] === '"') {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(v);
      i++; // the comma
    } else {
      const c = line.indexOf(',', i);
      const end = c < 0 ? line.length : c;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

/** Short texts (sentences) grouped into documents of about `chars` characters, one per line, in their order. */
function* groupLines(lines: Iterable<string>, chars: number): Generator<string> {
  let doc: string[] = [],
    size = 0;
  for (const l of lines) {
    doc.push(l);
    size += l.length + 1;
    if (size >= chars) {
      yield doc.join('\n');
      doc = [];
      size = 0;
    }
  }
  if (doc.length > 0) yield doc.join('\n');
}

/**
 * The corpus sources: those under `dataDir` (../shared/data) and Debian's, where their packages are
 * installed under `debianRoot` (the file system's root; a test points it at a folder of fixtures).
 */
export function corpusSources(dataDir: string, debianRoot = '/'): CorpusSource[] {
  const sources = sharedDataSources(dataDir);
  for (const d of DEBIAN_TEXT_SOURCES) {
    const files = d.files(debianRoot);
    if (files.length === 0) continue;
    const version = packageVersion(debianRoot, d.pkg);
    sources.push({
      name: d.name,
      licence: d.licence,
      attribution: version ? `${d.attribution}, version ${version}` : d.attribution,
      paths: files,
      documents: () => d.documents(files),
    });
  }
  return sources;
}

/** Every source name corpusSources() can give, with the Debian package a Debian source needs. */
export function knownCorpusSources(dataDir: string): Array<{ name: string; pkg?: string }> {
  return [
    ...sharedDataSources(dataDir).map((s) => ({ name: s.name })),
    ...DEBIAN_TEXT_SOURCES.map((s) => ({ name: s.name, pkg: s.pkg })),
  ];
}

export { DEBIAN_TEXT_PACKAGES };

function sharedDataSources(dataDir: string): CorpusSource[] {
  const at = (p: string): string => path.join(dataDir, p);
  return [
    {
      name: 'scifact-corpus',
      licence: 'CC BY-NC 2.0 (non-commercial)',
      attribution: 'SciFact, Wadden et al. 2020, AllenAI (BEIR corpus: abstracts)',
      paths: ['scifact/corpus.jsonl'],
      documents: () => beirCorpus([at('scifact/corpus.jsonl')]),
    },
    {
      name: 'xquad-paragraphs',
      licence: 'CC BY-SA 4.0',
      attribution: 'XQuAD, Artetxe et al. 2020, Google DeepMind (SQuAD v1.1 paragraphs in 12 languages)',
      paths: XQUAD_LANGS.map((l) => `xquad/beir/${l}/corpus.jsonl`),
      documents: () => beirCorpus(XQUAD_LANGS.map((l) => at(`xquad/beir/${l}/corpus.jsonl`))),
    },
    {
      name: 'drcd-paragraphs',
      licence: 'CC BY-SA 3.0',
      attribution: 'DRCD, Delta Research Center (Traditional Chinese Wikipedia paragraphs)',
      paths: ['drcd/beir/dev/corpus.jsonl', 'drcd/beir/test/corpus.jsonl'],
      documents: () => beirCorpus([at('drcd/beir/dev/corpus.jsonl'), at('drcd/beir/test/corpus.jsonl')]),
    },
    {
      name: 'arcd-paragraphs',
      licence: 'CC BY-SA (Arabic Wikipedia text); dataset repository MIT',
      attribution: 'ARCD, Mozannar et al. 2019 (Arabic Wikipedia paragraphs)',
      paths: ['arcd/beir/train/corpus.jsonl', 'arcd/beir/test/corpus.jsonl'],
      documents: () => beirCorpus([at('arcd/beir/train/corpus.jsonl'), at('arcd/beir/test/corpus.jsonl')]),
    },
    {
      name: 'climate-fever-evidence',
      licence: 'CC BY-SA (English Wikipedia sentences); dataset repository states none',
      attribution:
        'CLIMATE-FEVER, Diggelmann et al. 2020 (evidence sentences, grouped by Wikipedia article; claims left out)',
      paths: ['climate-fever/climate-fever.jsonl'],
      async *documents() {
        const byArticle = new Map<string, Set<string>>();
        const file = at('climate-fever/climate-fever.jsonl');
        const want = '{"claim", "evidences": [{"article", "evidence"}, ...]}';
        const isEvidence = (e: { article?: unknown; evidence?: unknown } | null): boolean =>
          typeof e?.article === 'string' && typeof e.evidence === 'string';
        for (const [i, line] of readFileSync(file, 'utf8').split('\n').entries()) {
          if (line.trim() === '') continue;
          const ev = jsonObjectLine(line, file, i + 1, want).evidences;
          if (!Array.isArray(ev) || !ev.every(isEvidence))
            throw new DataError(
              file,
              `"evidences" is not a list of {"article", "evidence"} strings; each line is ${want}`,
              i + 1,
            );
          for (const e of ev as { article: string; evidence: string }[]) {
            let s = byArticle.get(e.article);
            if (!s) byArticle.set(e.article, (s = new Set()));
            s.add(e.evidence.trim());
          }
        }
        for (const [article, sentences] of [...byArticle].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
          yield `${article}\n${[...sentences].join(' ')}`;
        }
      },
    },
    {
      name: 'stsb-train-sentences',
      licence:
        "STS Benchmark sources' terms (MSR paraphrase/video, SNLI CC BY-SA 4.0, StackExchange CC BY-SA 3.0, " +
        '...); translations stsb-multi-mt',
      attribution:
        'STS Benchmark (Cer et al. 2017), machine-translated by PhilipMay/stsb-multi-mt; train split only, ' +
        'unique sentences, 11 languages',
      paths: STSB_LANGS.map((l) => `stsb-multi-mt/stsb-${l}-train.csv`),
      async *documents() {
        for (const l of STSB_LANGS) {
          const seen = new Set<string>();
          for (const line of readFileSync(at(`stsb-multi-mt/stsb-${l}-train.csv`), 'utf8').split('\n')) {
            if (line.trim() === '') continue;
            const f = parseCsvLine(line);
            for (const s of f.slice(0, 2)) if (s.trim() !== '') seen.add(s.trim());
          }
          yield* groupLines(seen, 2000);
        }
      },
    },
  ];
}

export interface CorpusOptions {
  seed: number;
  /** Fraction of documents in the validation split (by a seeded hash, so stable). */
  validFraction: number;
  /** Approximate bytes per training shard. */
  shardBytes: number;
  /** Only these sources (by name); default all available. */
  only?: string[];
  /** Where Debian's files are looked for (default '/'). */
  debianRoot?: string;
}

export interface CorpusFileEntry {
  file: string;
  documents: number;
  bytes: number;
  sha256: string;
}
export interface CorpusManifest {
  seed: number;
  validFraction: number;
  sources: Array<{
    name: string;
    licence: string;
    attribution: string;
    paths: string[];
    documents: number;
    bytes: number;
    duplicates: number;
  }>;
  excluded: string[];
  train: CorpusFileEntry[];
  valid: CorpusFileEntry[];
  totals: { trainDocuments: number; trainBytes: number; validDocuments: number; validBytes: number };
}

const EXCLUDED = [
  'every queries.jsonl (SciFact and NFCorpus test queries above all: they are the evaluation)',
  'Climate-FEVER claims (its queries)',
  'STS-B dev and test sentences (an evaluation)',
  'NFCorpus documents: only a preprocessed form is available (lowercased, stop words and punctuation removed)',
];

/** The sources chosen gave no document: an empty corpus trains nothing, so none is written. */
export class EmptyCorpusError extends Error {
  constructor(sources: ReadonlyArray<{ name: string; paths: string[] }>) {
    super(
      `${sources.map((s) => `${s.name} (${s.paths.join(', ')})`).join(', ')} gave no documents, so there is no ` +
        'corpus to write; check that the files hold text, or choose other sources with --only',
    );
    this.name = 'EmptyCorpusError';
  }
}

/**
 * Builds the corpus into `outDir` (written as a whole under a temporary name, then renamed): shards
 * train-NNNNN.jsonl, valid.jsonl and manifest.json. Documents are ordered by sha256(seed, text) (a
 * shuffle that depends only on the text) and go to valid when that hash falls below validFraction.
 */
export async function buildTextCorpus(
  dataDir: string,
  outDir: string,
  options: CorpusOptions,
  onSource?: (msg: string) => void,
): Promise<CorpusManifest> {
  const sources = corpusSources(dataDir, options.debianRoot).filter(
    (s) => !options.only || options.only.includes(s.name),
  );
  const seen = new Set<string>();
  const docs: Array<{ key: string; text: string; source: string }> = [];
  const manifest: CorpusManifest = {
    seed: options.seed,
    validFraction: options.validFraction,
    sources: [],
    excluded: EXCLUDED,
    train: [],
    valid: [],
    totals: { trainDocuments: 0, trainBytes: 0, validDocuments: 0, validBytes: 0 },
  };
  for (const s of sources) {
    let documents = 0,
      bytes = 0,
      duplicates = 0;
    for await (const raw of s.documents()) {
      const text = raw.normalize('NFC');
      const h = createHash('sha256').update(text).digest('hex');
      if (seen.has(h)) {
        duplicates++;
        continue;
      }
      seen.add(h);
      docs.push({ key: createHash('sha256').update(`${options.seed}\n${text}`).digest('hex'), text, source: s.name });
      documents++;
      bytes += Buffer.byteLength(text);
    }
    manifest.sources.push({
      name: s.name,
      licence: s.licence,
      attribution: s.attribution,
      paths: s.paths,
      documents,
      bytes,
      duplicates,
    });
    onSource?.(`${s.name}: ${documents} documents, ${(bytes / 1e6).toFixed(2)} MB (${duplicates} duplicates dropped)`);
  }
  if (docs.length === 0) throw new EmptyCorpusError(manifest.sources);
  docs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const threshold = Math.floor(options.validFraction * 2 ** 32);
  const isValid = (key: string): boolean => parseInt(key.slice(0, 8), 16) < threshold;

  await writeDirAtomically(outDir, async (tmp) => {
    const write = async (name: string, lines: string[], count: number): Promise<CorpusFileEntry> => {
      const text = lines.join('');
      await fsp.writeFile(path.join(tmp, name), text);
      return {
        file: name,
        documents: count,
        bytes: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
      };
    };
    const valid: string[] = [];
    let shard: string[] = [],
      shardSize = 0;
    for (const d of docs) {
      const line = JSON.stringify({ text: d.text, source: d.source }) + '\n';
      if (isValid(d.key)) {
        valid.push(line);
        manifest.totals.validDocuments++;
        manifest.totals.validBytes += Buffer.byteLength(d.text);
        continue;
      }
      shard.push(line);
      shardSize += Buffer.byteLength(line);
      manifest.totals.trainDocuments++;
      manifest.totals.trainBytes += Buffer.byteLength(d.text);
      if (shardSize >= options.shardBytes) {
        manifest.train.push(
          await write(`train-${String(manifest.train.length).padStart(5, '0')}.jsonl`, shard, shard.length),
        );
        shard = [];
        shardSize = 0;
      }
    }
    if (shard.length > 0)
      manifest.train.push(
        await write(`train-${String(manifest.train.length).padStart(5, '0')}.jsonl`, shard, shard.length),
      );
    manifest.valid.push(await write('valid.jsonl', valid, valid.length));
    await fsp.writeFile(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  });
  return manifest;
}
