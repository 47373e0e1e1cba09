/**
 * One index run per queue name at a time. A run starts by clearing what an earlier, stopped run left on
 * its queue, and it drops results that are not its own; two runs on one queue would remove each other's
 * jobs. So a run holds a key in Redis while it lives, renewed several times a second with a short expiry: a
 * run that was killed frees its queue within the expiry (at once for a rerun on the same machine and in
 * the same PID namespace, which can see that the holder's process is gone), one that is alive keeps it.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { pidNamespace, processRuns } from '../io/process-runs.js';
import { settledWithin } from '../io/settled-within.js';
import { QueueError } from './queue-error.js';

/** How long the hold outlives its last renewal. */
const HOLD_MS = 15_000;

/**
 * How often a run renews its hold. A worker takes a run's jobs once it has seen the hold renewed (a killed
 * run's hold stays for up to HOLD_MS), so this is how long a worker may wait before its first job of a run.
 */
const BEAT_MS = 250;

export interface QueueHolder {
  run: string;
  host: string;
  pid: number;
  /**
   * The PID namespace `pid` belongs to (see pidNamespace); absent where it could not be read, and in a hold
   * an older search-r3 wrote.
   */
  pidns?: string;
  since: string;
  /** Counts renewals: a holder whose count moves is alive. */
  beat: number;
  /** How long the hold outlives a renewal (absent in a hold an older search-r3 wrote: HOLD_MS). */
  holdMs?: number;
}

// sets the hold when it is free or already this run's; otherwise answers the holder's value
const TAKE = `local v = redis.call('GET', KEYS[1])
if v then
  local ok, h = pcall(cjson.decode, v)
  if not ok or type(h) ~= 'table' or h.run ~= ARGV[1] then return v end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false`;

// frees the hold only when it is still this run's
const FREE = `local v = redis.call('GET', KEYS[1])
if v then
  local ok, h = pcall(cjson.decode, v)
  if ok and type(h) == 'table' and h.run == ARGV[1] then redis.call('DEL', KEYS[1]) end
end
return 0`;

/** The key outside BullMQ's own (bull:<name>:…), so that clearing the queue leaves the hold. */
export function holdKey(queueName: string): string {
  return `search-r3:index-run:${queueName}`;
}

export interface QueueHoldOptions {
  queueName: string;
  /** The Redis URL without its password, for messages. */
  shown: string;
  run: string;
  holdMs?: number;
  log?(line: string): void;
}

export class QueueHold {
  /** Rejects with the sentence when another run took the queue while this one could not renew its hold. */
  readonly lost: Promise<never>;
  private readonly me: QueueHolder;
  private readonly holdMs: number;
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private fail!: (e: QueueError) => void;

  private constructor(
    private readonly client: Redis,
    private readonly o: QueueHoldOptions,
  ) {
    this.holdMs = o.holdMs ?? HOLD_MS;
    const since = new Date().toISOString();
    const me = { run: o.run, host: hostname(), pid: process.pid, pidns: pidNamespace() };
    this.me = { ...me, since, beat: 0, holdMs: this.holdMs };
    this.lost = new Promise<never>((_, reject) => (this.fail = reject));
    this.lost.catch(() => undefined);
  }

  /**
   * Takes the queue, waiting out the hold of a run that stopped without freeing it; throws the sentence
   * when a live run holds it (its process is seen on this machine in this PID namespace, or its renewals
   * move).
   */
  static async take(client: Redis, o: QueueHoldOptions): Promise<QueueHold> {
    const hold = new QueueHold(client, o);
    let first: QueueHolder | null = null;
    for (;;) {
      const other = await hold.tryTake();
      if (other === null) break;
      if (first === null) first = other;
      const alive = processAlive(other);
      if (other.run !== first.run || other.beat !== first.beat || alive === true)
        throw new QueueError(
          `queue '${o.queueName}' on ${o.shown} is in use by another index run (${describe(other)}); two runs ` +
            `on one queue would remove each other's jobs. Wait for it to finish, or give this run its own ` +
            `--queue-name and start its workers with the same one.`,
        );
      if (alive === false) {
        await client.eval(FREE, 1, holdKey(o.queueName), other.run);
        continue;
      }
      if (other === first)
        o.log?.(
          `queue '${o.queueName}' is held by an index run that has not renewed its hold (${describe(other)}); ` +
            `waiting up to ${Math.round(hold.holdMs / 1000)} s for it to lapse.`,
        );
      await new Promise((r) => setTimeout(r, Math.min(1000, hold.holdMs / 5)));
    }
    hold.timer = setInterval(() => void hold.renew(), Math.min(BEAT_MS, hold.holdMs / 5));
    hold.timer.unref();
    return hold;
  }

  /**
   * Frees the queue for the next run (only if this run still holds it). Waits at most `waitMs`: a run that
   * stops because Redis is gone must not hang on it (0 there: it is known not to answer); its hold lapses by
   * itself.
   */
  async free(waitMs = 2000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await settledWithin(this.client.eval(FREE, 1, holdKey(this.o.queueName), this.o.run), waitMs);
  }

  /** The holder when another run holds the queue; null when this run now holds it. */
  private async tryTake(): Promise<QueueHolder | null> {
    const key = holdKey(this.o.queueName);
    const v = await this.client.eval(TAKE, 1, key, this.me.run, JSON.stringify(this.me), this.holdMs);
    return typeof v === 'string' ? parseHolder(v, key) : null;
  }

  private async renew(): Promise<void> {
    if (this.renewing) return; // a renewal waiting out a Redis restart is still pending
    this.renewing = true;
    try {
      this.me.beat++;
      const other = await this.tryTake();
      if (other !== null) {
        clearInterval(this.timer);
        this.fail(
          new QueueError(
            `another index run took queue '${this.o.queueName}' on ${this.o.shown} (${describe(other)}) while ` +
              `this run could not renew its hold on it (Redis was unreachable or lost its data); this run ` +
              `stopped with everything already stored kept — run the same command again once the other is done.`,
          ),
        );
      }
    } catch {
      // Redis is restarting: the watchdog decides when that is fatal, and the next renewal sets the hold again
    } finally {
      this.renewing = false;
    }
  }
}

/**
 * Tells a worker whether the run that queued a job is running: while its hold exists and its beat moves.
 * The holder's process id proves nothing to a worker: one in another PID namespace (a container sharing the
 * host's hostname, a Kubernetes pod with hostNetwork) has the coordinator's hostname yet cannot see its
 * process. A beat that has not moved for half the hold's life is a run that stopped.
 */
export class RunWatch {
  /** The holder's beat as this worker last saw it, when it saw it change, and whether it ever saw it move. */
  private seen: { run: string; beat: number; at: number; moved: boolean } | undefined;

  constructor(
    private readonly client: Pick<Redis, 'get'>,
    private readonly queueName: string,
  ) {}

  /**
   * Whether `run` holds the queue and lives. A run whose beat this worker has not yet seen move is watched
   * until it moves (one renewal) or stalls (half the hold's life): a coordinator killed moments ago still
   * has a hold.
   */
  async running(run: string): Promise<boolean> {
    for (;;) {
      const v = await this.client.get(holdKey(this.queueName));
      if (v === null) return false;
      const h = parseHolder(v, holdKey(this.queueName));
      if (h.run !== run) return false;
      const now = performance.now();
      if (this.seen?.run !== h.run) this.seen = { run: h.run, beat: h.beat, at: now, moved: false };
      else if (this.seen.beat !== h.beat) this.seen = { run: h.run, beat: h.beat, at: now, moved: true };
      const stallMs = (h.holdMs ?? HOLD_MS) / 2;
      if (now - this.seen.at >= stallMs) return false;
      if (this.seen.moved) return true;
      await new Promise((r) => setTimeout(r, Math.min(BEAT_MS / 5, stallMs / 4)));
    }
  }
}

function describe(h: QueueHolder): string {
  const elsewhere = h.host === hostname() && h.pidns !== undefined && h.pidns !== pidNamespace();
  return `pid ${h.pid} on ${h.host}${elsewhere ? ` in PID namespace ${h.pidns}` : ''}, since ${h.since}`;
}

/**
 * Whether the holder's process lives: known only on its own machine and in its own PID namespace (undefined
 * elsewhere, and for a hold that does not name its namespace). A hostname alone is not enough: a container
 * sharing the host's hostname cannot see the host's processes, so a live holder there would look gone.
 */
function processAlive(h: QueueHolder): boolean | undefined {
  const ours = h.host === hostname() && h.pidns !== undefined && h.pidns === pidNamespace();
  return ours ? processRuns(h.pid) : undefined;
}

/** The holder a hold key names, or one sentence when something other than search-r3 wrote that key. */
function parseHolder(v: string, key: string): QueueHolder {
  let h: unknown;
  try {
    h = JSON.parse(v);
  } catch {
    h = null;
  }
  const o = h as Partial<QueueHolder> | null;
  if (typeof o?.run === 'string' && typeof o.beat === 'number') return o as QueueHolder;
  throw new QueueError(
    `Redis key '${key}' holds ${JSON.stringify(v.slice(0, 60))}, not an index run's hold: another program wrote it; ` +
      `delete it (redis-cli DEL ${key}) once no index run uses this queue`,
  );
}
