/**
 * Queue options BullMQ cannot take are refused with the other options, before anything is staged or connected:
 * a --queue-name it cannot use (empty, or holding ':') it threw as a stack trace once Redis answered, and the
 * process never exited; a --lock-seconds longer than a timer holds made it renew the lock every millisecond.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { RedisServer } from '../helpers/redis.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';
import { CliProcess } from '../helpers/cli-process.js';

let work: { dir: string; cleanup: () => void };
let model = '';
let redis: RedisServer;

before(async () => {
  work = tempDir('queue-name');
  model = await tinyModelDir(work.dir, 7);
  redis = await RedisServer.start();
});

after(async () => {
  await redis.stop();
  work.cleanup();
});

/** The exit code of `p` within `ms`, or 'hung' (the process is then killed). */
async function exitWithin(p: CliProcess, ms: number): Promise<number | null | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  const end = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (end !== 'hung') return end.code;
  p.kill('SIGKILL');
  await p.exited;
  return end;
}

test('a --queue-name BullMQ cannot use is refused in one sentence by index and worker, nothing staged', async () => {
  const input = path.join(work.dir, 'docs.jsonl');
  writeJsonl(input, corpus(3));
  for (const name of ['a:b', '']) {
    const out = path.join(work.dir, `idx-${name.length}`);
    const queue = ['--queue', redis.url, '--queue-name', name, '--model', model];
    for (const args of [
      ['index', ...queue, '--input', input, '--out', out],
      ['worker', ...queue],
    ]) {
      const p = new CliProcess(args);
      assert.equal(await exitWithin(p, 30_000), 2, p.output);
      assert.equal(
        p.output,
        `search-r3: --queue-name must be a non-empty name without ':' (got '${name}').\n`,
        `${args[0]} --queue-name '${name}'`,
      );
    }
    assert.ok(!existsSync(out), 'no index folder made');
  }
});

test('a worker refuses a --lock-seconds longer than a timer holds', async () => {
  const p = new CliProcess(['worker', '--queue', redis.url, '--model', model, '--lock-seconds', '99999999999']);
  assert.equal(await exitWithin(p, 30_000), 2, p.output);
  assert.equal(p.output, "search-r3: --lock-seconds must be an integer in [1, 2147483] (got '99999999999').\n");
});
