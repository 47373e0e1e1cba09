import { parseArgs } from './parse-options.js';
import { UserError } from './command.js';
import { positiveInt } from './args.js';
import { checkOutputFolder } from './output-path.js';
import { DEVICE_OPTION, deviceHelp, selectDevice } from './device-option.js';
import { evalProgress } from './eval-progress.js';
import { DEFAULT_MAX_REASONING_TOKENS } from '../embed/index.js';
import { evaluateRecipeModels, RECIPE_DATASETS, type RecipeDatasetId } from '../recipe/evaluate.js';
import { DEFAULT_DATA_DIR } from './package-paths.js';
import { counted } from '../io/counted.js';

export const RECIPE_EVALUATE_HELP = `search-r3 recipe evaluate — the default model's evaluation table

usage: search-r3 recipe evaluate --stage1 <dir> --stage2 <dir> --out <dir> [--data <dir>]
         [--datasets ${RECIPE_DATASETS.join(',')}] [--max-queries N] [--max-documents N]
         [--max-reasoning-tokens N] [--work <dir>] [--quiet] [--device auto|cpu|webgpu]

Rows per dataset: BM25; stage 1 and stage 2, each with reasoning off and on; and reciprocal-rank
fusion of BM25 with stage 2 reasoning off and on, its dense weight and k chosen first by mean nDCG@10
on dev sets only (a seeded sample of 300 SciFact train queries, and NFCorpus dev), never on a test
split. The SciFact sample is used only when the stage-2 folder's configs/ show every training step held
it out (the recipe's profiles do); otherwise it is left out, and the report says why. The report says
what was chosen, and the recipe stores it with the model. Measures: nDCG@10
and Recall@100 (trec_eval semantics, every judged query counted), wall time per row, and for
reasoning-on rows the mean reasoning tokens and the fraction of queries whose <|embed_token|> was
forced. Paired t-test and randomisation test over per-query nDCG@10: stage 2 vs stage 1 (reasoning
off, and on), reasoning on vs off (stage 1, and stage 2), hybrids vs BM25.

datasets (test splits, under --data):
  scifact     scifact/ (300 queries, 5,183 abstracts)
  nfcorpus    nfcorpus/beir-preprocessed/test/ (323 queries, 3,162 documents; preprocessed text)
  xquad-en    xquad/beir/en/ (1,190 questions, 240 paragraphs)
  xquad-de    German questions against the English paragraphs (parallel ids, xquad/beir/de qrels)
  xquad-zh    Chinese questions against the English paragraphs
  xquad-ar    Arabic questions against the English paragraphs
BM25 uses the English analyzer on every set (it is the baseline of the cross-lingual sets too).

Writes <out>/evaluation.json (everything: rows, timings, sizes, p-values, model folders, settings) and
<out>/evaluation.md, atomically. Resumable: every run is cached as a TREC run file in the work folder
(and document embeddings in shards); run the same command again after a crash and finished work is
reused. A corpus is embedded once per model (stage 2's rows and the XQuAD sets share it).

options:
  --stage1 <dir>              stage-1 model folder (evaluated with reasoning off)
  --stage2 <dir>              stage-2 model folder (reasoning off and on)
  --out <dir>                 where evaluation.json and evaluation.md go
  --data <dir>                datasets folder (default ${DEFAULT_DATA_DIR})
  --datasets <a,b,...>        which sets, in this order (default all)
  --max-queries <n>           first n judged queries of each set (default all)
  --max-documents <n>         cut each corpus to the kept queries' judged documents plus n others
                              (default: the whole corpus)
  --max-reasoning-tokens <n>  reasoning budget with reasoning on (default ${DEFAULT_MAX_REASONING_TOKENS}, as
                              search-r3 eval); reasoning is greedy (temperature 0)
  --work <dir>                cache of runs and embeddings (default <out>/work)
  --quiet                     no progress or log lines on stderr
${deviceHelp(30)}
  -h, --help                  this help`;

function parseDatasets(v: string | undefined): RecipeDatasetId[] | undefined {
  if (v === undefined) return undefined;
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !(RECIPE_DATASETS as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new UserError(`--datasets: unknown '${unknown[0] ?? v}'; choose from ${RECIPE_DATASETS.join(',')}.`);
  }
  return [...new Set(names)] as RecipeDatasetId[];
}

/**
 * `search-r3 recipe evaluate ...` (argv after `evaluate`): evaluates, writes the report, prints one line saying so
 * to `stdout`, and returns the exit code.
 */
export async function runRecipeEvaluate(
  argv: string[],
  stdout: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const parsed = parseArgs({
    args: argv,
    allowPositionals: false,
    strict: true,
    options: {
      stage1: { type: 'string' },
      stage2: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
      datasets: { type: 'string' },
      'max-queries': { type: 'string' },
      'max-documents': { type: 'string' },
      'max-reasoning-tokens': { type: 'string' },
      work: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...DEVICE_OPTION,
    },
  });
  const v = parsed.values;
  if (v.help) {
    stdout.write(RECIPE_EVALUATE_HELP + '\n');
    return 0;
  }
  for (const name of ['stage1', 'stage2', 'out'] as const) {
    if (v[name] === undefined)
      throw new UserError(`--${name} <dir> is required. See 'search-r3 recipe evaluate --help'.`);
  }
  // before the runs: a file there would fail only when the first run, minutes in, is written
  checkOutputFolder(v.out!, '--out');
  if (v.work !== undefined) checkOutputFolder(v.work, '--work');
  const quiet = v.quiet ?? false;
  selectDevice(v.device, quiet ? () => undefined : undefined);
  const report = await evaluateRecipeModels({
    stage1: v.stage1!,
    stage2: v.stage2!,
    out: v.out!,
    data: v.data ?? DEFAULT_DATA_DIR,
    work: v.work,
    datasets: parseDatasets(v.datasets),
    maxQueries: positiveInt(v['max-queries'], 'max-queries'),
    maxDocuments: positiveInt(v['max-documents'], 'max-documents'),
    maxReasoningTokens: positiveInt(v['max-reasoning-tokens'], 'max-reasoning-tokens'),
    onProgress: quiet ? undefined : evalProgress(),
    onLog: quiet ? undefined : (line) => process.stderr.write(`recipe evaluate: ${line}\n`),
    command: ['search-r3', 'recipe', 'evaluate', ...argv].join(' '),
  });
  stdout.write(
    `${counted(report.datasets.length, 'dataset')} evaluated in ${report.seconds.toFixed(1)} s; ` +
      `wrote ${v.out}/evaluation.json and evaluation.md\n`,
  );
  return 0;
}
