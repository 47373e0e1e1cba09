import { parseArgs } from './parse-options.js';
import {
  apiKeyOption,
  corsOriginHelp,
  corsOriginsOption,
  hostOption,
  intAtLeast,
  intInRange,
  openServerWarning,
  portOption,
} from './args.js';
import { UserError, type Command } from './command.js';
import { SearchIndex, readIndexManifest } from '../search-index/search-index.js';
import { Judgments } from '../serve/judgments.js';
import { WorkerBackend } from '../serve/model-worker.js';
import { DEVICE_OPTION, deviceHelp, parseDevice, sayDevice, workerStartError } from './device-option.js';
import { modelHelp } from './option-help.js';
import { ENGINE_OPTIONS, engineHelp, engineMismatch, findGguf, parseEngine } from './engine-options.js';
import { recordedModelFolder } from './index-model.js';
import { type RunningServer, startSearchServer } from '../serve/server.js';
import { queueTooShort } from '../serve/serve-options.js';
import { listenProblem } from '../serve/listen.js';
import { runWatch } from './run-folders.js';

const HELP = `search-r3 serve — HTTP server: OpenAI-compatible embeddings and search

usage: search-r3 serve --index <dir> [options]
       search-r3 serve --model <dir> [options]          (embeddings only)

endpoints:
  POST /v1/embeddings   OpenAI's embeddings API: {"model", "input": string | string[] | token ids,
                        "encoding_format": "float" | "base64", "dimensions" (the model's, or left out),
                        "user"} → {"data", "model", "usage"}; any other field is refused.
                        Extension: "search_r3": {"mode": "document" | "query", "reasoning": "on" | "off",
                        "max_reasoning_tokens", "temperature", "top_p", "seed", "truncate": bool}; default
                        mode document; other keys are refused. With reasoning on, the response adds
                        "search_r3": [{"reasoning", "forced", "reasoning_tokens"}]; "truncate" cuts a text
                        its prompt cannot hold (else refused) and adds "truncated_tokens"; usage counts the
                        tokens embedded. With the extension an empty text is embedded in its prompt.
  POST /v1/search       {"query", "k", "reasoning": "on" | "off", "hybrid", "highlight", "truncate": bool,
                        "max_reasoning_tokens", "temperature", "top_p", "seed"} → ranked documents; any
                        other field is refused
  GET  /v1/models       the served model name (GET /v1/models/<id>: that model, or 404)
  GET  /health          status; with the API key (or without one configured) also model id, dimension,
                        queue depth, index size. 503 with the reason when the model or index is unusable.
  GET  /metrics         Prometheus text format
  POST /v1/search/stream  /v1/search as server-sent events: the analysis as it is generated, then the hits
  POST /v1/chat/completions
                        OpenAI's chat completions with the served model: {"messages", "max_tokens" |
                        "max_completion_tokens", "temperature", "top_p", "seed", "stop", "stream",
                        "stream_options"}, whole or streamed (not with --engine llama.cpp); roles system,
                        developer (= system), user, assistant, content a string or text parts. Fields
                        that would change the answer and are not done (response_format, tools,
                        presence_penalty, ...) are refused, as are unknown ones; user, metadata, store
                        are taken. Prompt + max_tokens may fill the context.
  GET  /                the search playground (a web page: query, analysis, hits, comparisons)
  GET  /runs            the training-run dashboard of the --runs folders (GET /v1/runs: their data)

The model runs in a worker thread, so HTTP, /health and /metrics answer while it works. Requests from
concurrent clients are batched into shared forward passes, taking inputs from each request in turn.
Over-limit requests get OpenAI-shaped errors: 400 (bad field, too many inputs or tokens, too much
reasoning), 401 (API key), 404, 405, 413 (body too large, also once gunzipped), 415, 429 (queue full),
503 (shutting down, model restarting, index unreadable). SIGINT/SIGTERM stop accepting connections and
exit once in-flight requests are answered.

options:
  --index <dir>             index to search (its model is loaded from index.json, or --model)
${modelHelp(28, 'the model to serve (required without --index)')}
  --host <addr>             listen address (default 127.0.0.1)
  --port <n>                port (default 8080; 0 picks a free one)
  --model-name <name>       name clients pass as "model" (default search-r3)
  --qrels <dir>             a BEIR folder (queries.jsonl, qrels/<split>.tsv): searches for its judged
                            queries get each hit's grade (✓ in the playground) and their nDCG@10
  --split <name>            the qrels split of --qrels (default test)
  --runs <dir>              a training run or recipe work folder for the dashboard at /runs (repeatable)
  --api-key <key>           require Authorization: Bearer <key> (default: $SEARCH_R3_API_KEY if set)
${corsOriginHelp(28)}
  --max-body <bytes>        largest request body (default 1048576)
  --max-inputs <n>          inputs per /v1/embeddings request (default 256)
  --max-tokens <n>          tokens per input (default, and at most: the model's context); an input over
                            it, or that its prompt would cut, is refused unless the request asks to cut
                            it ('truncate'): then it is cut to fit both
  --max-request-tokens <n>  input tokens per request, all inputs together (default 65536)
  --max-request-reasoning-tokens <n>
                            queries × max_reasoning_tokens per reasoning request (default 8192)
  --max-queue <n>           inputs waiting for the model before 429 (default 1024; at least --max-inputs)
  --batch-wait-ms <n>       how long an input waits for company (default 3)
  --batch-inputs <n>        most inputs per forward batch (default 64)
${engineHelp(28)}
                            (llama.cpp serves embeddings and search, one request at a time; no chat)
${deviceHelp(28)}
  -h, --help                this help`;

export const serveCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        index: { type: 'string' },
        model: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'model-name': { type: 'string' },
        'api-key': { type: 'string' },
        'max-body': { type: 'string' },
        'max-inputs': { type: 'string' },
        'max-tokens': { type: 'string' },
        'max-queue': { type: 'string' },
        'batch-wait-ms': { type: 'string' },
        'batch-inputs': { type: 'string' },
        'max-request-tokens': { type: 'string' },
        'max-request-reasoning-tokens': { type: 'string' },
        ...ENGINE_OPTIONS,
        ...DEVICE_OPTION,
        qrels: { type: 'string' },
        split: { type: 'string' },
        runs: { type: 'string', multiple: true },
        'cors-origin': { type: 'string', multiple: true },
      },
    });
    const int = (name: string, min = 1): number | undefined =>
      intAtLeast(values[name as keyof typeof values] as string | undefined, name, min);
    if (!values.index && !values.model)
      throw new UserError('give --index <dir> (search and embeddings) or --model <dir> (embeddings only).');
    const port = portOption(values.port);
    const host = hostOption(values.host);
    const apiKey = apiKeyOption(values['api-key']);
    const corsOrigins = corsOriginsOption(values['cors-origin']);
    const limits = {
      maxBodyBytes: int('max-body'),
      maxInputs: int('max-inputs'),
      maxTokensPerInput: int('max-tokens'),
      maxRequestTokens: int('max-request-tokens'),
      maxRequestReasoningTokens: int('max-request-reasoning-tokens'),
      maxQueue: int('max-queue'),
    };
    const short = queueTooShort(limits, (k) => (k === 'maxQueue' ? '--max-queue' : '--max-inputs'));
    if (short) throw new UserError(short);
    // waiting longer than a minute for company would only hold inputs back (and overflow Node's timers)
    const batching = {
      maxWaitMs: intInRange(values['batch-wait-ms'], 'batch-wait-ms', 0, 60_000),
      maxBatchInputs: int('batch-inputs'),
    };
    const choice = parseEngine(values);
    // taken in the model worker, which loads the model: this thread computes nothing
    const device = choice.kind === 'search-r3' ? (parseDevice(values.device) ?? undefined) : undefined;
    if (values.split && !values.qrels)
      throw new UserError('--split names a split of --qrels; give --qrels <BEIR folder>.');
    const runs = values.runs ? runWatch(values.runs) : undefined;
    return (async () => {
      const judgments = values.qrels ? await Judgments.load(values.qrels, values.split ?? 'test') : undefined;
      const manifest = values.index ? readIndexManifest(values.index) : undefined;
      const modelDir = values.model ?? recordedModelFolder(manifest!, values.index!, false);
      const engine = choice.kind === 'llama.cpp' ? { ...choice, gguf: findGguf(modelDir, choice.gguf) } : undefined;
      const backend = await WorkerBackend.start(modelDir, {
        ...(manifest ? { maxLength: manifest.maxLength, templates: manifest.templates } : {}),
        ...batching,
        engine,
        device,
      }).catch((e: unknown) => {
        throw workerStartError(device, e, values.device);
      });
      if (backend.info.device) sayDevice(values.device, backend.info.device);
      let index: SearchIndex | undefined;
      let server: RunningServer;
      try {
        const why = manifest && engineMismatch(manifest, backend);
        if (why) throw new UserError(why);
        index = values.index ? await SearchIndex.open(values.index, { backend, saveBm25: true }) : undefined;
        for (const note of index?.notes ?? []) console.error(`search-r3: ${note}`);
        const said = index?.notes.length ?? 0;
        server = await startSearchServer({
          backend,
          index,
          host,
          port,
          modelName: values['model-name'],
          apiKey,
          corsOrigins,
          judgments,
          runs,
          ...limits,
        });
        // what building BM25 at start found of bm25.bin (damaged, or a folder it may not write)
        for (const note of index?.notes.slice(said) ?? []) console.error(`search-r3: ${note}`);
      } catch (e) {
        await backend.close();
        await index?.close();
        throw listenError(e, host, port) ?? e;
      }
      // the signals are ours before the line that says the server is up: a supervisor (or a test) may stop
      // it the moment it reads that line, and Node's default would kill the process mid-request
      const stopped = new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          console.error(`${sig}: finishing in-flight requests...`);
          server.close().then(resolve, resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      const open = openServerWarning(host, apiKey, 'the server');
      if (open) console.error(`search-r3: warning: ${open}`);
      const what = index ? `${index.stats().documents} documents from ${values.index}` : 'embeddings';
      const merged = backend.info.base ? `: LoRA adapter ${modelDir} merged onto ${backend.info.base}` : '';
      console.log(`search-r3 serving ${what} at ${server.url} (model ${backend.modelId}${merged})`);
      if (index) console.log(`search playground: ${server.url}/`);
      if (runs) console.log(`run dashboard: ${server.url}/runs`);
      await stopped;
      await index?.close();
      return 0;
    })();
  },
};

/** A listen failure the user can fix, as the package's sentence naming --port or --host; null for anything else. */
export function listenError(e: unknown, host: string, port: number): UserError | null {
  const problem = listenProblem(e, host, port, { port: '--port', host: '--host' });
  return problem && new UserError(problem.message);
}
