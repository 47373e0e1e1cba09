import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { type Command, UserError } from './command.js';
import { choiceOption, nonNegativeInt, positiveInt } from './args.js';
import { checkModelFolderOption } from './add-embed-token.js';
import { checkOutputFolder } from './output-path.js';
import { DEVICE_OPTION, deviceHelp, parseDevice, selectDevice } from './device-option.js';
import { evalProgress } from './eval-progress.js';
import { modelHelp, optionHelp } from './option-help.js';
import { DEFAULT_MAX_REASONING_TOKENS } from '../embed/index.js';
import { beirCorpusSource, readBeirSplit } from '../eval/beir.js';
import { Bm25Retriever } from '../eval/bm25-retriever.js';
import { sampleDevQueries } from '../eval/dev-eval.js';
import { evaluateRun } from '../eval/measures.js';
import { ModelRetriever, type ModelRetrieverOptions } from '../eval/model-retriever.js';
import type { Run } from '../eval/run.js';
import type { Qrels } from '../eval/qrels.js';
import { LocalBackend } from '../search-index/embedding-backend.js';
import { chooseFusion, FUSION_GRID, refuseTestSplit, type FusionDevCase } from '../search-index/fusion-choice.js';
import { MODEL_SEARCH_FILE, writeModelFusion } from '../search-index/model-fusion.js';
import { HYBRID_CANDIDATES, RRF_K, describeFusion } from '../search-index/rrf.js';

const REASONING = ['off', 'on', 'both'] as const;
/** Each ranking as deep as `search --hybrid` fuses them (its depth for k ≤ 25). */
const DEPTH = HYBRID_CANDIDATES;
/** The seed of --max-queries' sample: the same queries at every run, so two models are chosen for alike. */
const SAMPLE_SEED = 1;

const HELP = `search-r3 fusion — choose how hybrid search weighs a model against BM25, on dev queries

usage: search-r3 fusion --model <dir> --dev <beir-folder> [--dev <beir-folder> ...] [options]

Hybrid search (search --hybrid, serve, demo) fuses the model's ranking with BM25's by weighted reciprocal
rank: score(d) = w / (k + dense rank) + (1 - w) / (k + BM25 rank), each ranking ${DEPTH} deep. This command
ranks each dev set's queries with BM25 and with the model (reasoning off, on, or both), tries every dense
weight w in 0, 0.1, ..., 1 and k in ${FUSION_GRID.ks.join(', ')}, and keeps the pair with the best mean
nDCG@10 (trec_eval's) over the dev sets and modes; ties go to w nearest 0.5, then k nearest ${RRF_K}. It
stores the pair in the model folder as ${MODEL_SEARCH_FILE}, which hybrid search then uses (a model without
one is fused with plain RRF: both weights 1, k ${RRF_K}). The file changes no vector: indexes built with
the model stay valid. search-r3 recipe default does this for the models it trains.

Choose on queries the model was not trained on, and never on the queries you report: a 'test' split is
refused, since weights fitted to it would overstate the hybrid measured there.

options:
${modelHelp(30, 'the model to choose for; the chosen fusion is written into it')}
${optionHelp(
  [
    ['--dev <beir-folder>', 'a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); repeat for more'],
    ['--split <name>', "the qrels split of every --dev folder (default dev; 'test' is refused)"],
    ['--reasoning off|on|both', 'the query modes chosen for (default both: hybrid search uses one fusion for both)'],
    [
      '--max-reasoning-tokens <n>',
      `the analysis budget with reasoning on (default ${DEFAULT_MAX_REASONING_TOKENS}, as search's)`,
    ],
    ['--max-queries <n>', `a seeded sample of n queries of each dev set (default: all)`],
    ['--max-length <n>', "longest prompt in tokens; longer texts are cut (default: the model's context)"],
    ['--dry-run', `choose and print, without writing ${MODEL_SEARCH_FILE}`],
    ['--json', 'print the result as JSON'],
    ['--quiet', 'no progress on stderr'],
  ],
  30,
)}
${deviceHelp(30)}
  -h, --help                  this help

example:
  search-r3 fusion --model ./my-model --dev ../shared/data/nfcorpus/beir-preprocessed/dev`;

/** One dev set's rankings and what each scored alone. */
interface DevSetResult {
  folder: string;
  split: string;
  queries: number;
  bm25Ndcg10: number;
  denseNdcg10: Partial<Record<'off' | 'on', number>>;
}

/**
 * A dev folder as the stored fusion names it: its last three path components (nfcorpus/beir-preprocessed/dev),
 * enough to tell the dataset, without the machine's own folders above it.
 */
function datasetLabel(folder: string): string {
  return path.resolve(folder).split(path.sep).filter(Boolean).slice(-3).join('/');
}

function meanNdcg10(run: Run, qrels: Qrels): number {
  return evaluateRun(run, qrels, { cutoffs: [10], complete: true }).all['ndcg_cut_10']!;
}

export const fusionCommand: Command = {
  help: HELP,
  async run(argv) {
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string' },
        dev: { type: 'string', multiple: true },
        split: { type: 'string' },
        reasoning: { type: 'string' },
        'max-reasoning-tokens': { type: 'string' },
        'max-queries': { type: 'string' },
        'max-length': { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        ...DEVICE_OPTION,
      },
    });
    parseDevice(v.device);
    if (!v.model) throw new UserError('--model <dir> is required: the model to choose the fusion for.');
    if (!v.dev?.length) throw new UserError('--dev <beir-folder> is required: the dev queries to choose on.');
    checkModelFolderOption(v.model);
    // minutes of ranking must not end in a folder the result cannot be stored in
    if (!v['dry-run']) checkOutputFolder(v.model, '--model');
    const split = v.split ?? 'dev';
    try {
      refuseTestSplit(split);
    } catch (e) {
      throw new UserError(`--split ${split}: ${(e as Error).message}`);
    }
    const reasoning = choiceOption(v.reasoning, 'reasoning', REASONING) ?? 'both';
    const maxReasoningTokens = nonNegativeInt(v['max-reasoning-tokens'], 'max-reasoning-tokens');
    const maxQueries = positiveInt(v['max-queries'], 'max-queries');
    const maxLength = positiveInt(v['max-length'], 'max-length');
    // every split is read before the model loads: a wrong path costs no model load
    const splits = await Promise.all([...new Set(v.dev)].map((folder) => readBeirSplit(folder, split)));
    const progress = v.quiet ? undefined : evalProgress();
    const say = (line: string): void => void (v.quiet || process.stderr.write(`${line}\n`));

    selectDevice(v.device);
    const backend = await LocalBackend.fromModelDir(v.model, { maxLength });
    const retriever = new ModelRetriever(backend.embedder, 'search-r3');
    const modes = reasoning === 'both' ? (['off', 'on'] as const) : ([reasoning] as const);
    const cases: FusionDevCase[] = [];
    const devSets: DevSetResult[] = [];
    for (const s of splits) {
      const { queries, qrels } = maxQueries
        ? sampleDevQueries({ corpus: [], queries: s.queries, qrels: s.qrels }, maxQueries, SAMPLE_SEED)
        : s;
      say(`${s.folder}: ${queries.size} ${split} queries`);
      const corpus = beirCorpusSource(s.corpusFile);
      const bm25 = await new Bm25Retriever().retrieve(corpus, queries, DEPTH, progress);
      const options: ModelRetrieverOptions[] = modes.map((m) => ({ reasoning: m, maxReasoningTokens }));
      const dense = await retriever.retrieveModes(corpus, queries, DEPTH, options, progress);
      const result: DevSetResult = {
        folder: s.folder,
        split,
        queries: queries.size,
        bm25Ndcg10: meanNdcg10(bm25, qrels),
        denseNdcg10: {},
      };
      modes.forEach((m, i) => {
        result.denseNdcg10[m] = meanNdcg10(dense[i]!.run, qrels);
        cases.push({ split, dense: dense[i]!.run, bm25, qrels });
      });
      devSets.push(result);
    }
    const choice = chooseFusion(cases);
    // weights 0.5 and 0.5 halve every score of plain RRF: the same ranking, so the same nDCG@10
    const plain = choice.candidates.find((c) => c.denseWeight === 0.5 && c.k === RRF_K)!.ndcg10;
    const chosenOn =
      devSets.map((d) => `${datasetLabel(d.folder)}, split ${split} (${d.queries} queries)`).join(' + ') +
      `; reasoning ${modes.join(' and ')}`;
    const fusion = { ...choice.fusion, chosenOn };
    const file = path.join(v.model, MODEL_SEARCH_FILE);
    if (!v['dry-run']) await writeModelFusion(v.model, fusion);
    if (v.json) {
      const out = { fusion, devNdcg10: choice.ndcg10, plainRrfDevNdcg10: plain, devSets, written: !v['dry-run'] };
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }
    for (const d of devSets) {
      const dense = modes.map((m) => `reasoning ${m} ${d.denseNdcg10[m]!.toFixed(4)}`).join(', ');
      console.log(`${d.folder} (${d.split}, ${d.queries} queries): nDCG@10 BM25 ${d.bm25Ndcg10.toFixed(4)}, ${dense}`);
    }
    console.log(
      `fusion: ${describeFusion(fusion)}: dev nDCG@10 ${choice.ndcg10.toFixed(4)} (plain RRF ${plain.toFixed(4)})`,
    );
    const was = backend.fusion ? ` (it had ${describeFusion(backend.fusion)})` : '';
    console.log(
      v['dry-run']
        ? `not written (--dry-run); without --dry-run it goes to ${file}${was}`
        : `wrote ${file}${was}: hybrid search with this model (search --hybrid, serve, demo) uses it`,
    );
    return 0;
  },
};
