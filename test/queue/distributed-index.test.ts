/**
 * Distributed indexing end to end, on a real redis-server (private, on a free port) and real processes:
 * the coordinator (`index --queue`) and `search-r3 worker`s, and serve replicas (in the test's process) of the
 * index they build; a tiny random model over SciFact documents (the slice in demo/scifact).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type QueueHolder, holdKey } from '../../src/queue/queue-hold.js';
import { readDocuments } from '../../src/search-index/document-source.js';
import type { SourceDocument } from '../../src/search-index/document-source.js';
import { SearchIndex, readIndexManifest } from '../../src/search-index/search-index.js';
import { WorkerBackend } from '../../src/serve/model-worker.js';
import { startSearchServer } from '../../src/serve/server.js';
import { lastSentence, runCliAsync } from '../helpers/cli.js';
import { post, request } from '../helpers/http.js';
import { RedisServer, freePort } from '../helpers/redis.js';
import { repoRoot } from '../helpers/repo.js';
import { until } from '../helpers/until.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { CliProcess } from '../helpers/cli-process.js';
import { queuedJobs } from './queued-jobs.js';
import { lanceRows, sqliteVectors } from './store-contents.js';

let redis: RedisServer;
let work: { dir: string; cleanup: () => void };
let model: string;
let otherModel: string;
let scifact: SourceDocument[];
const losePreload = path.join(repoRoot, 'dist', 'test', 'helpers', 'lose-gpu-device.js');

before(async () => {
  redis = await RedisServer.start();
  work = tempDir('queue');
  model = await tinyModelDir(work.dir, 7);
  otherModel = await tinyModelDir(work.dir, 8);
  scifact = await readDocuments(path.join(repoRoot, 'demo', 'scifact'));
});

after(async () => {
  await redis.stop();
  work.cleanup();
});

function corpusFile(name: string, docs: readonly SourceDocument[]): string {
  const file = path.join(work.dir, `${name}.jsonl`);
  writeFileSync(file, docs.map((d) => JSON.stringify({ _id: d.id, title: d.title, text: d.text })).join('\n') + '\n');
  return file;
}

function workerProc(queueName: string, modelDir = model, url = redis.url): CliProcess {
  return new CliProcess([
    'worker',
    '--queue',
    url,
    '--queue-name',
    queueName,
    '--model',
    modelDir,
    '--lock-seconds',
    '2',
  ]);
}

function queuedIndex(queueName: string, input: string, out: string, extra: string[] = [], url = redis.url): CliProcess {
  return new CliProcess([
    'index',
    ...['--queue', url, '--queue-name', queueName, '--model', model],
    ...['--input', input, '--out', out, '--commit-every', '100', ...extra],
  ]);
}

/** Every input document once in docs.sqlite and once in the LanceDB table, each vector byte-equal to `want`'s. */
async function assertStoredOnce(out: string, docs: readonly SourceDocument[], want?: string): Promise<void> {
  const got = sqliteVectors(out);
  assert.deepEqual([...got.keys()].sort(), docs.map((d) => d.id).sort());
  const rows = await lanceRows(path.join(out, 'vectors.lance'));
  assert.equal(rows.length, docs.length, 'rows in the LanceDB table');
  assert.equal(new Set(rows.map((r) => r.id)).size, docs.length, 'distinct ids in the LanceDB table');
  for (const r of rows) assert.ok(r.vector.equals(got.get(r.id)!), `${r.id}: the table holds the docs.sqlite vector`);
  if (want === undefined) return;
  const single = sqliteVectors(want);
  let differ = 0;
  for (const [id, v] of got) if (!v.equals(single.get(id)!)) differ++;
  assert.equal(differ, 0, 'vectors that differ from the single-process index');
}

/**
 * The documents as an input file, and a single-process index of it (what the queued runs must equal). The
 * index is built while the queued run goes on, whose processes spend seconds waiting (for a hold's beat, for
 * a lock to lapse): `single` resolves to its folder once it is built.
 */
function withSingleIndex(
  name: string,
  docs: SourceDocument[],
): { docs: SourceDocument[]; input: string; single: Promise<string> } {
  const input = corpusFile(name, docs);
  const out = path.join(work.dir, `${name}-single`);
  const single = runCliAsync(['index', '--model', model, '--input', input, '--out', out, '--commit-every', '100']).then(
    (s) => {
      assert.equal(s.status, 0, s.stderr);
      return out;
    },
  );
  // a failure is reported where the test awaits it; until then it must not be an unhandled rejection
  single.catch(() => undefined);
  return { docs, input, single };
}

let sharedIndex = '';
let sharedDocs: SourceDocument[] = [];

test('three workers, one SIGKILLed mid-job: every document once, bit-identical to a single-process index', async () => {
  // six jobs of 100: the killed job lapses (--lock-seconds 2) while the two workers left still have work
  const { docs, input, single } = withSingleIndex('six-hundred', scifact.slice(0, 600));
  const out = path.join(work.dir, 'shared');
  const workers = [workerProc('kill'), workerProc('kill'), workerProc('kill')];
  const coordinator = queuedIndex('kill', input, out);
  // the first worker to start a job: with six jobs, one that starts late may get none
  const [killed, killedJob] = await Promise.any(
    workers.map(async (w) => [w, (await w.waitFor(/job (\S+): encoding/))[1]] as const),
  );
  killed.kill('SIGKILL');
  const others = workers.filter((w) => w !== killed);
  const { code } = await coordinator.exited;
  assert.equal(code, 0, coordinator.output);
  assert.match(coordinator.output, /600 documents indexed \(600 encoded now/);
  assert.doesNotMatch(killed.output, new RegExp(`job ${killedJob}: done`), 'the job was killed before it ended');
  assert.match(
    others.map((w) => w.output).join(''),
    new RegExp(`job ${killedJob}: encoding`),
    'another worker took the job of the killed one',
  );
  for (const w of others) assert.equal(await w.stop(), 0, w.output);
  await assertStoredOnce(out, docs, await single);
  sharedIndex = out;
  sharedDocs = docs;
});

test('two serve replicas of one index answer alike; both take up rows a worker appended at a refresh', async () => {
  assert.ok(sharedIndex, 'needs the index of the previous test');
  // replicas as `serve` runs them, in this process: on an index this small a replica answers from docs.sqlite,
  // read live, and only its vector store (searched once the index outgrows exact search) shows a refresh
  const { maxLength, templates } = readIndexManifest(sharedIndex);
  const replicas = await Promise.all(
    [0, 1].map(async () => {
      const backend = await WorkerBackend.start(model, { maxLength, templates });
      const index = await SearchIndex.open(sharedIndex, { backend, saveBm25: true });
      return { index, server: await startSearchServer({ backend, index, port: 0 }) };
    }),
  );
  try {
    const urls = replicas.map((r) => r.server.url);
    const ask = (url: string, query: string, k = 10): Promise<unknown> =>
      post(url, '/v1/search', { query, k, hybrid: true }).then((r) => {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return (r.body.data as { id: string; score: number }[]).map((h) => [h.id, h.score]);
      });
    const q = 'vitamin D deficiency and bone fractures in older adults';
    assert.deepEqual(await ask(urls[0], q), await ask(urls[1], q));

    const added = scifact.slice(2000, 2060);
    const input = corpusFile('appended', [...sharedDocs, ...added]);
    const worker = workerProc('append');
    const coordinator = queuedIndex('append', input, sharedIndex);
    assert.equal((await coordinator.exited).code, 0, coordinator.output);
    assert.equal(await worker.stop(), 0, worker.output);
    // an appended document's own vector finds it first in a vector store that holds it
    const probe = added[17];
    const nearestInStore = async (index: SearchIndex): Promise<string | undefined> => {
      const [hit] = await index.searchVector(index.getDocument(probe.id)!.vector!, { k: 1, exact: false });
      return hit?.id;
    };
    for (const { index } of replicas)
      assert.notEqual(await nearestInStore(index), probe.id, 'a vector store has the appended rows before a refresh');
    // the documented refresh: a replica re-reads the index on the first search at least 1 s after the last
    await Promise.all(urls.map((u) => ask(u, q)));
    await new Promise((r) => setTimeout(r, 1100));
    // its title puts it first in BM25, but fused with the random model's ranking it may come 30th
    const [a, b] = [await ask(urls[0], probe.title, 100), await ask(urls[1], probe.title, 100)];
    assert.deepEqual(a, b);
    assert.ok(
      (a as [string][]).some(([id]) => id === probe.id),
      'the appended document is found',
    );
    for (const { index, server } of replicas) {
      assert.equal(await nearestInStore(index), probe.id, "the replica's vector store took up the appended rows");
      const h = await request(server.url, 'GET', '/health');
      assert.equal((h.body.index as { documents: number }).documents, 660);
    }
    sharedDocs = [...sharedDocs, ...added];
    await assertStoredOnce(sharedIndex, sharedDocs);
  } finally {
    for (const { index, server } of replicas) {
      await server.close();
      await index.close();
    }
  }
});

// each on a queue of its own (or on none; the Redis restart on a Redis of its own), and mostly waiting, on a
// hold's beat, on 10 s without a worker, on a stalled beat, on Redis retries: side by side
describe('faults, each on its own queue', { concurrency: true }, () => {
  test('a run whose Redis restarts (losing every job) mid-way completes, every document once', async () => {
    // a Redis of its own: its restart would cut the other tests of the suite off theirs
    const own = await RedisServer.start();
    try {
      // five jobs: when one is done and Redis restarts, the others are still in hand or waiting
      const { docs, input, single } = withSingleIndex('restart', scifact.slice(2100, 2600));
      const out = path.join(work.dir, 'restart');
      const workers = [workerProc('restart', model, own.url), workerProc('restart', model, own.url)];
      const coordinator = queuedIndex('restart', input, out, [], own.url);
      // whichever worker finishes a job first: under load one of them may take every early job
      await Promise.any(workers.map((w) => w.waitFor(/job \S+: done/)));
      await own.stop();
      await new Promise((r) => setTimeout(r, 1500));
      await own.launch();
      const { code } = await coordinator.exited;
      assert.equal(code, 0, coordinator.output);
      assert.match(coordinator.output, /500 documents indexed/);
      assert.match(coordinator.output, /\d+ jobs that Redis lost \(it restarted\) were queued again/);
      for (const w of workers) assert.equal(await w.stop(), 0, w.output);
      await assertStoredOnce(out, docs, await single);
    } finally {
      await own.stop();
    }
  });

  test('a job damaged in the queue is dead-lettered by name; the rest are stored; a rerun finishes it', async () => {
    // three jobs of 20 documents: the middle one damaged
    const docs = scifact.slice(3000, 3060);
    const input = corpusFile('corrupt', docs);
    const out = path.join(work.dir, 'corrupt');
    const coordinator = queuedIndex('corrupt', input, out, ['--commit-every', '20']);
    await queuedJobs(redis.port, 'corrupt', 3, () => coordinator.output);
    const queue = new Queue('corrupt', { connection: { host: '127.0.0.1', port: redis.port } });
    let damaged: string;
    try {
      const job = (await queue.getWaiting())[1];
      damaged = String(job.id);
      await job.updateData({ ...job.data, texts: job.data.texts.map((t: string) => t.toUpperCase()) });
    } finally {
      await queue.close();
    }
    const worker = workerProc('corrupt');
    const { code } = await coordinator.exited;
    assert.equal(code, 2, coordinator.output);
    const last = coordinator.output.trim().split('\n').at(-1)!;
    assert.match(last, new RegExp(`^search-r3: 1 jobs were dead-lettered \\(job ${damaged}, documents .*checksum`));
    assert.match(last, /run the same command again/);
    assert.equal(sqliteVectors(out).size, 40, 'the other jobs are stored');
    const rerun = queuedIndex('corrupt', input, out, ['--commit-every', '20']);
    assert.equal((await rerun.exited).code, 0, rerun.output);
    assert.equal(await worker.stop(), 0, worker.output);
    await assertStoredOnce(out, docs);
  });

  test('a worker with another model refuses the job by name and leaves it to one with the right model', async () => {
    const docs = scifact.slice(3400, 3500);
    const out = path.join(work.dir, 'mismatch');
    const wrong = workerProc('mismatch', otherModel);
    const coordinator = queuedIndex('mismatch', corpusFile('mismatch', docs), out);
    assert.equal((await wrong.exited).code, 2, wrong.output);
    const line = wrong.output.trim().split('\n').at(-1)!;
    const refused = new RegExp(
      "^search-r3: refused job \\S+ of queue 'mismatch': it needs model sha256:\\w+ and this worker's model is " +
        'sha256:\\w+',
    );
    assert.match(line, refused);
    const right = workerProc('mismatch');
    assert.equal((await coordinator.exited).code, 0, coordinator.output);
    assert.equal(await right.stop(), 0);
    await assertStoredOnce(out, docs);
  });

  test(
    'a worker whose GPU device is lost puts its job back untouched and stops; another worker finishes it',
    { skip: webgpuSkip(), timeout: 180_000 },
    async () => {
      const docs = scifact.slice(4000, 4100);
      const out = path.join(work.dir, 'gpu-lost');
      // the device is lost at its first read, in the first job's encoding (loading the model reads nothing)
      const trigger = path.join(work.dir, 'lose-gpu');
      writeFileSync(trigger, '');
      const lost = new CliProcess(
        [
          ...['worker', '--queue', redis.url, '--queue-name', 'gpu-lost', '--model', model],
          ...['--lock-seconds', '2', '--device', 'webgpu'],
        ],
        { NODE_OPTIONS: `--import ${losePreload}`, SEARCH_R3_TEST_LOSE_GPU: trigger },
      );
      const coordinator = queuedIndex('gpu-lost', corpusFile('gpu-lost', docs), out);
      assert.equal((await lost.exited).code, 2, lost.output);
      const [, job] = /job (\S+): encoding/.exec(lost.output)!;
      assert.equal(lost.output.match(/: encoding/g)?.length, 1, `it took no other job: ${lost.output}`);
      assert.doesNotMatch(lost.output, /^\s+at /m, 'a stack trace');
      const line = lastSentence(lost.output);
      assert.match(line, /^search-r3: the GPU device was lost \(destroyed: [^)]*\); job /);
      assert.ok(
        line.endsWith(
          `; job ${job} of queue 'gpu-lost' went back to the queue untouched, for another worker, and this worker ` +
            'stopped: start it again once its GPU works, or with --device cpu.',
        ),
        line,
      );
      const right = workerProc('gpu-lost');
      assert.equal((await coordinator.exited).code, 0, coordinator.output);
      assert.match(coordinator.output, /100 documents indexed \(100 encoded now/);
      assert.equal(await right.stop(), 0, right.output);
      assert.match(right.output, new RegExp(`job ${job}: done`), 'the other worker did the job');
      await assertStoredOnce(out, docs);
    },
  );

  test('Redis unreachable: index and worker retry, then say so in one sentence; stored documents stay', async () => {
    assert.ok(sharedIndex, 'needs the index of the first test');
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const more = corpusFile('unreachable', [...sharedDocs, ...scifact.slice(3600, 3610)]);
    // the three share nothing but the URL nobody answers: they run together
    const t0 = Date.now();
    const [r, w, m] = await Promise.all([
      runCliAsync(['index', '--queue', nowhere, '--queue-wait', '2', '--input', more, '--out', sharedIndex]).then(
        (res) => ({ ...res, ms: Date.now() - t0 }),
      ),
      runCliAsync(['worker', '--queue', nowhere, '--queue-wait', '1', '--model', model]),
      runCliAsync(['worker', '--queue', nowhere, '--model', path.join(work.dir, 'no-model')]),
    ]);
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.ms >= 2000, 'it retried for --queue-wait');
    assert.match(
      r.stderr.trim(),
      /^search-r3: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) after 2 s/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(sqliteVectors(sharedIndex).size, sharedDocs.length, 'nothing already stored is lost');
    assert.equal(w.status, 2);
    assert.match(w.stderr, /search-r3: cannot reach Redis at .* after 1 s of retries; the worker stopped/);
    // a model folder that is not there is said at the start, not at the first job
    assert.equal(m.status, 2);
    assert.match(m.stderr, /--model .*no-model: no model folder there \(no config\.json or adapter_config\.json\)/);
  });

  test('Redis gone for good mid-run: the waiting index run and an idle worker each stop, saying so', async () => {
    // a Redis of its own, stopped for good
    const own = await RedisServer.start();
    const input = corpusFile('gone', scifact.slice(4100, 4140));
    const run = queuedIndex('gone', input, path.join(work.dir, 'gone'), ['--queue-wait', '1'], own.url);
    // a worker of another queue: it waits for jobs, and the run's jobs stay queued until Redis is gone
    const idle = new CliProcess([
      ...['worker', '--queue', own.url, '--queue-name', 'gone-elsewhere', '--model', model],
      ...['--queue-wait', '1'],
    ]);
    try {
      await queuedJobs(own.port, 'gone', 1, () => run.output);
      await idle.waitFor(/waiting for jobs/);
      await own.stop();
      // each gives up after 1 s of retries; the bound is for one that never stops
      for (const [p, what] of [
        [run, 'the index run stopped with everything already stored kept'],
        [idle, 'the worker stopped, and nothing is lost'],
      ] as const) {
        assert.equal(await p.ended(30_000), 2, p.output);
        const last = p.output.trim().split('\n').at(-1)!;
        assert.match(
          last,
          new RegExp(`^search-r3: cannot reach Redis at \\S+ \\(ECONNREFUSED\\) after 1 s of retries; ${what}`),
        );
      }
    } finally {
      await Promise.all([run.stop(), idle.stop()]);
      await own.stop();
    }
  });

  test('an unwritable store, or an index on the local store, is refused before any job is queued', async () => {
    const input = corpusFile('store', scifact.slice(3700, 3710));
    const file = corpusFile('not-a-folder', []);
    const local = path.join(work.dir, 'local');
    // the refused run and the local index (then its refused queued run) share nothing: they run together
    const [r, q] = await Promise.all([
      runCliAsync([
        'index',
        ...['--queue', redis.url, '--model', model, '--input', input, '--out', path.join(work.dir, 'unwritable')],
        ...['--store-uri', path.join(file, 'vectors.lance')],
      ]),
      runCliAsync(['index', '--model', model, '--input', input, '--out', local]).then((l) => {
        assert.equal(l.status, 0, l.stderr);
        return runCliAsync(['index', '--queue', redis.url, '--input', input, '--out', local]);
      }),
    ]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr.trim(),
      /^search-r3: the vector store .*not-a-folder\.jsonl\/vectors\.lance cannot be written \(.*Not a directory/,
    );
    assert.equal(q.status, 2);
    assert.match(q.stderr, /keeps its vectors in a local HNSW file, which replicas cannot share/);
  });

  test('one run per queue: a second is refused by name, a killed one frees it, an idle one says why', async () => {
    const docs = scifact.slice(3800, 3900);
    const input = corpusFile('held', docs);
    const out = path.join(work.dir, 'held');
    const first = queuedIndex('held', input, out);
    // a second run is refused while the first holds the queue: tried while the first waits for a worker
    await queuedJobs(redis.port, 'held', 1, () => first.output);
    const second = queuedIndex('held', corpusFile('held-other', scifact.slice(3900, 3910)), `${out}-other`);
    // no worker serves the queue: the run says so rather than waiting silently
    await first.waitFor(
      /no worker has taken a job from queue 'held' for 10 s; .*'search-r3 worker --queue redis:/,
      30_000,
    );
    assert.equal((await second.exited).code, 2, second.output);
    const refusal = second.output.trim().split('\n').at(-1)!;
    assert.match(refusal, /^search-r3: queue 'held' on redis:\/\/127\.0\.0\.1:\d+ is in use by another index run /);
    assert.match(refusal, /\(pid \d+ on .*, since .*\); .*its own --queue-name/);
    first.kill('SIGKILL');
    await first.exited;
    // the same machine sees that the holder is gone: the rerun takes the queue at once and clears the old jobs
    const rerun = queuedIndex('held', input, out);
    const worker = workerProc('held');
    assert.equal((await rerun.exited).code, 0, rerun.output);
    assert.doesNotMatch(rerun.output, /waiting up to/);
    assert.match(rerun.output, /100 documents indexed \(100 encoded now/);
    assert.equal(await worker.stop(), 0, worker.output);
    await assertStoredOnce(out, docs);
  });

  test("a killed coordinator's jobs are not encoded into Redis: a worker leaves them until the rerun", async () => {
    const docs = scifact.slice(3910, 3990);
    const input = corpusFile('orphan', docs);
    const out = path.join(work.dir, 'orphan');
    const first = queuedIndex('orphan', input, out, ['--commit-every', '20']);
    await queuedJobs(redis.port, 'orphan', 4, () => first.output);
    first.kill('SIGKILL');
    await first.exited;
    const worker = workerProc('orphan');
    await worker.waitFor(/job \S+: the index run that queued it is not running; the job waits for it\./, 30_000);
    const queue = new Queue('orphan', { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      assert.equal(await queue.getCompletedCount(), 0, worker.output);
    } finally {
      await queue.close();
    }
    const rerun = queuedIndex('orphan', input, out, ['--commit-every', '20']);
    assert.equal((await rerun.exited).code, 0, rerun.output);
    assert.match(rerun.output, /80 documents indexed \(80 encoded now/);
    assert.equal(await worker.stop(), 0, worker.output);
    await assertStoredOnce(out, docs);
  });
});

test('a worker that cannot see its coordinator (another PID namespace) encodes while the hold beats', async () => {
  const docs = scifact.slice(3990, 4030);
  const first = queuedIndex('pidns', corpusFile('pidns', docs), path.join(work.dir, 'pidns'), ['--commit-every', '20']);
  await queuedJobs(redis.port, 'pidns', 2, () => first.output);
  const client = new Redis({ host: '127.0.0.1', port: redis.port });
  const queue = new Queue('pidns', { connection: { host: '127.0.0.1', port: redis.port } });
  // the run's hold as a coordinator in another PID namespace keeps it: this hostname, a pid not alive here
  const held = JSON.parse((await client.get(holdKey('pidns')))!) as QueueHolder;
  first.kill('SIGKILL');
  await first.exited;
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const hold: QueueHolder = { ...held, host: hostname(), pid: Number(gone.stdout.toString()), holdMs: 1000 };
  const renew = async (): Promise<unknown> => client.set(holdKey('pidns'), JSON.stringify(hold), 'PX', 1000);
  await renew();
  const beats = setInterval(() => void (hold.beat++, renew()), 200);
  const worker = workerProc('pidns');
  try {
    await worker.waitFor(/job \S+: done/, 30_000);
    assert.doesNotMatch(worker.output, /is not running/);
    // the worker logs 'done' as its processor returns; BullMQ records the job completed just after
    await until(
      async () => (await queue.getCompletedCount()) > 0,
      10_000,
      () => worker.output,
      100,
    );
  } finally {
    clearInterval(beats);
    assert.equal(await worker.stop(), 0, worker.output);
    await queue.obliterate({ force: true });
    await queue.close();
    client.disconnect();
  }
});
