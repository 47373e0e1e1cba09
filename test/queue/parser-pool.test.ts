/**
 * A process that read a large reply from Redis (a job's texts or vectors) and closed its connections is left
 * with nothing of ioredis's that keeps it alive: an index run exits once it has printed its summary, a worker
 * once it has stopped.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { unrefParserPoolShrink } from '../../src/queue/parser-pool.js';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

let redis: RedisServer;

before(async () => {
  redis = await RedisServer.start();
});

after(() => redis.stop());

/** How many resources of `kind` ('Timeout', 'TCPSocketWrap') keep this process alive now. */
const alive = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length;

test('a large reply read and its connection closed, no timer of the reading keeps the process alive', async () => {
  unrefParserPoolShrink();
  const [sockets, timers] = [alive('TCPSocketWrap'), alive('Timeout')];
  const client = new Redis({ host: '127.0.0.1', port: redis.port });
  // far larger than one read from the socket (64 KiB): the parser grows its pool to put the reply together
  const large = 'x'.repeat(1 << 20);
  await client.set('large', large);
  assert.equal(await client.get('large'), large);
  await client.quit();
  await until(
    () => alive('TCPSocketWrap') <= sockets,
    10_000,
    () => 'the connection to Redis stays open',
  );
  assert.equal(alive('Timeout'), timers, 'timers left armed');
});
