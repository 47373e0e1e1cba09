import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import {
  choiceOption,
  noEffect,
  nonNegativeInt,
  nonNegativeNumber,
  numberOption,
  positiveInt,
  unitIntervalOption,
} from './args.js';
import { evalProgress } from './eval-progress.js';
import { createAnalyzer, SUPPORTED_LANGUAGES } from '../eval/analyzer.js';
import { checkNotAnInput, checkOutputFile, checkReplacesOnly, type InputFile } from './output-path.js';
import { beirCorpusSource, beirSplitFiles, readBeirSplit, type BeirSplit, type CorpusSource } from '../eval/beir.js';
import { Bm25Retriever } from '../eval/bm25-retriever.js';
import { embeddingsFiles, readEmbeddings } from '../eval/embeddings-file.js';
import { EmbeddingRetriever } from '../eval/embedding-retriever.js';
import { ModelRetriever, type SearchR3Encoder } from '../eval/model-retriever.js';
import { Embedder, REASONING_MODES, requireEmbedToken } from '../embed/index.js';
import { LlamaCppEngine } from '../embed/index.js';
import { DEVICE_OPTION, deviceHelp, parseDevice, selectDevice, unusedDevice } from './device-option.js';
import { modelHelp } from './option-help.js';
import { ENGINE_OPTIONS, type EngineChoice, engineHelp, findGguf, parseEngine } from './engine-options.js';
import { modelFolderExists } from '../model/json-file.js';
import { loadModelFolder } from '../model/model-folder.js';
import { checkGgufSource } from '../search-index/llama-cpp-backend.js';
import { describeFusion } from '../search-index/rrf.js';
import { HybridRetriever } from '../search-index/hybrid-retriever.js';
import { type ModelFusion, readModelFusion } from '../search-index/model-fusion.js';
import { firstQueries } from '../eval/dev-eval.js';
import { evaluateRun, type EvalOptions } from '../eval/measures.js';
import { readBeirQrels, readTrecQrels, type Qrels } from '../eval/qrels.js';
import {
  compareEvaluations,
  coverageWarning,
  comparisonLabels,
  formatComparison,
  formatSummaryTable,
  runCoverage,
  type MeasureComparison,
} from '../eval/report.js';
import type { Retriever } from '../eval/retriever.js';
import { checkRunId, isRunField, readTrecRun, writeTrecRun, type Run } from '../eval/run.js';
import { formatTrecEval, selectMeasures } from '../eval/trec-eval-format.js';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';

const BEIR_CUTOFFS = [1, 3, 5, 10, 100, 1000];

const HELP = `search-r3 eval — retrieval evaluation with trec_eval-exact measures

usage: search-r3 eval --dataset <beir-folder> [--split test] --retriever bm25 [--run out.trec] [options]
       search-r3 eval --dataset <beir-folder> --query-embeddings Q --doc-embeddings D [--run out.trec] [options]
       search-r3 eval --qrels <qrels> --run <run> [-q] [-c] [-m measure]... [options]

The first two forms retrieve (BM25, or exact cosine top-k over precomputed embeddings from any model),
evaluate and print a table; the third evaluates an existing TREC run like trec_eval and prints its
relational output (measure, query, value). Measures are computed as trec_eval computes them: documents
ranked by score, ties by document id descending (the run's rank column is ignored); nDCG gains are the
graded relevance, discount log2(rank+1); relevant means grade >= 1 (-l to change).

inputs:
  --dataset <dir>             BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
  --split <name>              qrels split (default test)
  --max-queries <n>           evaluate only the first n queries of the split (a quick look; not the dataset's
                              figure)
  --retriever bm25            BM25 (Lucene-style, title + text)
${modelHelp(
  30,
  'a Search-R3 model (documents embedded directly, queries with --reasoning off (default) or on, exact cosine top-k)',
  '--retriever <model-dir>',
)}
  --reasoning on|off          let the model analyse each query before <|embed_token|> (default off)
  --max-reasoning-tokens <n>  budget for that analysis (default 128; the token is forced after it; 0: at once)
  --temperature <x>           sampling temperature of the analysis (default 0: greedy)
  --max-length <n>            longest prompt in tokens; longer texts are cut (default: the model's context)
  --hybrid                    fuse the model's ranking with BM25's (--k1, --b, --language), each --k deep, as
                              hybrid search does: weighted as the model's search-r3.json says (search-r3 fusion
                              chooses it on dev queries), else plain RRF (k 60)
${engineHelp(30, false)}
${deviceHelp(30)}
or embed with any model and pass:
  --query-embeddings <file>   X.npy, float32 [queries × dim], with its ids one per line in X.ids.txt beside
                              it (d.npy: d.ids.txt), or X.jsonl, one {"id", "vector"} per line
  --doc-embeddings <file>     the same for the corpus
  --qrels <file>              TREC qrels (qid iter docid rel), or BEIR qrels if it ends in .tsv (or .tsv.gz)
  --run <file>                TREC run: written by the --dataset forms (its folder is created if missing), read
                              by the --qrels form

retrieval:
  --k <n>                     documents kept per query (default 1000)
  --k1 <x> --b <x>            BM25 parameters (default 0.9, 0.4 as Pyserini's BEIR baselines)
  --language <code>           BM25 text analysis (default en), one of
                              ${SUPPORTED_LANGUAGES.join(' ')}
  --threads <n>               worker threads for dense search (default: all cores on large problems)
  --tag <word>                run tag (default: the retriever name)

evaluation:
  --cutoffs <k,k,...>         cutoffs for P, recall, ndcg_cut, map_cut (default 1,3,5,10,100,1000 with
                              --dataset; trec_eval's 5,10,15,20,30,100,200,500,1000 with --qrels)
  -m, --measure <m>           trec_eval-style selection, repeatable: map, Rprec, recip_rank, P.5,10,
                              recall, ndcg_cut.10, map_cut, num_ret, num_rel, num_rel_ret, num_q, runid, official
  -q, --per-query             also print every query's values
  -c, --complete              average over all judged queries; a query missing from the run scores 0
                              (trec_eval -c). Default with --qrels: queries in both run and qrels (trec_eval,
                              pytrec_eval); with --dataset always on (a query retrieving nothing scores 0)
  -l, --level <n>             relevance level for binary measures (default 1)
  --skip-no-relevant          leave out queries judged without any relevant document (trec_eval counts them as 0)
  --ignore-identical-ids      drop a retrieved document whose id equals the query id (MTEB: ArguAna, FiQA)
  --excluded-ids <file.json>  {"qid": ["docid", ...]} documents to drop per query (BRIGHT)
  --compare <run>             paired t-test and randomisation test of this run against another TREC run
  --json                      print JSON instead of tables
  -h, --help                  this help`;

/** How --hybrid fused, for the report's first line ('' without --hybrid). */
function fusedBy(f: ModelFusion | null | undefined): string {
  if (f === undefined) return '';
  if (f === null) return ' (fused with BM25 by plain RRF, k 60: the model stores no fusion)';
  return ` (fused with BM25 at ${describeFusion(f)}: the model's search-r3.json)`;
}

/** An existing --run may only be a TREC run (written again): its first line has a run's six fields. */
function checkReplacesOnlyARun(file: string): void {
  const why = (head: Buffer): string | null => {
    const first = head
      .toString('utf8')
      .split('\n')
      .find((l) => l.trim() !== '');
    const fields = first?.trim().split(/\s+/).length ?? 6;
    return fields === 6 ? null : ` (its first line has ${fields} ${fields === 1 ? 'field' : 'fields'}, a run's have 6)`;
  };
  checkReplacesOnly(file, '--run', { command: 'eval', kind: 'a TREC run', why });
}

function parseCutoffs(v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const ks = [...new Set(v.split(',').map((s) => Number(s.trim())))].sort((a, b) => a - b);
  if (ks.length === 0 || !ks.every((k) => Number.isSafeInteger(k) && k > 0)) {
    throw new UserError(`--cutoffs must be positive integers separated by commas (got '${v}').`);
  }
  return ks;
}

function readExcludedIds(file: string): Map<string, string[]> {
  if (!existsSync(file)) throw new UserError(`${file}: file not found; check --excluded-ids.`);
  // else a folder reads as "not valid JSON (EISDIR ...)"
  if (statSync(file).isDirectory()) throw new UserError(`${file} is a folder; --excluded-ids names a JSON file.`);
  const text = withoutByteOrderMark(readFileSync(file, 'utf8'));
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: not valid JSON (${(err as Error).message}).`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new UserError(`${file}: expected a JSON object {"query id": ["doc id", ...]}.`);
  }
  const out = new Map<string, string[]>();
  for (const [qid, ids] of Object.entries(obj)) {
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string')) {
      throw new UserError(`${file}: the value for query '${qid}' must be an array of document id strings.`);
    }
    out.set(qid, ids as string[]);
  }
  return out;
}

interface InputOptions {
  dataset: string;
  split: string;
  'query-embeddings'?: string;
  'doc-embeddings'?: string;
  'excluded-ids'?: string;
  compare?: string;
}

/** The files the --dataset forms read: the run they write must be none of them (--compare is read after it). */
function datasetFormInputs(v: InputOptions): InputFile[] {
  const ds = beirSplitFiles(v.dataset, v.split);
  const named = (option: keyof InputOptions & string, files: string[]): InputFile[] =>
    files.map((f) => ({ path: f, what: `--${option}` }));
  return [
    { path: ds.corpus, what: "--dataset's corpus" },
    { path: ds.queries, what: "--dataset's queries" },
    { path: ds.qrels, what: "--dataset's qrels" },
    ...(['query-embeddings', 'doc-embeddings'] as const).flatMap((o) =>
      v[o] === undefined ? [] : named(o, embeddingsFiles(v[o])),
    ),
    ...(['excluded-ids', 'compare'] as const).flatMap((o) => (v[o] === undefined ? [] : named(o, [v[o]]))),
  ];
}

interface Report {
  mode: 'dataset' | 'trec';
  dataset?: { folder: string; split: string; documents: number; queries: number };
  retriever?: string;
  /** With --hybrid: the fusion used, the model's stored one, or null for plain RRF (k 60). */
  hybridFusion?: ModelFusion | null;
  run: { tag: string; file?: string };
  options: EvalOptions;
  seconds: { retrieval?: number; evaluation: number };
  numQueries: number;
  all: Record<string, number>;
  perQuery?: Record<string, Record<string, number>>;
  comparison?: { run: string; tag: string; measures: MeasureComparison[] };
}

/** The split with only its first `n` judged queries (all without n), their qrels with them. */
function withFirstQueries(ds: BeirSplit, n: number | undefined): BeirSplit {
  return n === undefined ? ds : { ...ds, ...firstQueries(ds, n) };
}

interface ModelRetrieverArgs {
  reasoning?: string;
  maxReasoningTokens?: number;
  temperature?: number;
  maxLength?: number;
  /** --device as given (search-r3's engine only). */
  device?: string;
}
interface OpenRetriever {
  retriever: Retriever;
  close(): Promise<void>;
}

/** A Search-R3 model folder on the chosen engine as a retriever (loaded once, read-only), and how to let it go. */
async function modelRetriever(dir: string, o: ModelRetrieverArgs, engine: EngineChoice): Promise<OpenRetriever> {
  choiceOption(o.reasoning, 'reasoning', REASONING_MODES);
  if (!modelFolderExists(dir)) throw new UserError(`--retriever '${dir}': not 'bm25' and not a model folder.`);
  let encoder: SearchR3Encoder;
  let close = async (): Promise<void> => {};
  if (engine.kind === 'llama.cpp') {
    const gguf = findGguf(dir, engine.gguf);
    const e = await LlamaCppEngine.open({ gguf, modelDir: dir, gpu: engine.gpu, maxLength: o.maxLength });
    await checkGgufSource(e).catch(async (err: unknown) => {
      await e.close();
      throw err;
    });
    encoder = e;
    close = () => e.close();
  } else {
    selectDevice(o.device);
    const { model, tokenizer } = await loadModelFolder(dir, { checkTokenizer: (t) => requireEmbedToken(t, dir) });
    encoder = new Embedder(model, tokenizer, { maxLength: o.maxLength });
  }
  const reasoning = o.reasoning === 'on' ? 'on' : 'off';
  const name = `search-r3${engine.kind === 'llama.cpp' ? '-llama.cpp' : ''}${reasoning === 'on' ? '-reasoning' : ''}`;
  const { maxReasoningTokens, temperature } = o;
  const retriever = new ModelRetriever(encoder, name, { reasoning, maxReasoningTokens, temperature });
  return { retriever, close };
}

/**
 * Why --compare cannot pair its run with `run`: it answers none of the queries judged in `judgedIn`, or
 * (`run` given) none that `run` answers.
 */
function noSharedQuery(compare: string, judgedIn: string, run?: string): string {
  const why = run
    ? `answers none of the queries ${run} answers of those judged in ${judgedIn}`
    : `answers none of the queries judged in ${judgedIn}`;
  return (
    `--compare ${compare} ${why}: paired tests need queries both runs answer; check that it is a run ` +
    'of the same queries (the same query ids).'
  );
}

/** The documents judged relevant to some query, and how many of them a read of the corpus has shown. */
interface RelevantIds {
  ids: Set<string>;
  seen: number;
}

function relevantIds(qrels: Qrels, level: number): RelevantIds {
  const ids = new Set<string>();
  for (const judged of qrels.values()) for (const [d, g] of judged) if (g >= level) ids.add(d);
  return { ids, seen: 0 };
}

/** The corpus as the retriever reads it, counting into `relevant` the judged relevant documents it streams. */
function seeingIds(corpus: CorpusSource, relevant: RelevantIds): CorpusSource {
  return {
    get size() {
      return corpus.size;
    },
    async *documents() {
      const seen = new Set<string>();
      for await (const d of corpus.documents()) {
        if (relevant.ids.has(d.id)) seen.add(d.id);
        yield d;
      }
      relevant.seen = seen.size;
    },
  };
}

/**
 * Why every figure is 0 when no document judged relevant is in the corpus: the qrels are another dataset's (or
 * another version's), or the corpus a part of one. trec_eval would score the same; only here is the corpus known.
 */
function noRelevantInCorpus(ds: BeirSplit, relevant: number): string {
  const qrels = beirSplitFiles(ds.folder, ds.split).qrels;
  return (
    `none of the ${relevant} documents judged relevant in ${qrels} is in ${ds.corpusFile}, so every measure is 0; ` +
    'check that the corpus and the qrels are of one dataset'
  );
}

export const evalCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        dataset: { type: 'string' },
        split: { type: 'string' },
        'max-queries': { type: 'string' },
        retriever: { type: 'string' },
        'query-embeddings': { type: 'string' },
        'doc-embeddings': { type: 'string' },
        qrels: { type: 'string' },
        run: { type: 'string' },
        k: { type: 'string' },
        k1: { type: 'string' },
        b: { type: 'string' },
        language: { type: 'string' },
        threads: { type: 'string' },
        tag: { type: 'string' },
        cutoffs: { type: 'string' },
        measure: { type: 'string', short: 'm', multiple: true },
        'per-query': { type: 'boolean', short: 'q' },
        complete: { type: 'boolean', short: 'c' },
        level: { type: 'string', short: 'l' },
        'skip-no-relevant': { type: 'boolean' },
        'ignore-identical-ids': { type: 'boolean' },
        'excluded-ids': { type: 'string' },
        compare: { type: 'string' },
        json: { type: 'boolean' },
        reasoning: { type: 'string' },
        'max-reasoning-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'max-length': { type: 'string' },
        hybrid: { type: 'boolean' },
        ...ENGINE_OPTIONS,
        ...DEVICE_OPTION,
      },
    });
    const v = parsed.values;
    const engine = parseEngine(v);
    const noModel = v.retriever === undefined || v.retriever === 'bm25';
    const noModelRuns = 'this evaluation runs no model (BM25, or vectors read from files)';
    if (noModel) unusedDevice(v.device, noModelRuns);
    else parseDevice(v.device);
    if (engine.kind !== 'search-r3' && noModel) {
      throw new UserError('--engine runs a model: give --retriever <model-dir>.');
    }
    if (v.hybrid && noModel) throw new UserError('--hybrid fuses BM25 with a model: give --retriever <model-dir>.');
    const maxQueries = positiveInt(v['max-queries'], 'max-queries');
    if (maxQueries !== undefined && v.dataset === undefined) {
      throw new UserError('--max-queries goes with --dataset (it takes the first n queries of the split).');
    }
    const level = numberOption(v.level, 'level', 'an integer', Number.isInteger);
    const baseOptions: EvalOptions = {
      relevanceLevel: level,
      complete: v.complete ?? false,
      skipQueriesWithoutRelevant: v['skip-no-relevant'] ?? false,
      ignoreIdenticalIds: v['ignore-identical-ids'] ?? false,
      excludedIds: v['excluded-ids'] === undefined ? undefined : readExcludedIds(v['excluded-ids']),
    };
    const dense = v['query-embeddings'] !== undefined || v['doc-embeddings'] !== undefined;
    if (v.dataset !== undefined) {
      if (v.qrels !== undefined) throw new UserError('give either --dataset or --qrels, not both.');
      if (dense && (v['query-embeddings'] === undefined || v['doc-embeddings'] === undefined)) {
        throw new UserError('dense evaluation needs both --query-embeddings and --doc-embeddings.');
      }
      if (dense && v.retriever !== undefined) {
        throw new UserError('give either --retriever or --query-embeddings/--doc-embeddings, not both.');
      }
      if (!dense && v.retriever === undefined) {
        throw new UserError('say how to retrieve: --retriever bm25, or --query-embeddings and --doc-embeddings.');
      }
    } else if (v.qrels !== undefined) {
      if (v.run === undefined) throw new UserError('--qrels needs --run <TREC run file> to evaluate.');
      if (dense || v.retriever !== undefined) throw new UserError('--retriever and embeddings need --dataset.');
    } else {
      throw new UserError(
        'give --dataset <beir-folder> (retrieve and evaluate) or --qrels and --run (evaluate a run). See ' +
          "'search-r3 eval --help'.",
      );
    }

    if (v.dataset === undefined) {
      noEffect('--k', v.k, 'it bounds a retrieval, and this evaluation reads its run');
      for (const o of ['split', 'k1', 'b', 'language', 'threads'] as const)
        noEffect(`--${o}`, v[o], 'it sets up a --dataset retrieval, and this evaluation reads its run');
    }
    v.split ??= 'test';

    // what the run ends with is checked before it starts: retrieval with a model may take many minutes
    const selection = selectMeasures(
      v.measure ?? [],
      parseCutoffs(v.cutoffs) ?? (v.dataset ? BEIR_CUTOFFS : undefined),
    );
    if (v.dataset !== undefined && v.run !== undefined) {
      checkOutputFile(v.run, '--run');
      // the run is written as plain text (what trec_eval reads); named .gz, every reader would try to gunzip it
      if (/\.gz$/i.test(v.run)) {
        throw new UserError(
          `--run ${v.run}: eval writes the run as plain text, which trec_eval reads; name it without .gz (a run ` +
            'gzipped afterwards is read by eval --qrels --run as it is).',
        );
      }
      checkNotAnInput(v.run, '--run', datasetFormInputs({ ...v, dataset: v.dataset, split: v.split! }));
      checkReplacesOnlyARun(v.run);
    }
    if (v.tag !== undefined && !isRunField(v.tag))
      throw new UserError(`--tag '${v.tag}' must be one non-empty word (the run file's last column).`);
    const k1 = nonNegativeNumber(v.k1, 'k1'),
      b = unitIntervalOption(v.b, 'b'),
      temperature = nonNegativeNumber(v.temperature, 'temperature'),
      threads = positiveInt(v.threads, 'threads'),
      maxReasoningTokens = nonNegativeInt(v['max-reasoning-tokens'], 'max-reasoning-tokens');
    if (noModel) {
      for (const o of ['reasoning', 'max-reasoning-tokens', 'temperature', 'max-length'] as const)
        noEffect(`--${o}`, v[o], noModelRuns);
    }
    if (v.compare !== undefined && maxQueries === 1)
      throw new UserError('--compare makes paired tests over queries: it needs --max-queries 2 or more.');
    if (v.language !== undefined) {
      try {
        createAnalyzer({ language: v.language });
      } catch {
        throw new UserError(`--language ${v.language} is not supported; use one of ${SUPPORTED_LANGUAGES.join(', ')}.`);
      }
    }
    const progress = v.json ? undefined : evalProgress();
    const other = v.compare !== undefined ? await readTrecRun(v.compare) : undefined;
    const { report, ev } = await (async () => {
      let run: Run;
      let qrels: Qrels;
      let tag: string;
      let ds: BeirSplit | undefined;
      let documents: number | undefined;
      let retrievalSeconds: number | undefined;
      let retrieverName: string | undefined;
      let hybridFusion: ModelFusion | null | undefined;
      let closeModel = async (): Promise<void> => {};
      if (v.dataset !== undefined) {
        let retriever: Retriever;
        if (dense) {
          // one after the other: read side by side, a fault in both files was reported from whichever parse
          // lost the race, so the same two files gave one message or the other
          const files = { queries: v['query-embeddings']!, documents: v['doc-embeddings']! };
          const qe = await readEmbeddings(files.queries);
          const de = await readEmbeddings(files.documents);
          retriever = new EmbeddingRetriever(qe, de, 'dense', { threads, files });
        } else if (v.retriever === 'bm25') {
          retriever = new Bm25Retriever({ k1, b, language: v.language });
        } else {
          const m = await modelRetriever(
            v.retriever!,
            {
              reasoning: v.reasoning,
              maxReasoningTokens,
              temperature,
              maxLength: positiveInt(v['max-length'], 'max-length'),
              device: v.device,
            },
            engine,
          );
          if (v.hybrid) {
            // read only for --hybrid: a plain dense run has no use for the file, damaged or not
            const fusion = readModelFusion(v.retriever!);
            retriever = new HybridRetriever(m.retriever, new Bm25Retriever({ k1, b, language: v.language }), fusion);
            hybridFusion = fusion ?? null;
          } else retriever = m.retriever;
          closeModel = m.close;
        }
        ds = withFirstQueries(await readBeirSplit(v.dataset, v.split!), maxQueries);
        // refused before a retrieval that may take many minutes; a document's id is only known once retrieved
        if (v.run !== undefined) for (const q of ds.queries.keys()) checkRunId(q, 'query', v.run);
        // streamed from its file by the retriever, which keeps what it makes of the texts rather than the texts
        const relevant = relevantIds(ds.qrels, level ?? 1);
        const corpus = seeingIds(beirCorpusSource(ds.corpusFile), relevant);
        // refused before a retrieval that may take many minutes
        if (other !== undefined && runCoverage(other.run, other.run, ds.qrels).b === 0)
          throw new UserError(noSharedQuery(v.compare!, `${v.dataset} (split ${v.split})`));
        const t0 = performance.now();
        try {
          run = await retriever.retrieve(corpus, ds.queries, positiveInt(v.k, 'k') ?? 1000, progress);
          documents = corpus.size;
        } finally {
          await closeModel();
        }
        retrievalSeconds = (performance.now() - t0) / 1000;
        if (relevant.ids.size > 0 && relevant.seen === 0)
          process.stderr.write(`search-r3: warning: ${noRelevantInCorpus(ds, relevant.ids.size)}\n`);
        qrels = ds.qrels;
        retrieverName = retriever.name;
        tag = v.tag ?? retriever.name;
        if (v.run !== undefined) writeTrecRun(v.run, run, tag);
      } else {
        // a .gz is read through gunzip (readLines), so its form is told by the name under it
        qrels = /\.tsv(\.gz)?$/i.test(v.qrels!) ? await readBeirQrels(v.qrels!) : await readTrecQrels(v.qrels!);
        const file = await readTrecRun(v.run!);
        run = file.run;
        tag = v.tag ?? file.tag;
      }
      // Retrieval answers every judged query, so one it finds nothing for scores 0 rather than vanishing from the
      // average: trec_eval -c, as Anserini's BEIR regressions evaluate.
      const options: EvalOptions = {
        ...baseOptions,
        cutoffs: selection.cutoffs,
        complete: ds ? true : baseOptions.complete,
      };
      const t1 = performance.now();
      const ev = evaluateRun(run, qrels, options);
      const evalSeconds = (performance.now() - t1) / 1000;
      if (ev.numQueries === 0) {
        throw new UserError('no query is in both the run and the qrels: check that they use the same query ids.');
      }
      let comparison: Report['comparison'];
      if (other !== undefined) {
        const cover = runCoverage(run, other.run, qrels);
        if (cover.both === 0) {
          const judgedIn = ds ? `${ds.folder} (split ${ds.split})` : v.qrels!;
          throw new UserError(
            noSharedQuery(v.compare!, judgedIn, cover.b === 0 ? undefined : (v.run ?? 'the retrieval')),
          );
        }
        const warning = coverageWarning(
          cover,
          { a: v.run ?? 'the retrieval', b: v.compare! },
          options.complete === true,
        );
        if (warning) process.stderr.write(`search-r3: --compare: ${warning}\n`);
        const evB = evaluateRun(other.run, qrels, options);
        const paired = [...ev.perQuery.keys()].filter((q) => evB.perQuery.has(q)).length;
        const measures = ['ndcg_cut_10', 'map', 'recip_rank', 'recall_100', 'P_10'].filter((m) => m in ev.all);
        if (paired >= 2) {
          const compared = compareEvaluations(ev, evB, measures.length ? measures : ['map']);
          comparison = { run: v.compare!, tag: other.tag, measures: compared };
        } else {
          // the evaluation still stands (it may have taken a long retrieval), so it is printed without them
          process.stderr.write(
            `search-r3: --compare left out: its paired tests need 2 or more evaluated queries; there is ${paired}.\n`,
          );
        }
      }
      const report: Report = {
        mode: ds ? 'dataset' : 'trec',
        dataset: ds && {
          folder: resolve(ds.folder),
          split: ds.split,
          documents: documents!,
          queries: ds.queries.size,
        },
        retriever: retrieverName,
        hybridFusion,
        run: { tag, file: v.run },
        options: { ...options, excludedIds: undefined },
        seconds: { retrieval: retrievalSeconds, evaluation: evalSeconds },
        numQueries: ev.numQueries,
        all: ev.all,
        perQuery: v['per-query'] ? Object.fromEntries(ev.perQuery) : undefined,
        comparison,
      };
      return { report, ev };
    })();

    if (v.json) {
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    if (report.mode === 'dataset') {
      const d = report.dataset!;
      console.log(
        `${v.dataset} (${d.split}): ${d.queries} queries, ${d.documents} documents; ` +
          `${report.retriever}${fusedBy(report.hybridFusion)}` +
          `${report.run.file ? `, run written to ${report.run.file}` : ''}; ` +
          `retrieval ${report.seconds.retrieval!.toFixed(2)} s, evaluation ${report.seconds.evaluation.toFixed(2)} s`,
      );
      if (v['per-query'] || v.measure)
        process.stdout.write(formatTrecEval(ev, report.run.tag, v['per-query'] ?? false, selection));
      else process.stdout.write(formatSummaryTable(ev, selection.cutoffs));
    } else {
      process.stdout.write(
        formatTrecEval(
          ev,
          report.run.tag,
          v['per-query'] ?? false,
          v.measure ? selection : { names: selection.names, runid: true, numQ: true },
        ),
      );
    }
    if (report.comparison) {
      const { heading, columns } = comparisonLabels(
        { tag: report.run.tag, source: report.run.file ?? 'the retrieval' },
        { tag: report.comparison.tag, source: report.comparison.run },
      );
      process.stdout.write(`\n${heading}:\n`);
      process.stdout.write(formatComparison(report.comparison.measures, columns));
    }
    return 0;
  },
};
