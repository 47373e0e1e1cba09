/**
 * ioredis reads Redis's replies with redis-parser, which keeps one buffer pool for the whole process: a reply
 * larger than the pool (a job's texts, its vectors) grows it, and an interval of redis-parser's own then shrinks
 * it every 50 ms until it is under 50 KiB, seconds after the last large reply. No connection owns that interval,
 * so closing every connection leaves it running, and it alone keeps a command that has finished (an index run
 * that printed its summary, a worker that stopped) from exiting. Shrinking the pool serves a process that goes
 * on; it is no reason to keep one alive.
 */

/** The name of redis-parser's (3.x) function that shrinks its pool, which its interval calls. */
const SHRINK = 'decreaseBufferPool';

let done = false;

/**
 * Makes redis-parser's pool-shrinking interval, from now on, one that does not keep the process alive (it is
 * unref'd as it is set). redis-parser sets it with the global setInterval and keeps it to itself, so that is
 * where it is caught; every other interval is set as before.
 */
export function unrefParserPoolShrink(): void {
  if (done) return;
  done = true;
  const set = globalThis.setInterval;
  const unheld = (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
    const timer = set(callback, ms, ...args);
    if (callback.name === SHRINK) timer.unref();
    return timer;
  };
  globalThis.setInterval = Object.assign(unheld, set) as typeof setInterval;
}
