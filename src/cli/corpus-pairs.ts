/** `search-r3 corpus pairs`: stage-1 pairs from the Debian text packages (train/sft/debian-pairs.ts). */
import { existsSync, statSync } from 'node:fs';
import { parseArgs } from './parse-options.js';
import { UserError } from './command.js';
import { namesOption, nonNegativeInt, seedOption } from './args.js';
import { checkOutputFile } from './output-path.js';
import { helpParagraph } from './option-help.js';
import {
  buildDebianPairs,
  DEFAULT_PAIRS_SAMPLE,
  MissingPackagesError,
  NoPairsError,
  pairSources,
  pairsManifestPath,
} from '../train/sft/debian-pairs.js';

const names = (kind: 'term' | 'heading'): string =>
  pairSources(kind)
    .map((s) => `${s.name} (${s.pkg})`)
    .join(', ');

export const PAIRS_HELP = `search-r3 corpus pairs — stage-1 pairs from the Debian text packages

usage: search-r3 corpus pairs --out <file.jsonl> [--max-terms ${DEFAULT_PAIRS_SAMPLE.maxTerms}] \
[--max-headings ${DEFAULT_PAIRS_SAMPLE.maxHeadings}] [--seed 0]
                              [--only name,name] [--quiet]

Two kinds of query → positive pairs, from the packages the pretraining corpus reads:
  term → definition: a dictionary's headword asks for its definition, without the headword, pronunciation
    and etymology that begin the entry; a headword's senses (up to 3, from every dictionary that has it)
    are the positives of one example, so that no sense is a negative of its own word.
${helpParagraph(`From: ${names('term')}.`, '    ')}
  heading → section: a manual's section heading (its number removed) asks for the text under it. Generic
    headings ("Description", "See also", "NAME", ...) and headings that head more than one text are left out.
${helpParagraph(`From: ${names('heading')}.`, '    ')}
Positives are cut to 600 characters at a sentence end. A seeded sample of each kind is kept.

Writes <file.jsonl> in the FlagEmbedding form {"query", "pos", "neg"} that a stage-1 "jsonl" source reads,
and <file>.manifest.json beside it: each package's licence, attribution and version, and how many pairs
it gave; the model card lists them. Both are written under a temporary name and renamed into place, the
file first; a manifest that does not describe the file beside it (its size and sha256: a run killed between
the two renames) is not read. Every package must be installed (bash scripts/setup.sh installs them).

options:
  --out <file>        the pairs file to write (.jsonl; its folder is created if missing)
  --max-terms <n>     term → definition examples kept (default ${DEFAULT_PAIRS_SAMPLE.maxTerms})
  --max-headings <n>  heading → section examples kept (default ${DEFAULT_PAIRS_SAMPLE.maxHeadings})
  --seed <n>          the sample's seed (default ${DEFAULT_PAIRS_SAMPLE.seed})
  --only <names>      only these sources (comma-separated names from the lists above)
  --quiet             no progress lines
  -h, --help          this help`;

export async function corpusPairs(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    strict: true,
    options: {
      out: { type: 'string' },
      'max-terms': { type: 'string' },
      'max-headings': { type: 'string' },
      seed: { type: 'string' },
      only: { type: 'string' },
      quiet: { type: 'boolean' },
    },
  });
  if (!values.out || !values.out.endsWith('.jsonl'))
    throw new UserError(`--out must name the pairs file to write (<file>.jsonl), got ${values.out ?? 'nothing'}.`);
  checkOutputFile(values.out, '--out');
  const manifest = pairsManifestPath(values.out);
  if (existsSync(manifest) && statSync(manifest).isDirectory())
    throw new UserError(`--out ${values.out}: ${manifest}, where its manifest goes, is a folder; move it first.`);
  const known = [...pairSources('term'), ...pairSources('heading')].map((s) => s.name);
  const only = namesOption(values.only, 'only');
  for (const n of only ?? [])
    if (!known.includes(n)) throw new UserError(`--only ${n}: not a source of pairs; known: ${known.join(', ')}.`);
  const say = values.quiet
    ? undefined
    : (line: string): void => {
        process.stderr.write(`${line}\n`);
      };
  const maxTerms = nonNegativeInt(values['max-terms'], 'max-terms') ?? DEFAULT_PAIRS_SAMPLE.maxTerms,
    maxHeadings = nonNegativeInt(values['max-headings'], 'max-headings') ?? DEFAULT_PAIRS_SAMPLE.maxHeadings;
  const seed = seedOption(values.seed) ?? DEFAULT_PAIRS_SAMPLE.seed;
  if (maxTerms + maxHeadings === 0)
    throw new UserError('--max-terms and --max-headings are both 0: the file would hold no pairs.');
  // --only may choose sources of one kind, whose cap alone then decides whether any pair is kept
  const kinds = (['term', 'heading'] as const).filter((k) =>
    pairSources(k).some((s) => !only || only.includes(s.name)),
  );
  const kind = kinds.length === 1 ? kinds[0]! : undefined;
  if (kind !== undefined && (kind === 'term' ? maxTerms : maxHeadings) === 0)
    throw new UserError(
      `--only ${only!.join(',')} names ${kind} sources only, and --max-${kind}s is 0: the file would hold no pairs.`,
    );
  const started = Date.now();
  try {
    const m = await buildDebianPairs(
      values.out,
      {
        maxTerms,
        maxHeadings,
        seed,
        ...(only ? { only } : {}),
      },
      say,
    );
    console.log(
      `pairs: ${m.kept.term.toLocaleString('en')} term → definition of ${m.available.term.toLocaleString('en')}, ` +
        `${m.kept.heading.toLocaleString('en')} heading → section of ${m.available.heading.toLocaleString('en')} ` +
        `(${(m.file.bytes / 1e6).toFixed(2)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `${values.out}, licences in ${pairsManifestPath(values.out)}`,
    );
  } catch (e) {
    if (e instanceof MissingPackagesError || e instanceof NoPairsError)
      throw new UserError(`corpus pairs: ${e.message}.`);
    throw e;
  }
  return 0;
}
