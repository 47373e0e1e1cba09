import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { type Command, UserError } from './command.js';
import { refuseExtraArguments, subcommandError } from './subcommand.js';
import { fractionOption, namesOption, positiveNumber, seedOption } from './args.js';
import { checkOutputFolder } from './output-path.js';
import {
  buildTextCorpus,
  type CorpusManifest,
  corpusSources,
  DEBIAN_TEXT_PACKAGES,
  EmptyCorpusError,
  knownCorpusSources,
} from '../train/lm/text-corpus.js';
import { corpusPairs, PAIRS_HELP } from './corpus-pairs.js';
import { helpParagraph } from './option-help.js';
import { counted } from '../io/counted.js';

const HELP = `search-r3 corpus build — assemble the plain-text pretraining corpus

usage: search-r3 corpus build --data <shared/data> --out <dir> [--seed 0] [--valid-fraction 0.01]
                              [--shard-mb 8] [--only name,name] [--quiet]
       search-r3 corpus pairs --out <file.jsonl> [...]   stage-1 pairs from the same Debian packages
                                                         (search-r3 corpus pairs --help)

${helpParagraph(
  'Documents only, never queries: SciFact abstracts, XQuAD/DRCD/ARCD paragraphs, Climate-FEVER evidence ' +
    '(grouped by Wikipedia article), STS-B train sentences, and the dictionaries and manuals of Debian text ' +
    'packages, each under its own free licence, when they are installed (scripts/setup.sh installs them: ' +
    `${DEBIAN_TEXT_PACKAGES.join(' ')}). Deduplicated, split into train/valid by a seeded hash of each document, ` +
    'written as <out>/train-NNNNN.jsonl and valid.jsonl ({"text", "source"}) with manifest.json (sources, ' +
    'licences, attribution, counts, sha256). The folder is written under a temporary name and renamed into place.',
)}

sources (--only):
${helpParagraph(
  knownCorpusSources('')
    .map((s) => s.name)
    .join(', '),
  '  ',
)}`;

/**
 * The corpus folder is written under a temporary name and renamed over --out, replacing what was there:
 * only an empty folder or an earlier corpus may be replaced, never a user's files, so a corpus folder
 * that holds anything corpus build does not write (notes, a tokenizer beside it) is refused as well.
 */
function checkReplaceable(out: string): void {
  if (!existsSync(out)) return; // checkOutputFolder refused a file there
  const entries = readdirSync(out).sort();
  if (entries.length === 0) return;
  const manifest = path.join(out, 'manifest.json');
  if (!isCorpusManifest(manifest)) {
    const why = existsSync(manifest)
      ? 'its manifest.json is not one corpus build writes (not JSON, or without sources, train and totals)'
      : `it holds ${counted(entries.length, 'entry', 'entries')} and no manifest.json`;
    throw new UserError(
      `--out ${out} is not an earlier corpus: ${why}; corpus build replaces the whole folder, so name a new or ` +
        'empty folder, or an earlier corpus.',
    );
  }
  const foreign = entries.find((e) => !isCorpusFile(out, e));
  if (foreign !== undefined)
    throw new UserError(
      `--out ${out} holds ${foreign}, which corpus build does not write; it replaces the whole folder, so ` +
        'move that out first or name a new folder.',
    );
}

/** What corpus build writes into its folder: the manifest, the train shards and valid.jsonl, all files. */
function isCorpusFile(dir: string, name: string): boolean {
  const ours = name === 'manifest.json' || name === 'valid.jsonl' || /^train-\d+\.jsonl$/.test(name);
  return ours && lstatSync(path.join(dir, name)).isFile();
}

function isCorpusManifest(file: string): boolean {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as { sources?: unknown; train?: unknown; totals?: unknown };
    return Array.isArray(m.sources) && Array.isArray(m.train) && typeof m.totals === 'object';
  } catch {
    return false;
  }
}

export const corpusCommand: Command = {
  help: HELP,
  subcommands: ['build', 'pairs'],
  helpOf: (subcommand) => (subcommand === 'pairs' ? PAIRS_HELP : undefined),
  async run(argv) {
    if (argv[0] === 'pairs') return corpusPairs(argv.slice(1));
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        data: { type: 'string' },
        out: { type: 'string' },
        seed: { type: 'string' },
        'valid-fraction': { type: 'string' },
        'shard-mb': { type: 'string' },
        only: { type: 'string' },
        quiet: { type: 'boolean' },
      },
    });
    if (positionals[0] !== 'build') throw subcommandError('corpus', positionals[0], ['build', 'pairs']);
    refuseExtraArguments(positionals);
    if (!values.data || !existsSync(values.data))
      throw new UserError(`--data must name the shared data folder (../shared/data), got ${values.data ?? 'nothing'}.`);
    if (!values.out) throw new UserError('--out is required: the corpus folder to write.');
    checkOutputFolder(values.out, '--out', { replaced: true });
    const seed = seedOption(values.seed) ?? 0;
    const validFraction = fractionOption(values['valid-fraction'], 'valid-fraction') ?? 0.01;
    const shardMb = positiveNumber(values['shard-mb'], 'shard-mb') ?? 8;
    const sources = corpusSources(values.data);
    const available = sources.map((s) => s.name);
    const known = knownCorpusSources(values.data);
    const only = namesOption(values.only, 'only');
    for (const n of only ?? []) {
      if (available.includes(n)) continue;
      const k = known.find((s) => s.name === n);
      if (k?.pkg)
        throw new UserError(`--only ${n}: its Debian package is not installed; apt-get install ${k.pkg} first.`);
      throw new UserError(`--only ${n}: not an available source; known: ${known.map((s) => s.name).join(', ')}.`);
    }
    const chosen = sources.filter((s) => !only || only.includes(s.name));
    for (const s of chosen) {
      const missing = s.paths.map((p) => path.resolve(values.data!, p)).find((p) => !existsSync(p));
      if (missing) {
        throw new UserError(
          `--data ${values.data}: ${s.name} needs ${missing}, which is missing; --data must name the shared data ` +
            `folder (../shared/data), or --only must leave ${s.name} out.`,
        );
      }
    }
    checkReplaceable(values.out);
    const say = values.quiet
      ? undefined
      : (m: string): void => {
          process.stderr.write(`${m}\n`);
        };
    let m: CorpusManifest;
    try {
      m = await buildTextCorpus(
        values.data,
        values.out,
        { seed, validFraction, shardBytes: shardMb * 1e6, ...(only ? { only } : {}) },
        say,
      );
    } catch (e) {
      if (e instanceof EmptyCorpusError) throw new UserError(`corpus build: ${e.message}.`);
      throw e;
    }
    console.log(
      `corpus: ${m.totals.trainDocuments} train documents (${(m.totals.trainBytes / 1e6).toFixed(1)} MB in ` +
        `${counted(m.train.length, 'shard')}), ` +
        `${m.totals.validDocuments} valid (${(m.totals.validBytes / 1e6).toFixed(2)} MB) from ` +
        `${counted(m.sources.length, 'source')}; manifest in ${values.out}/manifest.json`,
    );
    return 0;
  },
};
