import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { positiveInt, rangeOption } from './args.js';
import { DEVICE_OPTION, deviceHelp, parseDevice, sayDevice, workerStartError } from './device-option.js';
import { modelHelp } from './option-help.js';
import { isModelFolder } from '../model/model-folder.js';
import { WorkerBackend } from '../serve/model-worker.js';
import { DEFAULT_QUEUE_NAME, queueNameOption } from '../queue/index-job.js';
import { runIndexWorker } from '../queue/index-worker.js';
import { parseRedisUrl } from '../queue/redis-link.js';
import { TIMER_MAX_MS } from '../io/option-checks.js';

/** BullMQ renews a job's lock on a timer of half its length: a longer one than a timer holds fired every 1 ms. */
const LOCK_SECONDS = { integer: true, min: 1, max: Math.floor(TIMER_MAX_MS / 1000) };

const HELP = `search-r3 worker — encode documents for 'search-r3 index --queue' runs

usage: search-r3 worker --queue redis://<host>:<port> --model <dir> [options]

Takes index jobs (chunks of documents) from a BullMQ queue in Redis, encodes them with the model in
<dir> (in a worker thread, on all cores unless SEARCH_R3_THREADS says otherwise) and hands the vectors
back through the queue to the 'index --queue' run, which stores them. Start as many as you like, on any
machines that reach Redis; they need the model, not the index. Each job carries the fingerprint of the
index's model: a worker whose model differs puts the job back untouched and stops, saying so. A worker
that dies mid-job (killed, machine lost) loses nothing: after --lock-seconds its job goes to another
worker. It runs until SIGINT/SIGTERM, then finishes its current job and exits (see docs/scale.md).

options:
  --queue <url>          Redis of the index run (redis://host:port[/db], rediss:// for TLS)
${modelHelp(25, "the index's model")}
  --queue-name <name>    the BullMQ queue (default ${DEFAULT_QUEUE_NAME}); the same as the index run's
  --lock-seconds <s>     how long a job stays with a worker that stopped answering before another
                         worker takes it (default 30); the lock is renewed while the model works
  --queue-wait <s>       how long Redis may be unreachable before the worker gives up (default 60); a
                         Redis restart within it is ridden out
${deviceHelp(25)}
                         (a worker that cannot use it, or whose GPU fails mid-job, puts its job back
                         and stops)
  -h, --help             this help`;

export const workerCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        queue: { type: 'string' },
        model: { type: 'string' },
        'queue-name': { type: 'string' },
        'lock-seconds': { type: 'string' },
        'queue-wait': { type: 'string' },
        ...DEVICE_OPTION,
      },
    });
    if (!values.queue) throw new UserError('--queue redis://<host>:<port> is required (see search-r3 worker --help).');
    if (!values.model) throw new UserError('--model <dir> is required: the model the index was built with.');
    const target = parseRedisUrl(values.queue);
    const queueName = queueNameOption(values['queue-name']);
    const modelDir = values.model;
    // said now, not at the first job, which may come hours later
    if (!isModelFolder(modelDir))
      throw new UserError(`--model ${modelDir}: no model folder there (no config.json or adapter_config.json).`);
    const lockSeconds = rangeOption(values['lock-seconds'], 'lock-seconds', LOCK_SECONDS) ?? 30;
    const waitSeconds = positiveInt(values['queue-wait'], 'queue-wait') ?? 60;
    // taken in the model worker, which loads the model: this thread computes nothing
    const device = parseDevice(values.device) ?? undefined;
    let deviceSaid = false;
    const log = (line: string): void => void process.stderr.write(`search-r3 worker: ${line}\n`);
    const stop = new Promise<void>((resolve) => {
      const on = (sig: string): void => {
        log(`${sig}: stopping, after the job under way if there is one...`);
        resolve();
      };
      process.once('SIGINT', () => on('SIGINT'));
      process.once('SIGTERM', () => on('SIGTERM'));
    });
    const summary = await runIndexWorker({
      target,
      queueName,
      modelLabel: modelDir,
      openModel: async (m) => {
        const backend = await WorkerBackend.start(modelDir, {
          maxLength: m.maxLength,
          templates: m.templates,
          ...(m.batchTokens !== null ? { batchTokens: m.batchTokens } : {}),
          device,
        }).catch((e: unknown) => {
          throw workerStartError(device, e, values.device);
        });
        // once: a job with another cut length or prompts opens the model again, on the same device
        if (backend.info.device && !deviceSaid) sayDevice(values.device, backend.info.device);
        deviceSaid = true;
        return backend;
      },
      lockMs: lockSeconds * 1000,
      waitMs: waitSeconds * 1000,
      log,
      stop,
    });
    log(`stopped after ${summary.jobs} jobs (${summary.documents} documents).`);
    return 0;
  },
};
