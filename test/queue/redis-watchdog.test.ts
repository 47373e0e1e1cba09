/**
 * A watchdog that gives up on Redis (it refuses, or nobody answers) leaves nothing behind that keeps its
 * process alive: the index run or worker it served exits as soon as it has said why, not seconds later.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisWatchdog, parseRedisUrl } from '../../src/queue/redis-link.js';
import { RedisServer, freePort } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

let locked: RedisServer;

before(async () => {
  locked = await RedisServer.start(['--requirepass', 'sekret']);
});

after(() => locked.stop());

const USER = { name: 'the test', unreachable: 'the test stopped.', refused: 'the test stopped.' };

/** How many resources of `kind` ('Timeout', 'TCPSocketWrap') keep this process alive now. */
const alive = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length;

/** Lets a watchdog on `url` give up, then checks that it left no socket open and no timer armed. */
async function leavesNothing(url: string, sentence: RegExp): Promise<void> {
  const [sockets, timers] = [alive('TCPSocketWrap'), alive('Timeout')];
  const watchdog = new RedisWatchdog(parseRedisUrl(url), 300, USER);
  await assert.rejects(watchdog.reachable(), sentence);
  // a socket being closed closes within moments; what is checked is what stays once it has
  await until(
    () => alive('TCPSocketWrap') <= sockets,
    10_000,
    () => 'a connection to Redis stays open',
  );
  assert.equal(alive('Timeout'), timers, 'timers the watchdog left armed');
}

test('a watchdog refused by Redis (a password it was not given) leaves no timer that keeps its process', () =>
  leavesNothing(locked.url, /refused the test \(NOAUTH /));

test('a watchdog that cannot reach Redis leaves no timer that keeps its process', async () =>
  leavesNothing(`redis://127.0.0.1:${await freePort()}`, /cannot reach Redis at .* \(ECONNREFUSED\)/));
