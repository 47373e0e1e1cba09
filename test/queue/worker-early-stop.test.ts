/**
 * A worker stopped while BullMQ's connections are still being made (SIGTERM or Ctrl-C right after it
 * starts, or on a slow network) exits at once with a clean stop, rather than after --lock-seconds or with a
 * stack trace.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { CliProcess } from '../helpers/cli-process.js';

let work: { dir: string; cleanup: () => void };
let model = '';

before(async () => {
  work = tempDir('worker-early-stop');
  model = await tinyModelDir(work.dir, 7);
});

after(() => work.cleanup());

/**
 * A path to `redis` that carries only the first connection (the worker's watchdog, which connects first)
 * and leaves every later one (BullMQ's) connected but unanswered: a worker held in the moment between
 * reaching Redis and being ready, for as long as the test needs.
 */
async function firstConnectionOnly(redis: RedisServer): Promise<{ url: string; held: number; close(): void }> {
  const sockets: net.Socket[] = [];
  const path = { url: '', held: 0, close: () => (server.close(), sockets.forEach((s) => s.destroy())) };
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    // read, so that the worker closing its end closes it here too
    if (sockets.length > 1) return void (path.held++, socket.resume());
    const upstream = net.connect(redis.port, '127.0.0.1');
    sockets.push(upstream);
    upstream.on('error', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  path.url = `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return path;
}

test('a worker given SIGTERM while its queue connections are being made stops at once, with code 0', async () => {
  const redis = await RedisServer.start();
  const path = await firstConnectionOnly(redis);
  // the default --lock-seconds (30): BullMQ's stalled-job check could outlive the stop by that long
  const w = new CliProcess(['worker', '--queue', path.url, '--model', model]);
  try {
    // BullMQ connects once the watchdog has reached Redis, after the SIGTERM handler is in place
    await until(
      () => path.held > 0,
      60_000,
      () => `the worker never opened its queue connections; output:\n${w.output}`,
    );
    assert.equal(await w.stop(10_000), 0, w.output);
    assert.doesNotMatch(w.output, /waiting for jobs/);
    assert.match(w.output, /SIGTERM: stopping, after the job under way if there is one\.\.\.\n.*stopped after 0 jobs/);
  } finally {
    path.close();
    await redis.stop();
  }
});

test('a worker stopped while Redis is out of reach stops at once, not after --queue-wait', async () => {
  // a port nothing listens on: the worker retries until --queue-wait (60 s) before it gives up
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const w = new CliProcess(['worker', '--queue', `redis://127.0.0.1:${port}`, '--model', model]);
  // long enough for the worker to be in its wait for Redis (it starts in well under a second)
  await new Promise((r) => setTimeout(r, 3000));
  const t0 = Date.now();
  assert.equal(await w.stop(10_000), 0, w.output);
  assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
  assert.doesNotMatch(w.output, /cannot reach Redis/);
  assert.match(w.output, /stopped after 0 jobs \(0 documents\)\.\n$/);
});
