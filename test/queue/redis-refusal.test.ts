/**
 * A Redis that answers but refuses (a password it was not given, a read-only replica, a full one) answers
 * the same whatever the wait: the coordinator and the worker say so at once in one sentence naming the fix,
 * instead of retrying for --queue-wait and then advising to start redis-server, printing a stack trace, or
 * waiting for jobs forever; at the start of a run or in the middle of one, keeping what was stored.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { DEFAULT_QUEUE_NAME } from '../../src/queue/index-job.js';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { sqliteVectors, lanceRows } from './store-contents.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { CliProcess } from '../helpers/cli-process.js';
import { queuedJobs } from './queued-jobs.js';

let primary: RedisServer;
let replica: RedisServer;
let locked: RedisServer;
let filling: RedisServer;
let full: RedisServer;
let failover: RedisServer;
let work: { dir: string; cleanup: () => void };
let model: string;
let input: string;

before(async () => {
  primary = await RedisServer.start();
  replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(primary.port)]);
  locked = await RedisServer.start(['--requirepass', 'sekret']);
  [filling, full, failover] = await Promise.all([RedisServer.start(), RedisServer.start(), RedisServer.start()]);
  work = tempDir('queue-refusal');
  model = await tinyModelDir(work.dir, 7);
  input = path.join(work.dir, 'docs.jsonl');
  const docs = Array.from({ length: 6 }, (_, i) => JSON.stringify({ _id: `d${i}`, title: `t${i}`, text: `text ${i}` }));
  writeFileSync(input, docs.join('\n') + '\n');
});

after(async () => {
  await Promise.all([replica, locked, primary, filling, full, failover].map((r) => r.stop()));
  work.cleanup();
});

/** Runs the CLI; its exit code and last line, or a failure if it is still running after `ms`. */
async function finished(args: string[], ms = 20_000): Promise<{ code: number | null; last: string }> {
  return ended(started(args), ms);
}

function started(args: string[]): CliProcess {
  return new CliProcess([...args, '--queue-wait', '60']);
}

/** The exit code and last line of `p`, or a failure if it is still running after `ms`. */
async function ended(p: CliProcess, ms = 20_000): Promise<{ code: number | null; last: string; output: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const end = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (end === 'late') {
    await p.stop();
    assert.fail(`still running after ${ms / 1000} s; output:\n${p.output}`);
  }
  return { code: end.code, last: p.output.trim().split('\n').at(-1)!, output: p.output };
}

const index = (url: string, out: string, from = input): string[] => [
  'index',
  '--queue',
  url,
  '--model',
  model,
  '--input',
  from,
  '--out',
  path.join(work.dir, out),
];
const worker = (url: string): string[] => ['worker', '--queue', url, '--model', model];

/** Sets the Redis at `url`'s maxmemory: 1 byte fills it at once (every write refused with OOM), 0 lifts it. */
async function maxmemory(server: RedisServer, bytes: number): Promise<void> {
  const c = new Redis({ host: '127.0.0.1', port: server.port });
  try {
    await c.config('SET', 'maxmemory', String(bytes));
  } finally {
    c.disconnect();
  }
}

/** What each says it kept, and what to do, after the fix a refusal names. */
const AFTER_FIX: Record<string, string> = {
  'the index run': 'everything already stored is kept, so run the same command again once it is fixed\\.$',
  'the worker':
    'nothing is lost \\(the index run stores the vectors, and a job this worker held is taken again\\), so start ' +
    'the worker again once it is fixed\\.$',
};

/** The sentence a refusal Redis answers with `code` ends a run with, for `what` and the `fix` it names. */
const refusalSentence = (what: string, code: string, fix: string): RegExp =>
  new RegExp(
    `^search-r3: Redis at redis://127\\.0\\.0\\.1:\\d+ refused ${what} \\(${code} [^)]*\\): ${fix}.*; ` +
      AFTER_FIX[what],
  );
const oomSentence = (what: string): RegExp =>
  refusalSentence(what, 'OOM command not allowed', "raise Redis's maxmemory");

/**
 * Starts an index run of 300 documents and a worker on `server`, lets `refuse` make Redis refuse once some
 * jobs are stored, and checks that both stop with `sentence` and no stack trace; then, after `restore`,
 * that the same command stores the rest, keeping what was stored, each document once.
 */
async function refusedMidRun(
  server: RedisServer,
  out: string,
  refuse: () => Promise<void>,
  restore: () => Promise<void>,
  sentence: (what: string) => RegExp,
): Promise<void> {
  const many = path.join(work.dir, `${out}.jsonl`);
  const ids = Array.from({ length: 300 }, (_, i) => `m${i}`);
  writeFileSync(
    many,
    ids.map((id, i) => JSON.stringify({ _id: id, text: `document ${i} ` + 'x'.repeat(i % 40) })).join('\n'),
  );
  const run = started([...index(server.url, out, many), '--commit-every', '2']);
  const w = started(worker(server.url));
  try {
    // ten jobs done, and the run has stored some of them (it looks every 0.1 s)
    await w.waitFor(/(job \S+: done[^]*){10}/, 60_000);
    await until(
      () => sqliteVectors(path.join(work.dir, out)).size > 0,
      30_000,
      () => 'nothing stored yet',
      50,
    );
    await refuse();
    for (const [p, what] of [
      [run, 'the index run'],
      [w, 'the worker'],
    ] as const) {
      const r = await ended(p);
      assert.equal(r.code, 2, r.output);
      assert.match(r.last, sentence(what));
      assert.doesNotMatch(r.output, /^\s+at /m, 'no stack trace');
    }
  } finally {
    await Promise.all([run.stop(), w.stop()]);
    await restore();
  }
  const kept = sqliteVectors(path.join(work.dir, out));
  assert.ok(kept.size > 0 && kept.size < ids.length, `stored before Redis refused: ${kept.size}`);
  const again = started([...index(server.url, out, many), '--commit-every', '2']);
  const w2 = started(worker(server.url));
  try {
    const r = await ended(again, 120_000);
    assert.equal(r.code, 0, r.output);
  } finally {
    await w2.stop();
  }
  const got = sqliteVectors(path.join(work.dir, out));
  assert.deepEqual([...got.keys()].sort(), [...ids].sort());
  for (const [id, v] of kept) assert.ok(v.equals(got.get(id)!), `${id}: what was stored before stays`);
  const rows = await lanceRows(path.join(work.dir, out, 'vectors.lance'));
  assert.equal(rows.length, ids.length, 'rows in the LanceDB table');
  assert.equal(new Set(rows.map((row) => row.id)).size, ids.length, 'each document stored once');
}

// each test on a Redis of its own, its index run and worker sharing nothing else: all of them side by side
describe('a Redis that refuses', { concurrency: true }, () => {
  test('a Redis that wants a password: index and worker say so at once and name the URL form', async () => {
    const [run, w] = await Promise.all([
      finished(index(locked.url, 'no-password')),
      finished(worker(locked.url.replace('//', '//:wrong@'))),
    ]);
    assert.equal(run.code, 2, run.last);
    assert.match(run.last, /^search-r3: Redis at redis:\/\/127\.0\.0\.1:\d+ refused the index run \(NOAUTH /);
    assert.match(run.last, /redis:\/\/:<password>@host:port/);
    assert.equal(w.code, 2, w.last);
    assert.match(w.last, /refused the worker \(WRONGPASS .*redis:\/\/:<password>@host:port/);
  });

  test('a read-only replica: index and worker say to point --queue at the primary', async () => {
    const [run, w] = await Promise.all([finished(index(replica.url, 'on-replica')), finished(worker(replica.url))]);
    assert.equal(run.code, 2, run.last);
    assert.match(run.last, /^search-r3: Redis at .* refused the index run \(READONLY .*point --queue at the primary/);
    assert.equal(w.code, 2, w.last);
    assert.match(w.last, /refused the worker \(READONLY .*point --queue at the primary/);
  });

  test('a database Redis does not have: index and worker say so, rather than use database 0', async () => {
    // ioredis went on in database 0 when Redis refused its SELECT 99: the run used a database it was not given
    const noDb = `${primary.url}/99`;
    const fix =
      "give a database Redis has in --queue's /<db> (0 to its 'databases' setting less 1: 0 to 15 by default)";
    const runs = [
      ['the index run', index(noDb, 'no-db')],
      ['the worker', worker(noDb)],
    ] as const;
    const results = await Promise.all(runs.map(([, args]) => finished(args)));
    for (const [i, [what]] of runs.entries()) {
      const run = results[i];
      assert.equal(run.code, 2, run.last);
      const said = `search-r3: Redis at ${noDb} refused ${what} (ERR DB index is out of range): ${fix}; `;
      assert.ok(run.last.startsWith(said), run.last);
    }
  });

  test('Redis filling up mid-run: the waiting index run and the idle worker each stop with one sentence', async () => {
    await maxmemory(filling, 0);
    const run = started([...index(filling.url, 'filled-waiting'), '--commit-every', '2']);
    const w = started([...worker(filling.url), '--queue-name', 'idle-elsewhere']);
    try {
      // its three jobs queued, the run waits for a worker
      await queuedJobs(filling.port, DEFAULT_QUEUE_NAME, 3, () => run.output);
      await w.waitFor(/waiting for jobs/);
      await maxmemory(filling, 1);
      const r = await ended(run);
      assert.equal(r.code, 2, r.output);
      assert.match(r.last, oomSentence('the index run'));
      assert.doesNotMatch(r.output, /^\s+at /m, 'no stack trace');
      const e = await ended(w);
      assert.equal(e.code, 2, e.output);
      assert.match(e.last, oomSentence('the worker'));
      assert.doesNotMatch(e.output, /^\s+at /m, 'no stack trace');
    } finally {
      await Promise.all([run.stop(), w.stop()]);
      await maxmemory(filling, 0);
    }
  });

  test('Redis filling up as jobs are done: one sentence; the rerun stores the rest, each document once', async () => {
    await maxmemory(full, 0);
    await refusedMidRun(
      full,
      'filled-working',
      () => maxmemory(full, 1),
      () => maxmemory(full, 0),
      oomSentence,
    );
  });

  test('Redis turned into a replica mid-run (a failover): one sentence; the rerun on the primary goes on', async () => {
    const replicaof = async (...args: string[]): Promise<void> => {
      const c = new Redis({ host: '127.0.0.1', port: failover.port });
      try {
        await c.call('REPLICAOF', ...args);
      } finally {
        c.disconnect();
      }
    };
    await refusedMidRun(
      failover,
      'failed-over',
      () => replicaof('127.0.0.1', String(primary.port)),
      () => replicaof('NO', 'ONE'),
      (what) => refusalSentence(what, 'READONLY', 'point --queue at the primary'),
    );
  });
});
