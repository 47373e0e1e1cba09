/**
 * A Redis that answers but refuses (a password it was not given, a read-only replica) answers the same
 * whatever the wait: the coordinator and the worker say so at once in one sentence naming the fix, instead
 * of retrying for --queue-wait and then advising to start redis-server, printing a stack trace, or waiting
 * for jobs forever.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { RedisServer } from '../helpers/redis.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { CliProcess } from './cli-process.js';

let primary: RedisServer;
let replica: RedisServer;
let locked: RedisServer;
let work: { dir: string; cleanup: () => void };
let model: string;
let input: string;

before(async () => {
  primary = await RedisServer.start();
  replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(primary.port)]);
  locked = await RedisServer.start(['--requirepass', 'sekret']);
  work = tempDir('queue-refusal');
  model = await tinyModelDir(work.dir, 7);
  input = path.join(work.dir, 'docs.jsonl');
  const docs = Array.from({ length: 6 }, (_, i) => JSON.stringify({ _id: `d${i}`, title: `t${i}`, text: `text ${i}` }));
  writeFileSync(input, docs.join('\n') + '\n');
});

after(async () => {
  await Promise.all([replica.stop(), locked.stop(), primary.stop()]);
  work.cleanup();
});

/** Runs the CLI; its exit code and last line, or a failure if it is still running after `ms`. */
async function finished(args: string[], ms = 20_000): Promise<{ code: number | null; last: string }> {
  const p = new CliProcess([...args, '--queue-wait', '60']);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const end = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (end === 'late') {
    await p.stop();
    assert.fail(`still running after ${ms / 1000} s; output:\n${p.output}`);
  }
  return { code: end.code, last: p.output.trim().split('\n').at(-1)! };
}

const index = (url: string, out: string): string[] => [
  'index',
  '--queue',
  url,
  '--model',
  model,
  '--input',
  input,
  '--out',
  path.join(work.dir, out),
];
const worker = (url: string): string[] => ['worker', '--queue', url, '--model', model];

test('a Redis that wants a password: index and worker say so at once and name the URL form', async () => {
  const run = await finished(index(locked.url, 'no-password'));
  assert.equal(run.code, 2, run.last);
  assert.match(run.last, /^search-r3: Redis at redis:\/\/127\.0\.0\.1:\d+ refused the index run \(NOAUTH /);
  assert.match(run.last, /redis:\/\/:<password>@host:port/);
  const w = await finished(worker(locked.url.replace('//', '//:wrong@')));
  assert.equal(w.code, 2, w.last);
  assert.match(w.last, /refused the worker \(WRONGPASS .*redis:\/\/:<password>@host:port/);
});

test('a read-only replica: index and worker say to point --queue at the primary', async () => {
  const run = await finished(index(replica.url, 'on-replica'));
  assert.equal(run.code, 2, run.last);
  assert.match(run.last, /^search-r3: Redis at .* refused the index run \(READONLY .*point --queue at the primary/);
  const w = await finished(worker(replica.url));
  assert.equal(w.code, 2, w.last);
  assert.match(w.last, /refused the worker \(READONLY .*point --queue at the primary/);
});
