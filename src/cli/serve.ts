import { parseArgs } from 'node:util';
import { UserError, type Command } from './command.js';
import { SearchIndex, readIndexManifest } from '../search-index/search-index.js';
import { WorkerBackend } from '../serve/model-worker.js';
import { ENGINE_OPTIONS, engineHelp, engineMismatch, findGguf, parseEngine } from './engine-options.js';
import { type RunningServer, startSearchServer } from '../serve/server.js';

const HELP = `search-r3 serve — HTTP server: OpenAI-compatible embeddings and search

usage: search-r3 serve --index <dir> [options]
       search-r3 serve --model <dir> [options]          (embeddings only)

endpoints:
  POST /v1/embeddings   OpenAI's embeddings API: {"model", "input": string | string[],
                        "encoding_format": "float" | "base64"} → {"data", "model", "usage"}.
                        Extension: "search_r3": {"mode": "document" | "query", "reasoning": "on" | "off",
                        "max_reasoning_tokens", "temperature", "top_p", "seed"}; default mode document.
                        With reasoning on, the response adds "search_r3": [{"reasoning", "forced"}].
  POST /v1/search       {"query", "k", "reasoning": "on" | "off", "hybrid": bool} → ranked documents
  GET  /v1/models       the served model name (GET /v1/models/<id>: that model, or 404)
  GET  /health          status; with the API key (or without one configured) also model id, dimension,
                        queue depth, index size. 503 with the reason when the model or index is unusable.
  GET  /metrics         Prometheus text format

The model runs in a worker thread, so HTTP, /health and /metrics answer while it works. Requests from
concurrent clients are batched into shared forward passes, taking inputs from each request in turn.
Over-limit requests get OpenAI-shaped errors: 400 (bad field, too many inputs or tokens, too much
reasoning), 401 (API key), 404, 405, 413 (body too large, also once gunzipped), 415, 429 (queue full),
503 (shutting down, model restarting, index unreadable). SIGINT/SIGTERM stop accepting connections and
exit once in-flight requests are answered.

options:
  --index <dir>             index to search (its model is loaded from index.json, or --model)
  --model <dir>             model folder (required without --index)
  --host <addr>             listen address (default 127.0.0.1)
  --port <n>                port (default 8080; 0 picks a free one)
  --model-name <name>       name clients pass as "model" (default search-r3)
  --api-key <key>           require Authorization: Bearer <key> (default: $SEARCH_R3_API_KEY if set)
  --max-body <bytes>        largest request body (default 1048576)
  --max-inputs <n>          inputs per /v1/embeddings request (default 256)
  --max-tokens <n>          tokens per input (default: the model's context)
  --max-request-tokens <n>  input tokens per request, all inputs together (default 65536)
  --max-request-reasoning-tokens <n>
                            queries × max_reasoning_tokens per reasoning request (default 8192)
  --max-queue <n>           inputs waiting for the model before 429 (default 1024)
  --batch-wait-ms <n>       how long an input waits for company (default 3)
  --batch-inputs <n>        most inputs per forward batch (default 64)
${engineHelp(28)}
                            (llama.cpp serves embeddings and search, one request at a time; no chat)
  -h, --help                this help`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve embeddings (OpenAI-compatible) and index search over HTTP',
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
      },
    });
    const int = (name: string, min = 1): number | undefined => {
      const v = values[name as keyof typeof values] as string | undefined;
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} must be an integer >= ${min} (got '${v}').`);
      return n;
    };
    if (!values.index && !values.model)
      throw new UserError('give --index <dir> (search and embeddings) or --model <dir> (embeddings only).');
    const port = int('port', 0) ?? 8080;
    if (port > 65535) throw new UserError(`--port must be at most 65535 (got ${port}).`);
    const limits = {
      maxBodyBytes: int('max-body'),
      maxInputs: int('max-inputs'),
      maxTokensPerInput: int('max-tokens'),
      maxRequestTokens: int('max-request-tokens'),
      maxRequestReasoningTokens: int('max-request-reasoning-tokens'),
      maxQueue: int('max-queue'),
    };
    const batching = { maxWaitMs: int('batch-wait-ms', 0), maxBatchInputs: int('batch-inputs') };
    const choice = parseEngine(values);
    return (async () => {
      const manifest = values.index ? readIndexManifest(values.index) : undefined;
      const modelDir = values.model ?? manifest!.model.source;
      const engine = choice.kind === 'llama.cpp' ? { ...choice, gguf: findGguf(modelDir, choice.gguf) } : undefined;
      const backend = await WorkerBackend.start(modelDir, {
        ...(manifest ? { maxLength: manifest.maxLength, templates: manifest.templates } : {}),
        ...batching,
        engine,
      });
      let index: SearchIndex | undefined;
      let server: RunningServer;
      try {
        const why = manifest && engineMismatch(manifest, backend);
        if (why) throw new UserError(why);
        index = values.index ? await SearchIndex.open(values.index, { backend }) : undefined;
        for (const note of index?.notes ?? []) console.error(`search-r3: ${note}`);
        server = await startSearchServer({
          backend,
          index,
          host: values.host,
          port,
          modelName: values['model-name'],
          apiKey: values['api-key'] ?? (process.env.SEARCH_R3_API_KEY || undefined),
          ...limits,
        });
      } catch (e) {
        await backend.close();
        await index?.close();
        throw listenError(e, values.host ?? '127.0.0.1', port) ?? e;
      }
      console.log(
        `search-r3 serving ${index ? `${index.stats().documents} documents from ${values.index}` : 'embeddings'} ` +
          `at ${server.url} (model ${backend.modelId})`,
      );
      await new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          console.error(`${sig}: finishing in-flight requests...`);
          server.close().then(resolve, resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      await index?.close();
      return 0;
    })();
  },
};

/** A listen failure the user can fix, as one sentence; null for anything else. */
function listenError(e: unknown, host: string, port: number): UserError | null {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new UserError(`--port ${port} is in use; pick another with --port or stop the other server.`);
  }
  if (code === 'EACCES') {
    return new UserError(`--port ${port} needs privileges this user lacks; pick a port above 1023.`);
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new UserError(`--host ${host} is not an address of this machine; pick one it has (e.g. 127.0.0.1).`);
  }
  return null;
}
