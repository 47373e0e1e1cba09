/**
 * One index run per queue name at a time. A run starts by clearing what an earlier, stopped run left on
 * its queue, and it drops results that are not its own; two runs on one queue would remove each other's
 * jobs. So a run holds a key in Redis while it lives, renewed every few seconds with a short expiry: a
 * run that was killed frees its queue within the expiry (at once for a rerun on the same machine, which
 * can see that the holder's process is gone), one that is alive keeps it.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { processRuns } from '../io/process-runs.js';
import { QueueError } from './queue-error.js';

/** How long the hold outlives its last renewal. */
const HOLD_MS = 15_000;

export interface QueueHolder {
  run: string;
  host: string;
  pid: number;
  since: string;
  /** Counts renewals: a holder whose count moves is alive. */
  beat: number;
}

// sets the hold when it is free or already this run's; otherwise answers the holder's value
const TAKE = `local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).run ~= ARGV[1] then return v end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false`;

// frees the hold only when it is still this run's
const FREE = `local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).run == ARGV[1] then redis.call('DEL', KEYS[1]) end
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
    this.me = { run: o.run, host: hostname(), pid: process.pid, since: new Date().toISOString(), beat: 0 };
    this.lost = new Promise<never>((_, reject) => (this.fail = reject));
    this.lost.catch(() => undefined);
  }

  /**
   * Takes the queue, waiting out the hold of a run that stopped without freeing it; throws the sentence
   * when a live run holds it (its process is seen on this machine, or its renewals move).
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
    hold.timer = setInterval(() => void hold.renew(), hold.holdMs / 5);
    hold.timer.unref();
    return hold;
  }

  /**
   * Frees the queue for the next run (only if this run still holds it). Waits at most 2 s: a run that
   * stops because Redis is gone must not hang on it; its hold lapses by itself.
   */
  async free(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, 2000)));
    await Promise.race([this.client.eval(FREE, 1, holdKey(this.o.queueName), this.o.run), late]);
    clearTimeout(timer);
  }

  /** The holder when another run holds the queue; null when this run now holds it. */
  private async tryTake(): Promise<QueueHolder | null> {
    const key = holdKey(this.o.queueName);
    const v = await this.client.eval(TAKE, 1, key, this.me.run, JSON.stringify(this.me), this.holdMs);
    return typeof v === 'string' ? (JSON.parse(v) as QueueHolder) : null;
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
 * The run that holds the queue and lives: null when no run holds it, or its holder's process is seen gone
 * on this machine (a coordinator killed; its hold lapses within 15 s on other machines).
 */
export async function liveRun(client: Pick<Redis, 'get'>, queueName: string): Promise<string | null> {
  const v = await client.get(holdKey(queueName));
  if (v === null) return null;
  const holder = JSON.parse(v) as QueueHolder;
  return processAlive(holder) === false ? null : holder.run;
}

function describe(h: QueueHolder): string {
  return `pid ${h.pid} on ${h.host}, since ${h.since}`;
}

/** Whether the holder's process lives: known only on its own machine (undefined elsewhere). */
function processAlive(h: QueueHolder): boolean | undefined {
  return h.host === hostname() ? processRuns(h.pid) : undefined;
}
