/** The model in a worker thread: an EmbeddingBackend, the only thread running kernels, restarted when it dies. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { type BatchJob, EmbeddingBatcher, takeRoundRobin } from '../../src/serve/embedding-batcher.js';
import { ModelUnavailableError, WorkerBackend, type WorkerBackendOptions } from '../../src/serve/model-worker.js';
import { startSearchServer } from '../../src/serve/server.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { post, postEmbeddings as embeddings, request } from '../helpers/http.js';
import { runProgram } from '../helpers/run-program.js';

test('WorkerBackend is an EmbeddingBackend: the in-process vectors, and an index checks its model', async () => {
  const { dir, cleanup } = tempDir('wb');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const worker = await WorkerBackend.start(modelDir, { maxLength: 128 });
  const other = await WorkerBackend.start(await tinyModelDir(dir, 8), { maxLength: 128 });
  try {
    assert.equal(worker.modelId, local.modelId);
    const shape = (b: WorkerBackend | typeof local): unknown[] => [b.dimension, b.maxLength, b.templates];
    assert.deepEqual(shape(worker), shape(local));
    const texts = corpus(6).map((d) => d.text);
    assert.deepEqual(await worker.embedDocuments(texts), await local.embedDocuments(texts));
    const opts = { reasoning: 'on' as const, maxReasoningTokens: 5 };
    const queries = ['gene therapy', 'heart'];
    assert.deepEqual(await worker.embedQueries(queries, opts), await local.embedQueries(queries, opts));

    const idx = path.join(dir, 'idx');
    const built = await SearchIndex.open(idx, { backend: local, create: {} });
    await built.addDocuments(corpus(8));
    const want = (await built.search('immune cell', { k: 3 })).hits.map((h) => h.id);
    await built.close();
    const viaWorker = await SearchIndex.open(idx, { backend: worker });
    assert.deepEqual(
      (await viaWorker.search('immune cell', { k: 3 })).hits.map((h) => h.id),
      want,
    );
    await viaWorker.close();
    await assert.rejects(SearchIndex.open(idx, { backend: other }), /vectors from different models cannot be mixed/);
  } finally {
    await worker.close();
    await other.close();
    cleanup();
  }
});

test("a model folder the worker cannot load is refused with the loader's sentence", async () => {
  const { dir, cleanup } = tempDir('wbbad');
  try {
    await assert.rejects(
      WorkerBackend.start(path.join(dir, 'nothing-here')),
      (e: unknown) => e instanceof Error && e.name === 'ModelFileError' && /no such folder/.test(e.message),
    );
  } finally {
    cleanup();
  }
});

/** Counts calls into this thread's kernels (the real ones run; the count only watches). */
function countKernelCalls(): { calls: () => number; stop: () => void } {
  const k = T.kernels() as unknown as Record<string, unknown>;
  const saved = new Map<string, unknown>();
  let calls = 0;
  for (const [name, f] of Object.entries(k)) {
    if (typeof f !== 'function') continue;
    saved.set(name, f);
    k[name] = (...args: unknown[]): unknown => {
      calls++;
      return (f as (...a: unknown[]) => unknown).apply(k, args);
    };
  }
  return {
    calls: () => calls,
    stop: () => {
      for (const [name, f] of saved) k[name] = f;
    },
  };
}

test("the server's thread runs no kernels: embeddings, reasoning, search and chat run in the worker", async () => {
  const { dir, cleanup } = tempDir('mainthread');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const index = await SearchIndex.open(path.join(dir, 'idx'), { backend: local, create: {} });
  await index.addDocuments(corpus(10));
  const want = await local.embedDocuments(['cells']);
  const server = await startSearchServer({ backend: local, index, port: 0 });
  const watch = countKernelCalls();
  try {
    const emb = await post(server.url, '/v1/embeddings', { model: 'search-r3', input: 'cells' });
    assert.deepEqual(Float32Array.from((emb.body.data as { embedding: number[] }[])[0].embedding), want[0]);
    const reasoning = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 4 };
    assert.equal((await embeddings(server.url, ['heart'], reasoning)).status, 200);
    assert.equal((await embeddings(server.url, [5, 6, 7])).status, 200);
    assert.equal((await post(server.url, '/v1/search', { query: 'immune cell', hybrid: true })).status, 200);
    const chat = { model: 'search-r3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 };
    assert.equal((await post(server.url, '/v1/chat/completions', chat)).status, 200);
    assert.equal(watch.calls(), 0);
    // the count does see kernels run on this thread
    await local.embedDocuments(['cells divide']);
    assert.ok(watch.calls() > 0);
  } finally {
    watch.stop();
    await server.close();
    await index.close();
    cleanup();
  }
});

test('a request that cannot cross to the worker fails, leaves nothing waiting, and the next one works', async () => {
  const { dir, cleanup } = tempDir('uncloneable');
  const backend = await WorkerBackend.start(await tinyModelDir(dir), { maxLength: 128 });
  try {
    const job = { messages: [{ role: 'user', content: 'hi' }], maxTokens: 1, temperature: 0, stops: [] };
    const uncloneable = { ...job, messages: [{ ...job.messages[0]!, f: () => 0 }] };
    await assert.rejects(backend.chat(uncloneable), (e: unknown) => e instanceof Error && e.name === 'DataCloneError');
    assert.equal(backend['pending'].size, 0, 'no request that nothing would ever answer');
    assert.equal((await backend.chat(job)).completionTokens, 1);
  } finally {
    await backend.close();
    cleanup();
  }
});

test('a worker that dies: its requests get 503 with the reason, /health says so, a new one takes over', async () => {
  const { dir, cleanup } = tempDir('crash');
  const modelDir = await tinyModelDir(dir);
  const backend = await WorkerBackend.start(modelDir, { maxLength: 128 });
  const server = await startSearchServer({ backend, port: 0 });
  try {
    const queries = Array.from({ length: 48 }, (_, i) => `query number ${i}`);
    const ext = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 100, temperature: 1 };
    const slow = embeddings(server.url, queries, ext);
    const metrics = async (): Promise<string> => (await request(server.url, 'GET', '/metrics')).raw.toString();
    while (!/search_r3_queue_inputs 48/.test(await metrics())) await new Promise((r) => setTimeout(r, 2));
    // the worker ends as if it had crashed: the 'exit' a thrown error or running out of memory ends in
    await backend['worker'].terminate();
    const r = await slow;
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'model_unavailable');
    assert.match(r.body.error!.message, /the model worker stopped \(.*\) and is being restarted/);
    const h = await request(server.url, 'GET', '/health');
    assert.equal(h.status, 503);
    assert.equal(h.body.status, 'error');
    assert.match(h.body.reason as string, /restart/);
    for (let i = 0; (await request(server.url, 'GET', '/health')).status !== 200; i++) {
      assert.ok(i < 500, 'the worker was not restarted within 10 s');
      await new Promise((res) => setTimeout(res, 20));
    }
    const after = await request(server.url, 'GET', '/health');
    assert.deepEqual(after.body.model_worker, { state: 'ready', restarts: 1 });
    assert.equal((await embeddings(server.url, 'after the restart')).status, 200);
  } finally {
    await server.close();
    cleanup();
  }
});

test('a worker that dies soon after each start waits longer before each restart, until one stays up', async () => {
  const { dir, cleanup } = tempDir('crash-loop');
  const backend = await WorkerBackend.start(await tinyModelDir(dir), { maxLength: 128 });
  /** Ends the worker as a crash would, then answers what health() says and how long until it is ready. */
  const dies = async (): Promise<{ reason: string; state: string; waitedMs: number }> => {
    await backend['worker'].terminate();
    const t0 = performance.now();
    const { reason, state } = backend.health();
    await assert.rejects(backend.embedDocuments(['cells']), (e: unknown) => {
      assert.ok(e instanceof ModelUnavailableError, String(e));
      assert.equal(e.message, reason, 'a request is told what /health says');
      return true;
    });
    while (backend.health().state !== 'ready') await new Promise((r) => setTimeout(r, 10));
    return { reason: reason!, state, waitedMs: performance.now() - t0 };
  };
  const loop = (n: number, s: number, within = 60): RegExp =>
    new RegExp(
      `^the model worker stopped \\(it exited with code 1\\), ${n} times in a row within ${within} s of ` +
        `starting, so it waits before loading the model again; trying again in ${s} s\\.$`,
    );
  try {
    // one death soon after the start: restarted at once
    let d = await dies();
    assert.match(d.reason, /and is being restarted; retry shortly\.$/);
    // the second and third in a row: the restart waits, 1 s then 2 s
    d = await dies();
    assert.match(d.reason, loop(2, 1));
    assert.equal(d.state, 'restarting');
    assert.ok(d.waitedMs >= 900, `restarted after ${d.waitedMs} ms`);
    d = await dies();
    assert.match(d.reason, loop(3, 2));
    assert.ok(d.waitedMs >= 1900, `restarted after ${d.waitedMs} ms`);
    assert.equal((await backend.embedDocuments(['cells'])).length, 1);

    // a worker that stayed up (here 1 s for the minute) starts the count over: at once, at once, then 1 s
    backend['stayedUpMs'] = 1000;
    await new Promise((r) => setTimeout(r, 1100));
    assert.match((await dies()).reason, /retry shortly\.$/);
    assert.match((await dies()).reason, /retry shortly\.$/);
    d = await dies();
    assert.match(d.reason, loop(2, 1, 1));
    assert.deepEqual(backend.health(), { state: 'ready', reason: null, restarts: 6 });
  } finally {
    await backend.close();
    cleanup();
  }
});

test('a seeded, sampled reasoning request gives the same analysis whatever else is queued', async () => {
  const { dir, cleanup } = tempDir('seeded');
  const backend = await WorkerBackend.start(await tinyModelDir(dir), { maxLength: 128 });
  const server = await startSearchServer({ backend, port: 0, maxWaitMs: 20, maxBatchInputs: 4 });
  try {
    const queries = ['gene therapy', 'heart', 'virus', 'dose', 'brain'];
    const sampled = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 12, temperature: 1.2, seed: 7 };
    const alone = await embeddings(server.url, queries, sampled);
    assert.equal(alone.status, 200);
    const busy = await Promise.all([
      embeddings(server.url, ['other', 'texts'], { ...sampled, seed: 8 }),
      embeddings(server.url, ['greedy one', 'greedy two'], { ...sampled, temperature: 0 }),
      embeddings(
        server.url,
        Array.from({ length: 9 }, (_, i) => `document ${i}`),
      ),
      embeddings(server.url, queries, sampled),
    ]);
    assert.ok(busy.every((r) => r.status === 200));
    assert.deepEqual(busy[3].body.search_r3, alone.body.search_r3);
    assert.deepEqual(busy[3].body.data, alone.body.data);
    // and the seed matters: another seed gives another analysis
    const seed9 = await embeddings(server.url, queries, { ...sampled, seed: 9 });
    assert.notDeepEqual(seed9.body.search_r3, alone.body.search_r3);
  } finally {
    await server.close();
    cleanup();
  }
});

test('a batch takes one input from each waiting request in turn, the leading request first', () => {
  // direct jobs of three requests, tagged so the order shows
  const job = (owner: string, n: number): BatchJob & { tag: string } => ({
    kind: 'direct',
    owner: owner.charCodeAt(0),
    input: { ids: [n], truncated: 0 },
    tag: `${owner}${n}`,
    resolve: () => undefined,
    reject: () => undefined,
  });
  const line = [[job('a', 1), job('a', 2), job('a', 3), job('a', 4)], [job('b', 1)], [job('c', 1), job('c', 2)]];
  const taken = takeRoundRobin(line, 5) as { tag?: string }[];
  assert.deepEqual(
    taken.map((j) => j.tag),
    ['a1', 'b1', 'c1', 'a2', 'c2'],
  );
  assert.deepEqual(
    line.map((jobs) => jobs.length),
    [2, 0, 0],
  );
  // a batch also ends at a token budget (inputs here have one token each), but always takes its first job
  const again = [[job('a', 1), job('a', 2)], [job('b', 1)]];
  assert.deepEqual(
    (takeRoundRobin(again, 64, 2) as { tag?: string }[]).map((j) => j.tag),
    ['a1', 'b1'],
  );
  assert.equal(takeRoundRobin([[job('a', 1)]], 64, 0).length, 1);
});

test(
  'a generation stops before its next step when its client goes away; a shared one goes on for the others',
  { timeout: 30_000 },
  async () => {
    const { dir, cleanup } = tempDir('cancel-generation');
    const { embedder } = await tinyBackend(await tinyModelDir(dir));
    const batches: string[] = [];
    const batcher = new EmbeddingBatcher(embedder, { sliceMs: 0, onBatch: (n, kind) => batches.push(`${kind}:${n}`) });
    const until = async (ok: () => boolean): Promise<void> => {
      for (let i = 0; !ok() && i < 2000; i++) await new Promise((r) => setTimeout(r, 1));
      assert.ok(ok());
    };
    try {
      // a chat completion that would run until its context ends: here, one that never ends by itself
      let steps = 0;
      const endless = batcher.generate(1, function* () {
        for (;;) {
          steps++;
          yield;
        }
      });
      const rejected = assert.rejects(endless, /client went away/);
      await until(() => steps >= 5);
      const next = batcher.generate(2, function* () {
        yield;
        return 'answered';
      });
      batcher.cancel(1);
      await rejected;
      const atCancel = steps;
      assert.equal(await next, 'answered', 'the next generation runs');
      assert.equal(steps, atCancel, 'no step after the cancel');
      assert.deepEqual(batches, ['chat:1', 'chat:1']);

      // two requests' greedy queries share a generation: one leaving fails its own queries, the other gets its own
      const opts = { reasoning: 'on' as const, maxReasoningTokens: 40 };
      let tokens = 0;
      const leaving = batcher.embedReasoning(3, ['heart'], opts, () => tokens++);
      const staying = batcher.embedReasoning(4, ['gene therapy'], opts);
      const gone = assert.rejects(leaving, /client went away/);
      await until(() => tokens >= 1);
      batcher.cancel(3);
      await gone;
      const atLeave = tokens;
      const [alone] = await batcher.embedReasoning(5, ['gene therapy'], opts);
      assert.deepEqual((await staying)[0], alone, 'the query that stayed is answered as if asked alone');
      assert.equal(tokens, atLeave, 'the row that left generated no token after the cancel');
      assert.deepEqual(batches.slice(2), ['reasoning:2', 'reasoning:1']);
    } finally {
      cleanup();
    }
  },
);

test('WorkerBackend.start refuses batching that would stall, in one sentence, before a worker starts', async () => {
  const { dir, cleanup } = tempDir('wbopts');
  try {
    const modelDir = await tinyModelDir(dir);
    // a batch of at most 0 inputs never started: every request waited forever
    const cases: [string, WorkerBackendOptions, string][] = [
      [modelDir, { maxBatchInputs: 0 }, "'maxBatchInputs' must be a positive integer (got 0)."],
      [
        modelDir,
        { maxBatchInputs: '8' as unknown as number },
        "'maxBatchInputs' must be a positive integer (got '8').",
      ],
      [modelDir, { maxWaitMs: -1 }, "'maxWaitMs' must be an integer in [0, 60000] (got -1)."],
      // a number failed inside node:path; '' would have loaded the working directory as the model
      [5 as unknown as string, {}, 'the model folder must be a path (a non-empty string) (got 5).'],
      ['', {}, "the model folder must be a path (a non-empty string) (got '')."],
    ];
    for (const [folder, opts, message] of cases) {
      const outcome = await WorkerBackend.start(folder, opts).then(
        async (w) => {
          await w.close();
          return 'started';
        },
        (e: unknown) => e,
      );
      assert.ok(outcome instanceof RangeError && outcome.message === message, `${message}: ${String(outcome)}`);
    }
  } finally {
    cleanup();
  }
});

test('WorkerBackend refuses texts and query options as Embedder does, before the worker gets them', async () => {
  const { dir, cleanup } = tempDir('wbargs');
  const backend = await WorkerBackend.start(await tinyModelDir(dir), { maxLength: 128 });
  try {
    // taken as given, 'abc' was three texts, { } was embedded, and a fractional token budget failed in the model
    const cases: [() => Promise<unknown>, string][] = [
      [() => backend.embedDocuments('abc' as unknown as string[]), 'the document texts must be an array of strings'],
      [
        () => backend.embedDocuments([{}] as unknown as string[]),
        'document text [0] must be a string (got an object).',
      ],
      [() => backend.encodeDocuments([5] as unknown as string[]), 'document text [0] must be a string (got 5).'],
      [() => backend.embedQueries([null] as unknown as string[]), 'query text [0] must be a string (got null).'],
      [
        () => backend.embedQueries(['a'], { reasoning: 'on', maxReasoningTokens: 1.5 }),
        "'maxReasoningTokens' must be an integer",
      ],
      [() => backend.embedQueries(['a'], { temperature: NaN }), "'temperature' must be a number"],
    ];
    for (const [call, message] of cases)
      await assert.rejects(call(), (e: unknown) => e instanceof RangeError && e.message.startsWith(message), message);
    assert.equal((await backend.embedDocuments(['fine'])).length, 1);
  } finally {
    await backend.close();
    cleanup();
  }
});

test('a program that never closes its WorkerBackend exits when its work is done, not before', async () => {
  const { dir, cleanup } = tempDir('wbexit');
  try {
    const modelDir = JSON.stringify(await tinyModelDir(dir));
    const start = `import { WorkerBackend } from 'ENTRY';\nconst w = await WorkerBackend.start(${modelDir});\n`;
    // forgets close(): the idle worker must not hold the process open, as an http Agent's idle sockets do not
    const forgets = `${start}console.log((await w.embedDocuments(['gene therapy']))[0].length);\n`;
    // awaits nothing: only the answer the worker owes keeps the process alive until it comes
    const pending =
      `${start}w.embedQueries(['heart'], { reasoning: 'on', maxReasoningTokens: 20 })` +
      `.then(([q]) => console.log('answered', q.vector.length));\n`;
    const [a, b] = await Promise.all([
      runProgram(dir, 'forgets', forgets, 30_000),
      runProgram(dir, 'pending', pending, 30_000),
    ]);
    assert.deepEqual([a.code, a.signal, a.stdout], [0, null, '32\n'], a.stderr);
    assert.deepEqual([b.code, b.signal, b.stdout], [0, null, 'answered 32\n'], b.stderr);
  } finally {
    cleanup();
  }
});
