/**
 * A worker whose Redis cannot be reached says 'waiting for jobs' only once Redis answers, and when it gives
 * up says what a worker loses (nothing: the index run stores the vectors) and to start it again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCliAsync } from '../helpers/cli.js';
import { RedisServer, freePort } from '../helpers/redis.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { CliProcess } from '../helpers/cli-process.js';

let work: { dir: string; cleanup: () => void };
let model = '';

before(async () => {
  work = tempDir('worker-unreachable');
  model = await tinyModelDir(work.dir, 7);
});

after(() => work.cleanup());

test('a worker that cannot reach Redis never says it waits for jobs, and ends with a sentence of its own', async () => {
  const nowhere = `redis://127.0.0.1:${await freePort()}`;
  const w = await runCliAsync(['worker', '--queue', nowhere, '--queue-wait', '1', '--model', model]);
  assert.equal(w.status, 2, w.stderr);
  assert.doesNotMatch(w.stderr, /waiting for jobs/);
  assert.equal(
    w.stderr.trim().replace(/:\d+ \(\w+\)/, ':PORT (WHY)'),
    'search-r3: cannot reach Redis at redis://127.0.0.1:PORT (WHY) after 1 s of retries; the worker stopped, ' +
      'and nothing is lost: the index run stores the vectors, and a job this worker held is taken again once ' +
      'Redis is back — start redis-server there (or fix --queue) and start the worker again.',
  );
});

test('a worker whose Redis answers says it waits for jobs, naming the queue', async () => {
  const redis = await RedisServer.start();
  const w = new CliProcess(['worker', '--queue', redis.url, '--model', model, '--queue-name', 'elsewhere']);
  try {
    await w.waitFor(/search-r3 worker: waiting for jobs on redis:\/\/127\.0\.0\.1:\d+ \(queue elsewhere\)/);
  } finally {
    // said once its connections are up: SIGTERM then finds a worker that stops at once
    assert.equal(await w.stop(), 0, w.output);
    await redis.stop();
  }
});
