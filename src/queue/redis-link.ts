/**
 * How the coordinator and the workers reach Redis: the --queue URL as connection options, and a watchdog
 * that tells a short outage (Redis restarted, a network blip: BullMQ's own connections reconnect and the
 * run goes on) from a lost one (still unreachable after the allowed wait: one sentence, and the caller
 * stops, saying what became of its work).
 */
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import { QueueError } from './queue-error.js';

/** Reconnect delays grow from 100 ms to 2 s: quick after a restart, gentle on a Redis that stays down. */
export function backoffMs(attempt: number): number {
  return Math.min(2000, 100 * 2 ** Math.max(0, attempt - 1));
}

/**
 * What to do about each refusal Redis answers whatever the wait: retrying a wrong password, a read-only
 * replica or a full Redis only postpones the same answer, and "start redis-server" would be wrong advice.
 */
const REFUSALS: readonly [RegExp, string][] = [
  [
    /^(NOAUTH|WRONGPASS)\b|invalid password/i,
    'give its password in the URL: redis://:<password>@host:port (redis://<user>:<password>@host:port for an ACL user)',
  ],
  [/^NOPERM\b/, "give a Redis user that may run BullMQ's scripts on the keys bull:* and search-r3:*"],
  [/^READONLY\b/, 'point --queue at the primary: this is a read-only replica'],
  [/^OOM\b/, "raise Redis's maxmemory (and set maxmemory-policy noeviction, which BullMQ needs)"],
  [/^MISCONF\b/, 'Redis cannot save its snapshot to disk and stopped taking writes: fix its disk (see its log)'],
  // ioredis goes on in database 0 when its SELECT is refused: the run would use another database than the one named
  [
    /^ERR DB index is out of range/,
    "give a database Redis has in --queue's /<db> (0 to its 'databases' setting less 1: 0 to 15 by default)",
  ],
];

/**
 * Who watches Redis, in its sentences: the coordinator and a worker lose different things when they stop
 * (the coordinator keeps what it stored; a worker stores nothing, and its job goes to another worker).
 */
export interface RedisUser {
  /** Who Redis refused: 'the index run'. */
  name: string;
  /** Said after 'after N s of retries; ' when Redis stays unreachable: who stopped, what is kept, what to do. */
  unreachable: string;
  /** Said after a refusal's fix: what is kept, and what to do once it is fixed. */
  refused: string;
}

/** The sentence for an answer of Redis that no retry changes (see REFUSALS); null for any other error. */
function redisRefusal(e: unknown, shown: string, user: RedisUser): QueueError | null {
  const message = e instanceof Error ? e.message : '';
  const found = REFUSALS.find(([re]) => re.test(message));
  if (!found) return null;
  return new QueueError(
    `Redis at ${shown} refused ${user.name} (${message.split(/\. |\n/)[0].replace(/\.$/, '')}): ${found[1]}; ` +
      user.refused,
  );
}

export interface RedisTarget {
  /** The URL without its password, for messages. */
  shown: string;
  options: RedisOptions;
}

export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new QueueError(`--queue must be a Redis URL such as redis://127.0.0.1:6379 (got '${url}').`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new QueueError(`--queue must be a redis:// or rediss:// URL (got '${url}').`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new QueueError(`--queue: '${u.pathname.slice(1)}' is not a Redis database number.`);
  const shown = `${u.protocol}//${u.hostname}:${u.port || 6379}${db ? `/${db}` : ''}`;
  const options: RedisOptions = {
    host: u.hostname,
    port: Number(u.port || 6379),
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // BullMQ's blocking commands must wait out a reconnect rather than fail
    maxRetriesPerRequest: null,
    retryStrategy: backoffMs,
    // how long a connection dropped by disconnect() has to close before it is destroyed: ioredis waits so even
    // for one already closed (between reconnects to a Redis that is gone), and its 2 s would hold a stopping run
    disconnectTimeout: 100,
  };
  return { shown, options };
}

/**
 * Pings Redis once a second on a connection of its own. `lost` rejects with a QueueError once Redis has
 * been unreachable for `waitMs` in a row; race long awaits against it so that nothing hangs on a Redis
 * that is gone.
 */
export class RedisWatchdog {
  readonly lost: Promise<never>;
  private readonly client: Redis;
  private timer: NodeJS.Timeout | undefined;
  private downSince: number | null = null;
  private lastError = '';
  private cause = '';
  private refusal: QueueError | null = null;
  private fail!: (e: QueueError) => void;

  constructor(
    private readonly target: RedisTarget,
    private readonly waitMs: number,
    private readonly user: RedisUser,
  ) {
    this.client = new Redis({
      ...target.options,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      // each ping connects again itself: a reconnect loop here would keep a failed ping from returning
      retryStrategy: () => null,
    });
    // the 'error' event names the cause (ECONNREFUSED); a failed connect() only says the connection closed
    this.client.on('error', (e: Error) => {
      this.cause = (e as NodeJS.ErrnoException).code ?? e.message;
      this.refusal ??= redisRefusal(e, target.shown, user);
    });
    this.lost = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.lost.catch(() => undefined);
  }

  /**
   * Waits (with backoff) until Redis answers and takes a write (true), or throws the sentence after `waitMs`; at
   * once for a refusal (a password, a read-only replica, a full Redis), before BullMQ meets it in the middle
   * of its own loops. False when `stop` resolves first (a worker asked to stop while it waits for Redis).
   */
  async reachable(stop?: Promise<void>): Promise<boolean> {
    const start = Date.now();
    let stopped = false;
    void stop?.then(() => (stopped = true));
    for (let attempt = 1; ; attempt++) {
      // a refusal may come with an answer: the connection's SELECT of the URL's database, refused, is only an event
      if ((await this.ping()) && (await this.writes()) && !this.refusal) return true;
      const fatal = this.refusal ?? (Date.now() - start >= this.waitMs ? this.sentence() : null);
      // the caller stops: a connection left open would keep its process from exiting
      if (fatal || stopped) this.hangUp();
      if (fatal) throw fatal;
      if (stopped) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise((r) => (timer = setTimeout(r, backoffMs(attempt)))),
        stop ?? new Promise(() => {}),
      ]);
      clearTimeout(timer);
      if (stopped) {
        this.hangUp();
        return false;
      }
    }
  }

  /**
   * Starts watching: `lost` rejects after `waitMs` of failed pings, and at once when Redis starts refusing
   * mid-run (it filled up to its maxmemory, failed over to a read-only replica, cannot save its snapshot):
   * each tick also tries a write, so a caller that is only waiting (for workers, for jobs) hears of it too.
   */
  watch(): void {
    this.timer = setInterval(() => {
      void this.ping().then(async (ok) => {
        if (ok) {
          this.downSince = null;
          await this.writes();
        } else if (this.downSince === null) this.downSince = Date.now();
        else if (Date.now() - this.downSince >= this.waitMs) this.fail(this.sentence());
        if (this.refusal) this.fail(this.refusal);
      });
    }, 1000);
    this.timer.unref();
  }

  /**
   * The sentence when `e` is an answer of Redis that no retry changes (see REFUSALS), met by a command of
   * the caller's own mid-run; `lost` rejects with it too, so every wait raced against it ends. Null (and
   * nothing stops) for any other error.
   */
  refused(e: unknown): QueueError | null {
    this.refusal ??= redisRefusal(e, this.target.shown, this.user);
    if (this.refusal) this.fail(this.refusal);
    return this.refusal;
  }

  /** Whether Redis answered the last ping (false while it is restarting). */
  get down(): boolean {
    return this.downSince !== null;
  }

  private async ping(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2000);
    });
    try {
      const answer = async (): Promise<void> => {
        if (this.client.status === 'wait' || this.client.status === 'end') await this.client.connect();
        await this.client.ping();
      };
      await Promise.race([answer(), late]);
      this.cause = '';
      return true;
    } catch (e) {
      this.lastError = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      this.refusal ??= redisRefusal(e, this.target.shown, this.user);
      this.hangUp();
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether Redis takes a write: a key of this process's own, gone a second later. */
  private async writes(): Promise<boolean> {
    try {
      await this.client.set(`search-r3:probe:${hostname()}:${process.pid}`, '1', 'PX', 1000);
      return true;
    } catch (e) {
      this.lastError = (e as Error).message;
      this.refusal ??= redisRefusal(e, this.target.shown, this.user);
      return false;
    }
  }

  private sentence(): QueueError {
    const secs = Math.round(this.waitMs / 1000);
    const why = this.cause || this.lastError || 'no answer';
    return new QueueError(
      `cannot reach Redis at ${this.target.shown} (${why}) after ${secs} s of retries; ${this.user.unreachable}`,
    );
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.hangUp();
  }

  /**
   * Closes the connection unless it has ended (this client never reconnects by itself: each ping connects).
   * ioredis's disconnect() arms a timer (2 s) that only its socket's 'close' clears, so on a connection that has
   * ended it would keep a process that stops, on a Redis that refused it or is gone, alive 2 s for nothing.
   */
  private hangUp(): void {
    if (this.client.status !== 'end') this.client.disconnect();
  }
}
