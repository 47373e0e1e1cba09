/**
 * The hold that keeps two index runs off one queue, on a real redis-server: a live holder is refused
 * (seen alive on this machine, or by its renewals from another), a stopped one is waited out or taken
 * over, and a run whose hold another took while it could not renew is told so.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { hostname } from 'node:os';
import { pidNamespace } from '../../src/io/process-runs.js';
import { settledWithin } from '../../src/io/settled-within.js';
import { QueueHold, type QueueHolder, RunWatch, holdKey } from '../../src/queue/queue-hold.js';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

let redis: RedisServer;
let client: Redis;

before(async () => {
  redis = await RedisServer.start();
  client = new Redis({ host: '127.0.0.1', port: redis.port });
});

after(async () => {
  client.disconnect();
  await redis.stop();
});

const options = (queueName: string, run: string, log?: (line: string) => void) => ({
  queueName,
  shown: redis.url,
  run,
  holdMs: 1000,
  log,
});

function holder(over: Partial<QueueHolder>): string {
  return JSON.stringify({
    run: 'other',
    host: 'elsewhere',
    pid: 1,
    since: '2026-01-01T00:00:00.000Z',
    beat: 0,
    ...over,
  });
}

test('a run in this process holds the queue; another is refused naming it; freeing lets the next in', async () => {
  const a = await QueueHold.take(client, options('q1', 'run-a'));
  await assert.rejects(QueueHold.take(client, options('q1', 'run-b')), (e: Error) => {
    assert.match(e.message, /^queue 'q1' on redis:\/\/127\.0\.0\.1:\d+ is in use by another index run \(pid \d+ on /);
    return true;
  });
  // a hold of another run is not freed by one that does not have it
  const other = await QueueHold.take(client, options('q1-other', 'run-c'));
  await other.free();
  assert.match((await client.get(holdKey('q1')))!, /"run":"run-a"/);
  await a.free();
  assert.equal(await client.get(holdKey('q1')), null);
  const b = await QueueHold.take(client, options('q1', 'run-b'));
  await b.free();
});

test('a holder on another machine: refused while its renewals move, waited out when they stop', async () => {
  await client.set(holdKey('q2'), holder({ beat: 0 }), 'PX', 1000);
  const beats = beating('q2', {});
  try {
    await assert.rejects(
      QueueHold.take(client, options('q2', 'mine')),
      /is in use by another index run \(pid 1 on elsewhere/,
    );
  } finally {
    clearInterval(beats);
  }
  const lines: string[] = [];
  const t0 = Date.now();
  const mine = await QueueHold.take(
    client,
    options('q2', 'mine', (l) => lines.push(l)),
  );
  assert.ok(Date.now() - t0 >= 500, 'it waited for the hold to lapse');
  assert.match(
    lines.join('\n'),
    /^queue 'q2' is held by an index run that has not renewed its hold .* waiting up to 1 s/,
  );
  assert.match((await client.get(holdKey('q2')))!, /"run":"mine"/);
  await mine.free();
});

/** The id of a process that has exited: not running here. */
function gonePid(): number {
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(gone.stdout.toString());
}

/** Renews the hold of queue `q` as a live holder would: its beat moves every 150 ms. */
function beating(q: string, over: Partial<QueueHolder>): NodeJS.Timeout {
  return setInterval(() => {
    void client.get(holdKey(q)).then((v) => {
      const h = JSON.parse(v!) as QueueHolder;
      return client.set(holdKey(q), holder({ ...over, beat: h.beat + 1 }), 'PX', 1000);
    });
  }, 150);
}

test('a holder on this machine and in this PID namespace whose process is gone is taken over at once', async () => {
  const here = { host: hostname(), pid: gonePid(), pidns: pidNamespace() };
  await client.set(holdKey('q3'), holder(here), 'PX', 60_000);
  const lines: string[] = [];
  const mine = await QueueHold.take(
    client,
    options('q3', 'mine', (l) => lines.push(l)),
  );
  // a wait for the hold to lapse always says so first
  assert.deepEqual(lines, [], 'no wait for a holder that is gone');
  assert.match((await client.get(holdKey('q3')))!, /"pidns":"pid:\[\d+\]"/, 'the hold names its namespace');
  await mine.free();
});

test('a live holder with this hostname in another PID namespace (its pid not running here) is refused', async () => {
  // a coordinator in a container sharing this hostname: its process cannot be seen from here
  const there = { host: hostname(), pid: gonePid(), pidns: 'pid:[1]' };
  await client.set(holdKey('q-ns'), holder(there), 'PX', 1000);
  const beats = beating('q-ns', there);
  try {
    await assert.rejects(QueueHold.take(client, options('q-ns', 'mine')), (e: Error) => {
      assert.match(
        e.message,
        /^queue 'q-ns' .* is in use by another index run \(pid \d+ on \S+ in PID namespace pid:\[1\],/,
      );
      return true;
    });
  } finally {
    clearInterval(beats);
  }
  assert.match((await client.get(holdKey('q-ns')))!, /"run":"other"/, 'the live run keeps its hold');
});

test("a hold that names no PID namespace (an older search-r3's) is judged by its beat, not freed at once", async () => {
  await client.set(holdKey('q-old'), holder({ host: hostname(), pid: gonePid() }), 'PX', 1000);
  const t0 = Date.now();
  const mine = await QueueHold.take(client, options('q-old', 'mine'));
  assert.ok(Date.now() - t0 >= 500, 'it waited for the hold to lapse');
  await mine.free();
});

test('the hold is set again after Redis lost it; a run whose hold another took stops with a sentence', async () => {
  const mine = await QueueHold.take(client, options('q4', 'mine'));
  await client.del(holdKey('q4'));
  let held: string | null = null;
  await until(
    async () => (held = await client.get(holdKey('q4'))) !== null,
    10_000,
    () => 'the hold was not set again after the key was lost',
    20,
  );
  assert.match(held!, /"run":"mine"/, 'renewed after the key was lost');
  await client.set(holdKey('q4'), holder({}), 'PX', 60_000);
  await assert.rejects(
    mine.lost,
    /^QueueError: another index run took queue 'q4' .*\(pid 1 on elsewhere.*run the same command again/,
  );
  await mine.free();
  assert.match((await client.get(holdKey('q4')))!, /"run":"other"/, 'the other run keeps its hold');
});

test('a worker sees a just-started run as running at its first renewals, however long its hold lasts', async () => {
  // a long hold: renewals paced by the hold's life (a fifth of it) would keep a worker's first job waiting 12 s
  const run = await QueueHold.take(client, { ...options('q-first', 'run-a'), holdMs: 60_000 });
  try {
    const running = new RunWatch(client, 'q-first').running('run-a');
    assert.ok(await settledWithin(running, 5000), 'the worker still waits to see the run renew its hold');
    assert.equal(await running, true);
  } finally {
    await run.free();
  }
});

test('a hold key another program wrote is refused in one sentence naming the key', async () => {
  await client.set(holdKey('q-foreign'), 'not json');
  await assert.rejects(QueueHold.take(client, options('q-foreign', 'run-a')), (e: Error) => {
    assert.equal(e.name, 'QueueError');
    assert.match(e.message, /^Redis key '\S+q-foreign\S*' holds "not json", not an index run's hold: .*redis-cli DEL/);
    return true;
  });
  await client.del(holdKey('q-foreign'));
});
