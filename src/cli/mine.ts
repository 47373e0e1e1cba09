import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { noEffect, nonNegativeInt, numberOption, seedOption } from './args.js';
import { NON_NEGATIVE_NUMBER, inRange } from '../io/option-checks.js';
import { checkNotAnInput, checkOutputFile, checkReplacesOnly } from './output-path.js';
import { DEVICE_OPTION, deviceHelp, parseDevice, selectDevice, unusedDevice } from './device-option.js';
import { modelHelp } from './option-help.js';
import { loadSftConfig, type SftConfig } from '../train/sft/config.js';
import { otherStageSaid } from '../train/config-stage.js';
import { candidatePool, checkSources, loadTrainingData, sourceFiles, whyNoExample } from '../train/sft/data.js';
import { heldOutClause } from '../train/hold-out.js';
import { bm25Ranker, mineHardNegatives, modelRanker, jsonlLines, type Ranker } from '../train/sft/mine.js';
import { writeLinesAtomicallySync } from '../io/atomic-file.js';
import { makeFolderSync } from '../io/make-folder.js';
import { loadModelFolder, type LoadedModel } from '../model/model-folder.js';
import { evalProgress } from './eval-progress.js';

const HELP = `search-r3 mine — mine hard negatives for stage-1 training

usage: search-r3 mine --config <train.json> --out <mined.jsonl> [options]

Reads the training data sources of a train sft config, ranks a candidate pool for every query
(every BEIR source's corpus plus all texts of the other sources) and keeps documents from a rank
window as hard negatives, after a false-negative filter. Writes JSONL {query, pos, neg}
(FlagEmbedding layout): use it as {"type": "jsonl", "path": "<mined.jsonl>"} in the config.

options:
  --config <file>       train sft config whose "data" is mined
  --out <file>          output JSONL (its folder is created if missing)
  --retriever bm25|model  rank with BM25 (default) or the model's own embeddings
${modelHelp(24, "the model for --retriever model (default: the config's)")}
  --window <a:b>        rank window, 1-based inclusive (default 10:100); positives take no rank
  --negatives <n>       new negatives per query, sampled from the window (default 8); those the
                        data already gives a query stay, and are not drawn again
  --fn-ratio <r>|off    drop candidates scoring ≥ r × the best positive's score (÷ r when that is
                        negative), as likely false negatives (default 0.95); off keeps them all
  --seed <n>            sampling seed (default 0)
  --quiet               no progress output
${deviceHelp(24)}
                        (with --retriever model)
  -h, --help            this help`;

/**
 * Why an existing --out is not a file mine wrote, or null when it may be (or is empty): each of mine's lines
 * opens with its query ('{"query":', as jsonlLines writes it). Another JSON-lines file (a corpus, the queries
 * of a benchmark, a config) would otherwise be replaced by mined examples.
 */
function notMined(head: Buffer): string | null {
  const text = head.toString('utf8').trimStart();
  if (text === '' || text.startsWith('{"query":')) return null;
  return ' (its first line is no mined example, {"query": …, "pos": …, "neg": …})';
}

export const mineCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        out: { type: 'string' },
        retriever: { type: 'string' },
        model: { type: 'string' },
        window: { type: 'string' },
        negatives: { type: 'string' },
        'fn-ratio': { type: 'string' },
        seed: { type: 'string' },
        quiet: { type: 'boolean' },
        ...DEVICE_OPTION,
      },
    });
    if (!values.config || !values.out) throw new UserError('mine needs --config <train.json> and --out <mined.jsonl>.');
    checkOutputFile(values.out, '--out');
    const w = /^(\d+):(\d+)$/.exec(values.window ?? '10:100');
    if (!w || Number(w[1]) < 1 || Number(w[2]) < Number(w[1]))
      throw new UserError(`--window must be 'a:b', two whole numbers in digits, 1 ≤ a ≤ b (got '${values.window}').`);
    // refused before the data is read and mining starts, as the window is
    const negatives = nonNegativeInt(values.negatives, 'negatives') ?? 8;
    const falseNegativeRatio = fnRatioOption(values['fn-ratio']);
    const seed = seedOption(values.seed) ?? 0;
    const retriever = values.retriever ?? 'bm25';
    if (retriever !== 'bm25' && retriever !== 'model')
      throw new UserError(`--retriever must be bm25 or model (got '${retriever}').`);
    if (retriever === 'bm25') {
      unusedDevice(values.device, 'BM25 mines without a model');
      noEffect('--model', values.model, 'BM25 mines without a model');
    } else parseDevice(values.device);
    let cfg: SftConfig;
    try {
      cfg = loadSftConfig(values.config);
    } catch (e) {
      throw otherStageSaid(e, 'sft');
    }
    checkNotAnInput(values.out, '--out', [
      { path: values.config, what: '--config' },
      ...cfg.data.flatMap((d) => sourceFiles(d).map((f) => ({ path: f, what: `--config's ${d.type} source` }))),
    ]);
    // after: an input is named as the input it is
    checkReplacesOnly(values.out, '--out', { command: 'mine', kind: 'a file of mined examples', why: notMined });
    // every source there before the model loads, and the model loaded before the data is read: neither is
    // refused after minutes of reading and ranking
    checkSources(cfg.data);
    let model: LoadedModel | undefined;
    if (retriever === 'model') {
      selectDevice(values.device);
      model = await loadModelFolder(values.model ?? cfg.model);
    }
    const { examples, stats: ds } = await loadTrainingData(cfg.data);
    if (examples.length === 0) {
      // an empty file written over --out would replace an earlier good one with nothing to train on
      const sources = cfg.data.map((d) => d.path).join(', ');
      throw new UserError(
        `no query to mine in ${values.config}'s data (${sources}): ${whyNoExample(ds)}; ${values.out} is left ` +
          `as it was.`,
      );
    }
    const pool = await candidatePool(cfg.data, examples);
    if (!values.quiet)
      process.stderr.write(`mining ${examples.length} queries over ${pool.length} candidates with ${retriever}\n`);
    const progress = values.quiet ? undefined : evalProgress();
    const rank: Ranker = model
      ? await modelRanker(model.model, model.tokenizer, pool, {
          templates: cfg.templates,
          maxLength: cfg.maxLength,
          onProgress: progress,
        })
      : bm25Ranker(pool);
    const { mined, stats } = mineHardNegatives(
      examples,
      pool,
      rank,
      {
        fromRank: Number(w[1]),
        toRank: Number(w[2]),
        negatives,
        falseNegativeRatio,
        seed,
      },
      progress && ((done, total) => progress('mining', done, total)),
    );
    // made only now: a run refused or stopped before this leaves no empty folder behind
    makeFolderSync(path.dirname(values.out));
    writeLinesAtomicallySync(values.out, jsonlLines(mined));
    console.log(
      `${stats.queries} queries (${ds.withoutPositive} without a positive, ` +
        `${ds.positiveIsQuery} with only itself as one skipped${heldOutClause(ds.heldOut)}): ${stats.negatives} ` +
        `negatives for ${stats.withNegatives} of them, ` +
        `${stats.filteredAsFalseNegative} candidates dropped as likely false negatives; written to ${values.out}`,
    );
    return 0;
  },
};

/** --fn-ratio: a ratio ≥ 0 (default 0.95), or off (null); a refusal names both, as the help does. */
function fnRatioOption(v: string | undefined): number | null {
  if (v === 'off') return null;
  return numberOption(v, 'fn-ratio', "a number ≥ 0, or 'off'", (n) => inRange(n, NON_NEGATIVE_NUMBER)) ?? 0.95;
}
