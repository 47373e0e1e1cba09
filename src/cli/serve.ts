import { parseArgs } from 'node:util';
import { UserError, type Command } from './command.js';
import { asUserErrors } from './index-user-errors.js';
import { LocalBackend } from '../index/embedding-backend.js';
import { readManifest } from '../index/manifest.js';
import { SearchIndex } from '../index/search-index.js';
import { startSearchServer } from '../serve/server.js';

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
  GET  /v1/models       the served model name
  GET  /health          status, model id, dimension, queue depth (never needs the API key)
  GET  /metrics         Prometheus text format

Requests from concurrent clients are batched into shared forward passes. Over-limit requests get
OpenAI-shaped errors: 400 (bad field, too many inputs, too many tokens), 401 (API key), 404, 405,
413 (body too large), 429 (queue full), 503 (shutting down). SIGINT/SIGTERM stop accepting
connections and exit once in-flight requests are answered.

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
  --max-queue <n>           inputs waiting for the model before 429 (default 1024)
  --batch-wait-ms <n>       how long an input waits for company (default 3)
  --batch-inputs <n>        most inputs per forward batch (default 64)
  -h, --help                this help`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve embeddings (OpenAI-compatible) and index search over HTTP',
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv, allowPositionals: false, strict: true,
      options: {
        index: { type: 'string' }, model: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' },
        'model-name': { type: 'string' }, 'api-key': { type: 'string' }, 'max-body': { type: 'string' },
        'max-inputs': { type: 'string' }, 'max-tokens': { type: 'string' }, 'max-queue': { type: 'string' },
        'batch-wait-ms': { type: 'string' }, 'batch-inputs': { type: 'string' },
      },
    });
    const int = (name: string, min = 1): number | undefined => {
      const v = values[name as keyof typeof values] as string | undefined;
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} must be an integer >= ${min} (got '${v}').`);
      return n;
    };
    if (!values.index && !values.model) throw new UserError('give --index <dir> (search and embeddings) or --model <dir> (embeddings only).');
    const port = int('port', 0) ?? 8080;
    if (port > 65535) throw new UserError(`--port must be at most 65535 (got ${port}).`);
    return asUserErrors(async () => {
      const manifest = values.index ? readManifest(values.index) : undefined;
      const backend = await LocalBackend.fromModelDir(values.model ?? manifest!.model.source,
        manifest ? { maxLength: manifest.maxLength, templates: manifest.templates } : {});
      const index = values.index ? await SearchIndex.open(values.index, { backend }) : undefined;
      const server = await startSearchServer({
        backend, index, host: values.host, port,
        modelName: values['model-name'], apiKey: values['api-key'] ?? (process.env.SEARCH_R3_API_KEY || undefined),
        maxBodyBytes: int('max-body'), maxInputs: int('max-inputs'), maxTokensPerInput: int('max-tokens'),
        maxQueue: int('max-queue'), maxWaitMs: int('batch-wait-ms', 0), maxBatchInputs: int('batch-inputs'),
      });
      console.log(`search-r3 serving ${index ? `${index.stats().documents} documents from ${values.index}` : 'embeddings'} at ${server.url} (model ${backend.modelId})`);
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
    });
  },
};
