/**
 * `search-r3 index --queue`: the coordinator of distributed indexing. It stages the documents in the index
 * (docs.sqlite), cuts the pending ones into the chunks a single-process run would encode, queues one job
 * per chunk, and stores each finished job's vectors itself. It is the only writer of the index and its
 * vector store, so every document is stored exactly once whatever the workers do: a chunk is committed
 * the first time its vectors arrive, and a job done twice (its worker was thought dead, or Redis lost the
 * job and it was queued again) is dropped. One run holds a queue name at a time (queue-hold.ts).
 */
import { randomUUID } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { PendingDocument } from '../search-index/document-table.js';
import { documentText } from '../search-index/document-source.js';
import type { SearchIndex } from '../search-index/search-index.js';
import { settledWithin } from '../io/settled-within.js';
import { type IndexJobData, type JobModel, jobId, makeJob, readJob, readResult } from './index-job.js';
import { QueueError } from './queue-error.js';
import { QueueHold } from './queue-hold.js';
import { RedisWatchdog, type RedisTarget, type RedisUser } from './redis-link.js';

export interface QueuedIndexOptions {
  target: RedisTarget;
  queueName: string;
  documentsPerCommit: number;
  /** The embedding batch size workers must use (the index's default when null). */
  batchTokens: number | null;
  /** How long Redis may stay unreachable (at start or mid-run) before the run stops. */
  waitMs: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

export interface DeadJob {
  id: string;
  /** The first and last document ids of its chunk. */
  first: string;
  last: string;
  documents: number;
  reason: string;
}

export interface QueuedIndexResult {
  encoded: number;
  jobs: number;
  truncated: number;
  /** Jobs failed for good (a damaged payload, or a model error on every attempt); their documents stay pending. */
  dead: DeadJob[];
  /** Jobs queued again because Redis no longer had them (it restarted without persistence). */
  requeued: number;
}

/** What the index run says when Redis is lost or refuses it: every chunk it stored stays stored. */
const INDEX_RUN: RedisUser = {
  name: 'the index run',
  unreachable:
    'the index run stopped with everything already stored kept — start redis-server there (or fix --queue) ' +
    'and run the same command again.',
  refused: 'everything already stored is kept, so run the same command again once it is fixed.',
};

const ATTEMPTS = 3;
const POLL_MS = 100;
const RESEED_MS = 2000;
/** How long a run waits with no job in progress and none finished before it says that no worker serves it. */
const IDLE_HINT_MS = 10_000;

export async function indexOnQueue(index: SearchIndex, o: QueuedIndexOptions): Promise<QueuedIndexResult> {
  const chunks = index.pendingChunks(o.documentsPerCommit);
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const result: QueuedIndexResult = { encoded: 0, jobs: chunks.length, truncated: 0, dead: [], requeued: 0 };
  if (chunks.length === 0) return result;
  await index.checkStoreWritable();
  const watchdog = new RedisWatchdog(o.target, o.waitMs, INDEX_RUN);
  await watchdog.reachable();
  watchdog.watch();
  const queue = new Queue(o.queueName, { connection: o.target.options });
  // connection trouble: the watchdog decides when it is fatal; a refusal (Redis full, read-only) is at once
  queue.on('error', (e) => void watchdog.refused(e));
  const holdClient = new Redis(o.target.options);
  holdClient.on('error', () => undefined);
  const run = randomUUID().slice(0, 8);
  let hold: QueueHold | undefined;
  // every Redis call of the run goes through here: a refusal met mid-run becomes the watchdog's sentence
  const guard = <T>(p: Promise<T>): Promise<T> =>
    Promise.race(hold ? [p, watchdog.lost, hold.lost] : [p, watchdog.lost]).catch((e: unknown) =>
      Promise.reject(watchdog.refused(e) ?? e),
    );
  const m = index.info;
  const model: JobModel = {
    id: m.model.id,
    dimension: m.dimension,
    maxLength: m.maxLength,
    templates: m.templates,
    batchTokens: o.batchTokens,
  };
  const jobs = chunks.map((c, i) =>
    makeJob(
      run,
      i,
      model,
      c.map((d) => d.id),
      c.map(documentText),
    ),
  );
  const open = new Set(chunks.map((_, i) => i));
  const enqueue = (chunk: number): { name: string; data: IndexJobData; opts: object } => ({
    name: 'encode',
    data: jobs[chunk],
    opts: {
      jobId: jobId(run, chunk),
      attempts: ATTEMPTS,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: false,
      removeOnFail: false,
    },
  });
  try {
    // the queue's connection made before anything can refuse the run: BullMQ closing one still being made
    // throws 'Connection is closed' from an event no handler sees
    await guard(queue.waitUntilReady());
    const held = { queueName: o.queueName, shown: o.target.shown, run, log: o.log };
    hold = await guard(QueueHold.take(holdClient, held));
    // jobs of an earlier run of this queue (its coordinator was stopped) would only be dropped: clear them
    await guard(queue.obliterate({ force: true }));
    for (let i = 0; i < chunks.length; i += 500)
      await guard(queue.addBulk(chunks.slice(i, i + 500).map((_, j) => enqueue(i + j))));
    o.onProgress?.(0, total);
    let lastSeed = Date.now();
    const idle = new IdleWatch(Date.now());
    while (open.size > 0) {
      try {
        await guard(collect(index, queue, run, chunks, jobs, open, result, o));
        o.onProgress?.(result.encoded, total);
        if (open.size > 0 && Date.now() - lastSeed >= RESEED_MS) {
          lastSeed = Date.now();
          result.requeued += await guard(reseed(queue, run, open, enqueue));
          const busy = (await guard(queue.getActiveCount())) > 0;
          if (idle.quiet(Date.now(), busy, open.size))
            o.log?.(
              `no worker has taken a job from queue '${o.queueName}' for ${Math.round(IDLE_HINT_MS / 1000)} s; ` +
                `this run waits for one: start 'search-r3 worker --queue ${o.target.shown} --queue-name ` +
                `${o.queueName} --model <the index's model folder>' on a machine that has the model.`,
            );
        }
      } catch (e) {
        if (e instanceof QueueError || (!watchdog.down && !isConnectionError(e))) throw e;
        // Redis is restarting: BullMQ reconnects; the watchdog ends the run if it does not come back
      }
      if (open.size > 0) await guard(new Promise((r) => setTimeout(r, POLL_MS)));
    }
    return result;
  } finally {
    watchdog.close();
    // on a Redis that is gone nothing waits for an answer
    const gone = watchdog.down;
    await hold?.free(gone ? 0 : undefined).catch(() => undefined);
    holdClient.disconnect();
    await closeQueue(queue, gone);
  }
}

/**
 * How long a run that stops gives BullMQ to close its queue: closing sends QUIT and waits for the answer,
 * reconnecting, which a Redis that is gone never gives.
 */
const CLOSE_MS = 5000;

/**
 * Closes the run's queue; on a Redis that is gone (the run stops because of it), or one whose QUIT is not
 * answered within CLOSE_MS, drops its connection instead: the run would otherwise never exit.
 */
async function closeQueue(queue: Queue, redisGone: boolean): Promise<void> {
  if (!redisGone && (await settledWithin(queue.close(), CLOSE_MS))) return;
  // ends its reconnecting; not awaited: it waits for an 'end' that a connection between reconnects never emits
  void queue.disconnect().catch(() => undefined);
}

/** Tells when a run has waited IDLE_HINT_MS with no job in progress and none finished; once per quiet stretch. */
class IdleWatch {
  private open = Infinity;
  private said = false;

  constructor(private since: number) {}

  /** `busy`: a job is in progress; `open`: chunks not stored yet (fewer than last time: one finished). */
  quiet(now: number, busy: boolean, open: number): boolean {
    const moved = busy || open < this.open;
    this.open = open;
    if (moved) {
      this.since = now;
      this.said = false;
      return false;
    }
    if (this.said || now - this.since < IDLE_HINT_MS) return false;
    this.said = true;
    return true;
  }
}

/** Stores the vectors of finished jobs and records failed ones as dead letters. */
async function collect(
  index: SearchIndex,
  queue: Queue,
  run: string,
  chunks: readonly PendingDocument[][],
  jobs: readonly IndexJobData[],
  open: Set<number>,
  result: QueuedIndexResult,
  o: QueuedIndexOptions,
): Promise<void> {
  const mine = (j: Job): number | null => {
    const [r, c] = String(j.id).split('-');
    const chunk = Number(c);
    return r === run && open.has(chunk) ? chunk : null;
  };
  for (const job of await queue.getJobs(['completed'], 0, 199, true)) {
    const chunk = mine(job);
    if (chunk !== null) {
      let stored: ReturnType<typeof readResult>;
      try {
        stored = readResult(job.returnvalue, jobs[chunk]);
      } catch (e) {
        // a damaged result is worth nothing: encode the chunk again
        o.log?.(`job ${job.id}: ${(e as Error).message}; queued again.`);
        await job.remove();
        continue;
      }
      await index.commitEncoded(chunks[chunk], stored.vectors);
      open.delete(chunk);
      result.encoded += chunks[chunk].length;
      result.truncated += stored.r.truncated;
    }
    await job.remove();
  }
  for (const job of await queue.getJobs(['failed'], 0, -1, true)) {
    const chunk = mine(job);
    if (chunk === null) continue;
    open.delete(chunk);
    const docs = chunks[chunk];
    let reason = job.failedReason || 'it failed';
    try {
      readJob(job.data);
    } catch (e) {
      reason = (e as Error).message;
    }
    const dead = {
      id: String(job.id),
      first: docs[0].id,
      last: docs[docs.length - 1].id,
      documents: docs.length,
      reason,
    };
    result.dead.push(dead);
    o.log?.(`job ${dead.id} (documents ${dead.first} … ${dead.last}) is dead-lettered: ${reason}; the rest go on.`);
  }
}

/** Queues again the open chunks whose jobs Redis no longer has; returns how many. */
async function reseed(
  queue: Queue,
  run: string,
  open: ReadonlySet<number>,
  enqueue: (chunk: number) => { name: string; data: IndexJobData; opts: object },
): Promise<number> {
  const counts = await queue.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'completed',
    'failed',
    'prioritized',
    'paused',
  );
  if (Object.values(counts).reduce((a, n) => a + n, 0) >= open.size) return 0;
  let n = 0;
  for (const chunk of open) {
    if (await queue.getJob(jobId(run, chunk))) continue;
    const e = enqueue(chunk);
    await queue.add(e.name, e.data, e.opts);
    n++;
  }
  return n;
}

function isConnectionError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const msg = (e as Error).message ?? '';
  return (
    /^E(CONN|PIPE|HOSTUNREACH|TIMEDOUT)/.test(code) ||
    /Connection is closed|connect|LOADING|Stream isn't writeable/i.test(msg)
  );
}
