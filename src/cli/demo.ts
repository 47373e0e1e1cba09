import { existsSync, promises as fsp } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { hostOption, portOption, positiveInt } from './args.js';
import { oneLine } from '../io/one-line.js';
import { DEVICE_OPTION, deviceHelp, resolvedDevice, selectDevice } from './device-option.js';
import { modelHelp } from './option-help.js';
import { evalProgress } from './eval-progress.js';
import { ProgressReporter } from './index-progress.js';
import { DEFAULT_MODEL_DIR, DEMO_DATA_DIR } from './package-paths.js';
import { corpusOf, readBeirDataset, type BeirDocument } from '../eval/beir.js';
import { subsetDevSet } from '../eval/dev-eval.js';
import { Bm25Retriever } from '../eval/bm25-retriever.js';
import { denseSearch, type EmbeddingMatrix } from '../eval/dense-search.js';
import { evaluateRun } from '../eval/measures.js';
import { embedQueryMatrix } from '../eval/model-retriever.js';
import type { Qrels } from '../eval/qrels.js';
import type { ProgressFn } from '../eval/retriever.js';
import type { Run } from '../eval/run.js';
import { DEFAULT_MAX_REASONING_TOKENS, type DeviceChoice } from '../embed/index.js';
import { isModelFolder } from '../model/model-folder.js';
import { LocalBackend } from '../search-index/embedding-backend.js';
import { IndexError } from '../search-index/index-error.js';
import { describeFusion, fuseHybridRuns } from '../search-index/rrf.js';
import { SearchIndex } from '../search-index/search-index.js';
import { DEMO_VECTORS_FILE, saveSeedVectors, seedIndex } from '../search-index/seed-vectors.js';
import { Judgments } from '../serve/judgments.js';
import { type RunningServer, startSearchServer } from '../serve/server.js';
import { listenError } from './serve.js';
import { makeFolder } from '../io/make-folder.js';

/** SciFact test claims shown by default: readable, and each relevant abstract is in the corpus. */
const EXAMPLE_QUERY_IDS = ['36', '641', '1100'];
/** Ranked documents kept per query for the table: enough for nDCG@10 and Recall@100. */
const TABLE_DEPTH = 100;

const HELP = `search-r3 demo — the quickstart: search SciFact with the default model, then measure it

usage: search-r3 demo [--model <dir>] [--query "text"]... [--no-table] [options]

What it does, on the SciFact data shipped in this package (demo/scifact: 5,183 abstracts, the 300 test
claims and their relevance judgments; CC BY-NC 2.0, non-commercial use only):

 1. Index: embeds every abstract with the model (document prompt, no reasoning) into a search index,
    with a progress bar (documents/s, ETA). The index is cached (see --index): later runs load it in
    about a second, and a run stopped half-way resumes where it was. A model folder that ships its
    vectors of these abstracts (${DEMO_VECTORS_FILE}, written by --write-vectors; the recipe does it)
    fills the index from them instead, where its fingerprint, prompts and each abstract's text match.
 2. Examples: for 3 SciFact test claims (or each --query), the model first reasons about the claim,
    then emits <|embed_token|>; it prints the reasoning, whether the token had to be forced (the model
    did not emit it within the budget), the top hits (doc id, title, snippet, cosine score; ✓ marks a
    document the SciFact judges call relevant) and the time for reasoning+embedding and for search.
 3. Table: ranks the corpus for the 300 test claims with BM25, the model with reasoning off, with
    reasoning on, and hybrid (reciprocal-rank fusion of the top 100 of BM25 and of reasoning off, as
    search --hybrid fuses, weighted as the model's search-r3.json says when it has one), and prints
    nDCG@10 and Recall@100 (trec_eval-exact) with the wall time of each row. Reasoning on generates up to
    --max-reasoning-tokens per claim and is the slow row; --no-table skips the table. When the model
    folder holds evaluation.md (the recipe's full multi-dataset table, whose hybrid rows fuse rankings
    1,000 deep and so differ a little from the demo's) the demo points to it.

options:
${modelHelp(30, "the model (default: models/search-r3-default in this package, which 'npm run train:default' writes)")}
  --index <dir>               index folder (default: $XDG_CACHE_HOME or ~/.cache, then
                              search-r3/demo-<model fingerprint>); rebuilt only for another model
  --query <text>              a query of your own instead of the 3 examples (repeatable); a SciFact test
                              claim typed exactly gets its ✓ marks
  -k <n>                      hits shown per example (default 5)
  --max-reasoning-tokens <n>  reasoning budget per query (default ${DEFAULT_MAX_REASONING_TOKENS}, as 'search-r3
                              eval'); the embed token is forced after it
  --no-table                  skip the evaluation table
  --max-queries <n>           evaluate only the first n test claims (a quick look; not the SciFact figure);
                              for the table, or with --max-documents
  --max-documents <n>         index only the abstracts judged relevant for the 3 example claims and the
                              evaluated ones, plus the first n others (a quick look; figures are not
                              comparable to SciFact's)
  --web                       after indexing, serve the search playground (a web page: type a claim, watch
                              the analysis, see the hits with ✓ marks and nDCG@10, compare reasoning on/off
                              and dense/hybrid) instead of the examples and the table; Ctrl-C stops it
  --port <n>                  the playground's port with --web (default 8080; 0 picks a free one)
  --host <addr>               the playground's address with --web (default 127.0.0.1)
${deviceHelp(30)}
  --write-vectors             encode the abstracts (all 5,183, or the --max-documents slice) with the model
                              into a fresh index (or --index) and write their vectors to
                              <model>/${DEMO_VECTORS_FILE}, for later first runs to load; nothing else runs
  --json                      print one JSON object (index, examples, table) instead of text
  --quiet                     no progress output on stderr
  -h, --help                  this help

Set SEARCH_R3_THREADS to limit the CPU threads the model uses.`;

export interface DemoHit {
  id: string;
  title: string;
  score: number;
  relevant: boolean;
  snippet: string;
}
/** Field names as POST /v1/search spells them (query_id has no counterpart there). */
export interface DemoExample {
  query: string;
  query_id?: string;
  reasoning: string;
  forced: boolean;
  timings: { embed_ms: number; search_ms: number };
  hits: DemoHit[];
}
export interface DemoRow {
  retriever: string;
  ndcg10: number;
  recall100: number;
  seconds: number;
  note?: string;
}

interface DemoIndexReport {
  dir: string;
  action: 'built' | 'resumed' | 'updated' | 'loaded';
  documents: number;
  encoded: number;
  /** Documents whose vectors came from the model folder (DEMO_VECTORS_FILE) instead of being encoded. */
  seeded: number;
  seconds: number;
}

/** The demo's cache folder for a model: one index per model fingerprint (and per corpus slice). */
export function defaultIndexDir(modelId: string, slice: string): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  const short = modelId.replace(/^sha256:/, '').slice(0, 12);
  return path.join(cache, 'search-r3', `demo-${short}${slice}`);
}

/**
 * An elapsed time as the demo prints it: '12 ms', '4.2 s', '7m05s'. Each form is chosen after rounding to what it
 * shows, so a rounding that carries moves to the next form: 0.9996 s is '1.0 s', 59.96 s '1m00s', 419.6 s '7m00s'.
 */
export function duration(seconds: number): string {
  if (seconds < 0.9995) return `${(seconds * 1000).toFixed(seconds < 0.00995 ? 1 : 0)} ms`;
  if (seconds < 59.95) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
}

/**
 * Builds, resumes or loads the index of `docs`, leaving in it exactly those documents. Vectors the model
 * folder ships for them (`seedFile`, made by the same model with the same prompts) are taken as they are;
 * only the rest is encoded. An index that holds documents of another corpus (a user's own, given by
 * --index) is refused before anything in it changes: only SciFact abstracts of another slice are removed.
 */
async function openDemoIndex(
  dir: string,
  backend: LocalBackend,
  docs: readonly BeirDocument[],
  o: {
    corpusIds: ReadonlySet<string>;
    seedFile?: string;
    log: (s: string) => void;
    quiet: boolean;
    temporary?: boolean;
  },
): Promise<{ index: SearchIndex; report: DemoIndexReport }> {
  const { seedFile, log, quiet } = o;
  const t0 = performance.now();
  const index = await SearchIndex.open(dir, { backend, create: {} });
  try {
    const foreign = index.documentIds().filter((id) => !o.corpusIds.has(id));
    if (foreign.length > 0) {
      throw new UserError(
        `--index ${dir} holds ${foreign.length.toLocaleString('en')} documents that are not SciFact abstracts ` +
          `(${foreign
            .slice(0, 3)
            .map((id) => `'${id}'`)
            .join(', ')}${foreign.length > 3 ? ', …' : ''}); the demo keeps only its own documents in its ` +
          'index, so it leaves this one as it is: give --index a new folder, or leave it out.',
      );
    }
    const before = index.stats();
    await index.stageDocuments(docs);
    let seeded = 0;
    if (seedFile && existsSync(seedFile) && index.stats().pending > 0) {
      const seed = await seedIndex(index, seedFile).catch((e: unknown) => ({
        seeded: 0,
        unusable: e instanceof IndexError ? e.message : `${seedFile} could not be read (${String(e)})`,
      }));
      if (seed.unusable) log(`not using the model's shipped vectors: ${seed.unusable}; encoding instead`);
      seeded = seed.seeded;
    }
    const pending = index.stats().pending;
    if (before.pending > 0)
      log(`resuming the index in ${dir}: ${before.pending} documents were left pending by an earlier run`);
    else if (before.documents === 0 && pending > 0)
      log(
        `building the index in ${dir} (${pending.toLocaleString('en')} documents to encode` +
          `${o.temporary ? '' : '; cached for later runs'})`,
      );
    const progress = quiet || pending === 0 ? undefined : new ProgressReporter('encoding documents');
    const encoded = await index.encodePending({ onProgress: (p) => progress?.update(p.done, p.total) });
    const keep = new Set(docs.map((d) => d.id));
    await index.deleteDocuments(index.documentIds().filter((id) => !keep.has(id)));
    index.indexedVectors(); // read the vectors now, so loading time includes them and search time does not
    const seconds = (performance.now() - t0) / 1000;
    const changed = encoded + seeded;
    const action =
      changed === 0 ? 'loaded' : before.pending > 0 ? 'resumed' : before.documents > 0 ? 'updated' : 'built';
    return { index, report: { dir, action, documents: index.stats().documents, encoded, seeded, seconds } };
  } catch (e) {
    await index.close();
    throw e;
  }
}

interface WrittenVectors {
  file: string;
  documents: number;
  dimension: number;
  bytes: number;
  index: DemoIndexReport;
}

/**
 * --write-vectors: the whole corpus encoded by the model, never seeded from the file it replaces, in a
 * fresh index unless one is named (and removed after), then saved to the model folder.
 */
async function writeDemoVectors(
  modelDir: string,
  backend: LocalBackend,
  docs: readonly BeirDocument[],
  corpusIds: ReadonlySet<string>,
  indexDir: string | undefined,
  log: (s: string) => void,
  quiet: boolean,
): Promise<WrittenVectors> {
  const file = path.join(modelDir, DEMO_VECTORS_FILE);
  const dir = indexDir ?? (await fsp.mkdtemp(path.join(tmpdir(), 'search-r3-demo-vectors-')));
  try {
    const { index, report } = await openDemoIndex(dir, backend, docs, {
      corpusIds,
      log,
      quiet,
      temporary: !indexDir,
    });
    try {
      await makeFolder(path.dirname(file));
      const documents = await saveSeedVectors(file, index);
      const { size } = await fsp.stat(file);
      return { file: path.resolve(file), documents, dimension: index.dimension, bytes: size, index: report };
    } finally {
      await index.close();
    }
  } finally {
    if (indexDir === undefined) await fsp.rm(dir, { recursive: true, force: true });
  }
}

function describeIndex(r: DemoIndexReport): string {
  if (r.action === 'loaded')
    return `index: loaded ${r.documents.toLocaleString('en')} documents from ${r.dir} in ${duration(r.seconds)}`;
  const rate = r.encoded / Math.max(r.seconds, 1e-9);
  const seeded = r.seeded > 0 ? `${r.seeded.toLocaleString('en')} documents' vectors shipped with the model, ` : '';
  return (
    `index: ${r.action} ${r.dir} — ${seeded}${r.encoded.toLocaleString('en')} documents encoded, in ` +
    `${duration(r.seconds)}${r.encoded > 0 ? ` (${rate.toFixed(1)} documents/s)` : ''}`
  );
}

function formatExample(e: DemoExample, n: number, of: number, budget: number): string {
  const lines = [`[${n}/${of}] ${e.query}${e.query_id ? `   (SciFact test claim ${e.query_id})` : ''}`];
  const token = e.forced ? `embed token forced after the ${budget}-token budget` : 'embed token emitted by the model';
  lines.push(`  reasoning (${token}): ${oneLine(e.reasoning, 300) || '(none)'}`);
  lines.push(
    `  reasoning + embedding ${duration(e.timings.embed_ms / 1000)}, search ${duration(e.timings.search_ms / 1000)}`,
  );
  e.hits.forEach((h, i) => {
    lines.push(
      `  ${String(i + 1).padStart(2)}. ${h.relevant ? '✓' : ' '} ${h.score.toFixed(4)}  ${h.id}  ` +
        `${oneLine(h.title, 80)}`,
    );
    lines.push(`                ${h.snippet}`);
  });
  if (e.hits.length === 0) lines.push('  (no documents)');
  return lines.join('\n');
}

function formatTable(rows: readonly DemoRow[], queries: number, documents: number): string {
  const w = Math.max(...rows.map((r) => r.retriever.length), 9);
  const out = [
    `SciFact test: ${queries} queries, ${documents.toLocaleString('en')} documents (trec_eval-exact)`,
    `${'retriever'.padEnd(w)}  nDCG@10  R@100   time`,
    ...rows.map(
      (r) =>
        `${r.retriever.padEnd(w)}  ${r.ndcg10.toFixed(4)}   ${r.recall100.toFixed(4)}  ` +
        `${duration(r.seconds)}${r.note ? `   ${r.note}` : ''}`,
    ),
  ];
  return out.join('\n');
}

interface TableInputs {
  backend: LocalBackend;
  corpus: readonly BeirDocument[];
  docMatrix: EmbeddingMatrix;
  queries: ReadonlyMap<string, string>;
  qrels: Qrels;
  maxReasoningTokens: number;
  progress?: ProgressFn;
}

/** BM25, dense reasoning off/on and hybrid over the index's own vectors (the corpus is not encoded again). */
async function evaluationTable(t: TableInputs): Promise<DemoRow[]> {
  const score = (run: Run): { ndcg10: number; recall100: number } => {
    const ev = evaluateRun(run, t.qrels, { cutoffs: [10, TABLE_DEPTH], complete: true });
    return { ndcg10: ev.all['ndcg_cut_10']!, recall100: ev.all[`recall_${TABLE_DEPTH}`]! };
  };
  const timed = async (work: () => Promise<Run>): Promise<{ run: Run; seconds: number }> => {
    const t0 = performance.now();
    const run = await work();
    return { run, seconds: (performance.now() - t0) / 1000 };
  };
  const dense = async (reasoning: 'on' | 'off'): Promise<{ run: Run; seconds: number; note: string }> => {
    let note = '';
    const r = await timed(async () => {
      const q = await embedQueryMatrix(
        t.backend.embedder,
        t.queries,
        { reasoning, maxReasoningTokens: t.maxReasoningTokens },
        t.progress,
      );
      note =
        `${q.forced} of ${t.queries.size} embed tokens forced; ${q.generatedTokens.toLocaleString('en')} ` +
        `tokens generated`;
      return (await denseSearch(q.matrix, t.docMatrix, { k: TABLE_DEPTH, onProgress: t.progress })).run;
    });
    return { ...r, note };
  };
  const bm25 = await timed(() => new Bm25Retriever().retrieve(corpusOf(t.corpus), t.queries, TABLE_DEPTH, t.progress));
  const off = await dense('off');
  const on = await dense('on');
  const hybrid = await timed(async () => fuseHybridRuns(off.run, bm25.run, TABLE_DEPTH, t.backend.fusion));
  return [
    { retriever: 'BM25', ...score(bm25.run), seconds: bm25.seconds },
    { retriever: 'dense, reasoning off', ...score(off.run), seconds: off.seconds },
    {
      retriever: `dense, reasoning on (≤${t.maxReasoningTokens} tokens)`,
      ...score(on.run),
      seconds: on.seconds,
      note: on.note,
    },
    // Its time is both rankings' plus the fusion: what answering these queries hybrid costs.
    {
      retriever: `hybrid (BM25 + reasoning off, RRF${t.backend.fusion ? `: ${describeFusion(t.backend.fusion)}` : ''})`,
      ...score(hybrid.run),
      seconds: bm25.seconds + off.seconds + hybrid.seconds,
    },
  ];
}

/** Serves the playground on the demo's index, with SciFact test's judgments, until SIGINT or SIGTERM. */
async function servePlayground(
  backend: LocalBackend,
  index: SearchIndex,
  host: string,
  port: number,
  device: DeviceChoice | undefined,
): Promise<number> {
  let server: RunningServer;
  try {
    const judgments = await Judgments.load(DEMO_DATA_DIR, 'test');
    server = await startSearchServer({ backend, index, host, port, judgments, device });
  } catch (e) {
    await index.close();
    throw listenError(e, host, port) ?? e;
  }
  console.log(`search playground: ${server.url}/  (SciFact test claims typed exactly get ✓ marks; Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    const stop = (): void => void server.close().then(resolve, resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await index.close();
  return 0;
}

export const demoCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        model: { type: 'string' },
        index: { type: 'string' },
        query: { type: 'string', multiple: true },
        k: { type: 'string', short: 'k' },
        'max-reasoning-tokens': { type: 'string' },
        'no-table': { type: 'boolean' },
        'max-queries': { type: 'string' },
        'max-documents': { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        web: { type: 'boolean' },
        port: { type: 'string' },
        host: { type: 'string' },
        'write-vectors': { type: 'boolean' },
        ...DEVICE_OPTION,
      },
    });
    const web = values.web ?? false;
    if (!web && (values.port !== undefined || values.host !== undefined))
      throw new UserError('--port and --host are for the playground: add --web.');
    const writeVectors = values['write-vectors'] ?? false;
    const givenOnly = (given: (string | false)[]): string[] => given.filter((o): o is string => o !== false);
    if (writeVectors) {
      // the playground and the examples' own queries: --write-vectors runs neither
      const unused = givenOnly([web && '--web', values.query !== undefined && '--query']);
      if (unused.length > 0)
        throw new UserError(`--write-vectors encodes the corpus and runs nothing else: drop ${unused.join(', ')}.`);
    }
    if (web) {
      // the playground's page sends its own queries, with the server's k and reasoning budget: these would be
      // ignored without a word
      const forExamples = givenOnly([
        values.query !== undefined && '--query',
        values.k !== undefined && '-k',
        values['max-reasoning-tokens'] !== undefined && '--max-reasoning-tokens',
        values['no-table'] === true && '--no-table',
        values.json === true && '--json',
      ]);
      if (forExamples.length > 0)
        throw new UserError(
          `${forExamples.join(', ')} ${forExamples.length > 1 ? 'are' : 'is'} for the examples and the table, ` +
            `which --web does not run: drop ${forExamples.length > 1 ? 'them' : 'it'}, or --web.`,
        );
    }
    const port = portOption(values.port);
    const host = hostOption(values.host);
    const k = positiveInt(values.k, '-k') ?? 5;
    const budget = positiveInt(values['max-reasoning-tokens'], 'max-reasoning-tokens') ?? DEFAULT_MAX_REASONING_TOKENS;
    const maxQueries = positiveInt(values['max-queries'], 'max-queries');
    const maxDocuments = positiveInt(values['max-documents'], 'max-documents');
    // the claims it keeps are the table's, and with --max-documents also pick the slice's abstracts
    const noTable = writeVectors ? '--write-vectors' : web ? '--web' : values['no-table'] ? '--no-table' : undefined;
    if (maxQueries !== undefined && maxDocuments === undefined && noTable !== undefined)
      throw new UserError(
        `--max-queries is for the table, which ${noTable} does not run (with --max-documents it also picks the ` +
          `abstracts of the slice): drop it.`,
      );
    const json = values.json ?? false;
    const quiet = (values.quiet ?? false) || json;
    if (values.query?.some((q) => q.trim() === ''))
      throw new UserError('--query needs some text (quote it: --query "does vitamin D prevent fractures?").');
    const modelDir = values.model ?? DEFAULT_MODEL_DIR;
    if (!isModelFolder(modelDir)) {
      throw new UserError(
        values.model === undefined
          ? `the default model is not in this checkout (${modelDir}); train it with 'npm run train:default' ` +
              `or pass --model <dir>.`
          : `--model ${modelDir}: not a model folder (no config.json or adapter_config.json); pass a folder ` +
              `written by 'search-r3 train' or the recipe.`,
      );
    }
    const log = (s: string): void => {
      if (!quiet) process.stderr.write(`${s}\n`);
    };
    const say = (s: string): void => {
      if (!json) console.log(s);
    };

    return (async () => {
      const device = selectDevice(values.device, log);
      const backend = await LocalBackend.fromModelDir(modelDir);
      const cfg = backend.embedder.model.config;
      const ds = await readBeirDataset(DEMO_DATA_DIR, 'test');
      const table = subsetDevSet(ds, maxQueries ?? 0, 0);
      const qidByText = new Map([...ds.queries].map(([id, text]) => [text.trim(), id]));
      const examples = values.query
        ? values.query.map((text) => ({ text, id: qidByText.get(text.trim()) }))
        : EXAMPLE_QUERY_IDS.map((id) => ({ text: ds.queries.get(id)!, id }));
      // The slice depends only on --max-documents and --max-queries, so its cached index serves every later run.
      const sliced = new Map([
        ...EXAMPLE_QUERY_IDS.map((id): [string, string] => [id, ds.queries.get(id)!]),
        ...table.queries,
      ]);
      const docs = subsetDevSet({ ...ds, queries: sliced }, 0, maxDocuments ?? 0).corpus;
      const corpusIds = new Set(ds.corpus.map((d) => d.id));
      say(
        `search-r3 demo — model ${path.resolve(modelDir)} (d ${cfg.hiddenSize}, ${cfg.numHiddenLayers} ` +
          `layers, vocabulary ${cfg.vocabSize}), ` +
          `SciFact test: ${docs.length.toLocaleString('en')} documents${maxDocuments ? ' (a slice)' : ''}`,
      );

      if (writeVectors) {
        const written = await writeDemoVectors(modelDir, backend, docs, corpusIds, values.index, log, quiet);
        say(describeIndex(written.index));
        say(
          `wrote ${written.file}: ${written.documents.toLocaleString('en')} vectors of dimension ` +
            `${written.dimension} (${(written.bytes / 2 ** 20).toFixed(1)} MiB) for model ${backend.modelId}`,
        );
        if (json) console.log(JSON.stringify(written));
        return 0;
      }
      const indexDir =
        values.index ??
        defaultIndexDir(
          backend.modelId,
          maxDocuments ? `-first${maxDocuments}${maxQueries ? `-q${maxQueries}` : ''}` : '',
        );
      const { index, report: indexReport } = await openDemoIndex(indexDir, backend, docs, {
        corpusIds,
        seedFile: path.join(modelDir, DEMO_VECTORS_FILE),
        log,
        quiet,
      });
      const out: {
        model: object;
        index: DemoIndexReport;
        examples: DemoExample[];
        table?: { queries: number; documents: number; rows: DemoRow[] };
        evaluation?: string;
      } = {
        model: {
          dir: path.resolve(modelDir),
          id: backend.modelId,
          hiddenSize: cfg.hiddenSize,
          layers: cfg.numHiddenLayers,
          vocabSize: cfg.vocabSize,
        },
        index: indexReport,
        examples: [],
      };
      if (web) {
        say(describeIndex(indexReport));
        // the playground's model worker computes where this thread indexed
        return servePlayground(backend, index, host, port, resolvedDevice(device));
      }
      try {
        say(describeIndex(indexReport));
        say(
          `\nExamples: the model reasons about each claim (≤${budget} tokens), then embeds it; top ${k} of ` +
            `${indexReport.documents.toLocaleString('en')} documents (✓ = judged relevant)\n`,
        );
        for (const [i, ex] of examples.entries()) {
          const r = await index.search(ex.text, { k, reasoning: 'on', maxReasoningTokens: budget });
          const judged = ex.id ? ds.qrels.get(ex.id) : undefined;
          const example: DemoExample = {
            query: ex.text,
            ...(ex.id ? { query_id: ex.id } : {}),
            reasoning: r.reasoning,
            forced: r.forced,
            timings: { embed_ms: r.embedMs, search_ms: r.searchMs },
            hits: r.hits.map((h) => ({
              id: h.id,
              title: h.title,
              score: h.score,
              relevant: (judged?.get(h.id) ?? 0) >= 1,
              snippet: oneLine(h.text, 110),
            })),
          };
          out.examples.push(example);
          say(`${formatExample(example, i + 1, examples.length, budget)}\n`);
        }
        if (!values['no-table']) {
          const { ids, dim, data } = index.indexedVectors();
          const rows = await evaluationTable({
            backend,
            corpus: docs,
            docMatrix: { ids, dim, data },
            queries: table.queries,
            qrels: table.qrels,
            maxReasoningTokens: budget,
            progress: quiet ? undefined : evalProgress(),
          });
          out.table = { queries: table.queries.size, documents: docs.length, rows };
          say(formatTable(rows, table.queries.size, docs.length));
          if (!maxQueries && !maxDocuments) say('(published BM25 on SciFact test: nDCG@10 0.665–0.679 (Pyserini))');
          const slow = rows[2]!;
          if (slow.seconds > 60)
            say(
              `reasoning on took ${duration(slow.seconds)} for ${table.queries.size} queries (generation is ` +
                `the slow part); --no-table skips the table.`,
            );
        }
        const evaluationMd = path.join(modelDir, 'evaluation.md');
        if (existsSync(evaluationMd)) {
          out.evaluation = path.resolve(evaluationMd);
          say(`\nThe full multi-dataset evaluation of this model: ${out.evaluation}`);
        }
      } finally {
        await index.close();
      }
      if (json) console.log(JSON.stringify(out));
      return 0;
    })();
  },
};
