/**
 * `search-r3 worker`: takes index jobs from the queue, encodes them with the local model and hands the
 * vectors back through the queue (the coordinator is the one writer of the shared store). The model runs
 * off the event loop (the backend given is expected to be a worker-thread one), so BullMQ keeps renewing
 * the job's lock while a long chunk encodes; a worker that stops renewing it (killed, machine lost) has
 * its job taken by another worker once the lock expires.
 */
import type { EventEmitter } from 'node:events';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { EmbeddingBackend } from '../search-index/embedding-backend.js';
import {
  type IndexJobData,
  type IndexJobResult,
  type JobModel,
  makeResult,
  modelMismatch,
  readJob,
} from './index-job.js';
import { settledWithin } from '../io/settled-within.js';
import { QueueError } from './queue-error.js';
import { RunWatch } from './queue-hold.js';
import { isGpuDeviceFailure } from '../embed/index.js';
import { RedisWatchdog, type RedisTarget, type RedisUser } from './redis-link.js';

export interface WorkerOptions {
  target: RedisTarget;
  queueName: string;
  /** Opens the local model with a job's cut length, templates and batch size. */
  openModel(model: JobModel): Promise<EmbeddingBackend>;
  /** The model as --model names it, for messages. */
  modelLabel: string;
  /** How long a job stays with a worker that stopped renewing its lock before another worker takes it. */
  lockMs: number;
  /** How long Redis may stay unreachable before the worker gives up. */
  waitMs: number;
  /** Each line the worker says: 'waiting for jobs' once Redis answers, then each job. */
  log(line: string): void;
  /** Resolves when the worker should finish its job and stop (SIGTERM). */
  stop: Promise<void>;
}

/**
 * The GpuError of a model whose GPU device failed (see GpuError.deviceFailed): `e` itself, or, from a model
 * in a worker thread, the cause of its ModelUnavailableError; undefined for any other error.
 */
function deviceFailure(e: unknown): Error | undefined {
  if (isGpuDeviceFailure(e)) return e as Error;
  const cause = e instanceof Error ? e.cause : undefined;
  return isGpuDeviceFailure(cause) ? (cause as Error) : undefined;
}

/**
 * How long a worker that stops gives BullMQ to close its connections: closing waits on commands that a
 * Redis which stopped taking writes (a failover to a replica, a full Redis) may fail and retry forever.
 */
const CLOSE_MS = 5000;

/** Closes `worker` by force, and disconnects it once `CLOSE_MS` pass, whatever its commands still wait on. */
async function closeWithin(worker: Worker): Promise<void> {
  if (await settledWithin(worker.close(true), CLOSE_MS)) return;
  await worker.disconnect().catch(() => undefined);
  const blocking = (worker as unknown as { blockingConnection?: { disconnect(): Promise<void> } }).blockingConnection;
  await blocking?.disconnect().catch(() => undefined);
}

/**
 * Quiets what BullMQ leaves of a `worker` closed while it was starting, which would outlive 'stopped':
 * - a pass of its stalled-job check still in flight at close() arms the next wait, one stalledInterval
 *   (--lock-seconds), only after close() returned, and that timer alone keeps the process alive that long;
 *   each wait armed from now on ends at once;
 * - a connection closed while still being made reports its failure after close() took its listeners away,
 *   and that unheard 'error' would end the process with code 1; the worker is closed, so it is moot.
 */
function quietClosed(worker: Worker): void {
  const w = worker as unknown as {
    stalledCheckStopper?: () => void;
    connection?: EventEmitter;
    blockingConnection?: EventEmitter;
  };
  w.stalledCheckStopper?.();
  Object.defineProperty(w, 'stalledCheckStopper', {
    configurable: true,
    get: () => undefined,
    set: (stopper: () => void) => stopper(),
  });
  for (const connection of [w.connection, w.blockingConnection]) connection?.on('error', () => undefined);
}

/**
 * What a worker says when Redis is lost or refuses it: it stores nothing itself (the index run does), and
 * a job it held is taken again once Redis is back, so it loses nothing and only needs starting again.
 */
const WORKER: RedisUser = {
  name: 'the worker',
  unreachable:
    'the worker stopped, and nothing is lost: the index run stores the vectors, and a job this worker held is ' +
    'taken again once Redis is back — start redis-server there (or fix --queue) and start the worker again.',
  refused:
    'nothing is lost (the index run stores the vectors, and a job this worker held is taken again), so start ' +
    'the worker again once it is fixed.',
};

/** How long a job whose run is not running waits before a worker looks at it again. */
const ORPHAN_WAIT_MS = 2000;

export interface WorkerSummary {
  jobs: number;
  documents: number;
}

/**
 * Runs until `stop` resolves; rejects when it must stop: a QueueError (another model, Redis lost), or the
 * error that kept the model from opening.
 */
export async function runIndexWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const watchdog = new RedisWatchdog(o.target, o.waitMs, WORKER);
  const summary: WorkerSummary = { jobs: 0, documents: 0 };
  // a stop while Redis is out of reach has no job to finish: it ends the wait at once
  if (!(await watchdog.reachable(o.stop))) return summary;
  watchdog.watch();
  let model: { key: string; backend: EmbeddingBackend } | undefined;
  let refusal: Error | undefined;
  let refused!: () => void;
  const refusedNow = new Promise<void>((r) => (refused = r));

  const backendFor = async (m: JobModel): Promise<EmbeddingBackend> => {
    const key = JSON.stringify([m.maxLength, m.templates, m.batchTokens]);
    if (model?.key === key) return model.backend;
    await model?.backend.close?.();
    model = undefined;
    model = { key, backend: await o.openModel(m) };
    return model.backend;
  };

  /**
   * What fails every job alike here (a model that cannot open, another model, a failed GPU): the job goes
   * back to the queue untouched for another worker, and this one stops, saying `why`.
   */
  const giveBack = async (job: Job, token: string | undefined, why: Error): Promise<never> => {
    await job.moveToDelayed(Date.now() + 1000, token);
    refusal = why;
    refused();
    throw new DelayedError();
  };

  // jobs in `handle`: a worker that stops with none has nothing to finish, so it need not wait on Redis
  let working = 0;
  // set when the worker stops on a Redis it cannot write to: a force-closed worker's job in hand runs on, and
  // would encode, and say so after the sentence that ended the worker, vectors that cannot be stored (its lock
  // lapses, and the job is taken again)
  let abandoned = false;
  const checkNotAbandoned = (job: Job): void => {
    if (abandoned) throw new Error(`job ${job.id} left: this worker stopped`);
  };
  let orphanSaid = false;
  let runs: RunWatch | undefined;
  const handle = async (job: Job, token?: string): Promise<IndexJobResult> => {
    working++;
    try {
      return await take(job, token);
    } finally {
      working--;
    }
  };
  const take = async (job: Job, token?: string): Promise<IndexJobResult> => {
    let data: IndexJobData;
    try {
      data = readJob(job.data);
    } catch (e) {
      const why = `job ${job.id} of queue '${o.queueName}' is dead-lettered: ${(e as Error).message}`;
      o.log(why);
      throw new UnrecoverableError(why);
    }
    runs ??= new RunWatch(await worker.client, o.queueName);
    if (!(await runs.running(data.run))) {
      // its coordinator is gone (killed, or Redis lost its hold for a moment): vectors nobody stores would
      // only fill Redis, so the job waits for its run to come back, or for the next run to clear the queue
      if (!orphanSaid) o.log(`job ${job.id}: the index run that queued it is not running; the job waits for it.`);
      orphanSaid = true;
      await job.moveToDelayed(Date.now() + ORPHAN_WAIT_MS, token);
      throw new DelayedError();
    }
    orphanSaid = false;
    let backend: EmbeddingBackend;
    try {
      backend = await backendFor(data.model);
    } catch (e) {
      // a model that cannot be opened here (its device, its folder)
      return giveBack(job, token, e instanceof Error ? e : new Error(String(e)));
    }
    const why = modelMismatch(data.model, {
      id: backend.modelId,
      dimension: backend.dimension,
      maxLength: backend.maxLength,
      templates: backend.templates,
    });
    if (why) {
      const refusedJob = `refused job ${job.id} of queue '${o.queueName}': ${why} (--model ${o.modelLabel})`;
      return giveBack(
        job,
        token,
        new QueueError(`${refusedJob}; start the worker with the model the index was built with.`),
      );
    }
    checkNotAbandoned(job);
    o.log(`job ${job.id}: encoding ${data.texts.length} documents`);
    const t0 = performance.now();
    let encoded: { vectors: Float32Array[]; truncated: number };
    try {
      encoded = backend.encodeDocuments
        ? await backend.encodeDocuments(data.texts)
        : { vectors: await backend.embedDocuments(data.texts), truncated: 0 };
    } catch (e) {
      const failed = deviceFailure(e);
      if (!failed) throw e;
      // a failed GPU would fail every job, each retried here until dead-lettered
      return giveBack(
        job,
        token,
        new QueueError(
          `${failed.message}; job ${job.id} of queue '${o.queueName}' went back to the queue untouched, for ` +
            'another worker, and this worker stopped: start it again once its GPU works, or with --device cpu.',
        ),
      );
    }
    const encodeMs = performance.now() - t0;
    checkNotAbandoned(job);
    summary.jobs++;
    summary.documents += data.texts.length;
    o.log(`job ${job.id}: done in ${encodeMs.toFixed(0)} ms`);
    return makeResult(encoded.vectors, backend.dimension, encoded.truncated, encodeMs);
  };

  const worker = new Worker(o.queueName, handle, {
    connection: o.target.options,
    concurrency: 1,
    lockDuration: o.lockMs,
    stalledInterval: o.lockMs,
    // a job is taken again after each stall (a killed worker); only a job that keeps killing workers fails
    maxStalledCount: 5,
    // run once its connections are up: a worker stopped sooner has nothing to finish, so nothing is started
    autorun: false,
  });
  // connection trouble: the watchdog decides when it is fatal; a refusal (Redis full, read-only) is at once
  worker.on('error', (e) => void watchdog.refused(e));
  let healthy = false;
  try {
    // said once BullMQ's own connections are up, not merely the watchdog's; a connection that fails is the
    // watchdog's to judge, so its rejection is not one more error here
    const ready = worker.waitUntilReady().then(
      () => 'ready' as const,
      () => 'failed' as const,
    );
    if ((await Promise.race([ready, o.stop, refusedNow, watchdog.lost])) === 'ready') {
      worker.run().catch((e: unknown) => void watchdog.refused(e));
      o.log(`waiting for jobs on ${o.target.shown} (queue ${o.queueName})`);
    }
    await Promise.race([o.stop, refusedNow, watchdog.lost]);
    if (refusal) throw refusal;
    healthy = true;
    return summary;
  } finally {
    watchdog.close();
    // a job in hand on a Redis that still takes writes is finished and handed back, however long it takes;
    // otherwise nothing waits
    if (healthy && !watchdog.down && working > 0) await worker.close(false);
    else {
      abandoned = true;
      await closeWithin(worker);
    }
    quietClosed(worker);
    await model?.backend.close?.();
  }
}
