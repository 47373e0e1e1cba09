/**
 * One request must not stall everyone: model work runs off the event loop, sizes are checked before
 * tokenizing, the work one request may queue is bounded, and batches take inputs from requests in turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { startSearchServer } from '../../src/serve/server.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { type Reply, post, postEmbeddings as embeddings, request } from '../helpers/http.js';

const WORDS = ['protein', 'cell', 'cancer', 'vaccine', 'gene', 'brain', 'heart', 'virus', 'drug', 'trial', 'mouse'];

/** A text of exactly `n` tokens (words in a varied order, so every input differs). */
function textOfTokens(tok: Tokenizer, n: number, seed: number): string {
  const words: string[] = [];
  while (tok.encode(words.join(' ')).length < n) words.push(WORDS[(seed + words.length * 7) % WORDS.length]);
  while (tok.encode(words.join(' ')).length > n) words.pop();
  return words.join(' ');
}

interface Probe {
  ms: number;
  during: boolean;
}

/** Runs `work` while probing GET /health every 20 ms; each probe records whether the work was still running. */
async function probeHealthDuring<T>(url: string, work: Promise<T>): Promise<{ result: T; probes: Probe[] }> {
  let done = false;
  const finished = work.finally(() => {
    done = true;
  });
  const probes: Probe[] = [];
  const prober = (async () => {
    while (!done) {
      const r = await request(url, 'GET', '/health');
      assert.equal(r.status, 200);
      probes.push({ ms: r.ms, during: !done });
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  const result = await finished;
  await prober;
  return { result, probes };
}

test('/health answers within 500 ms while the largest requests the limits allow and a 1 MB input run', async () => {
  const { dir, cleanup } = tempDir('resp');
  const modelDir = await tinyModelDir(dir);
  const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
  try {
    const tok = await Tokenizer.fromFolder(modelDir);
    // the most inputs, each of the most tokens (the model's cut, 128)
    const texts = Array.from({ length: 256 }, (_, i) => textOfTokens(tok, 128, i));
    const huge = 'protein cell cancer '.repeat(50_000); // 1 MB
    // cut to fit their prompts (truncate): each input then costs a whole context
    const work = Promise.all([
      embeddings(server.url, texts, { truncate: true }),
      // the most reasoning one request may ask for by default: 64 queries × 128 tokens, sampled
      embeddings(
        server.url,
        texts.slice(0, 64).map((t) => t.slice(0, 60)),
        { mode: 'query', reasoning: 'on', max_reasoning_tokens: 128, temperature: 1.5, seed: 3, truncate: true },
      ),
      embeddings(server.url, huge),
    ]);
    const {
      result: [big, reasoning, oneMb],
      probes,
    } = await probeHealthDuring(server.url, work);
    assert.equal(big.status, 200, JSON.stringify(big.body.error));
    assert.equal((big.body.data as unknown[]).length, 256);
    assert.equal(reasoning.status, 200, JSON.stringify(reasoning.body.error));
    assert.equal(oneMb.status, 400);
    assert.equal(oneMb.body.error?.code, 'context_length_exceeded');
    const slowest = Math.max(...probes.map((p) => p.ms));
    assert.ok(slowest < 500, `the slowest /health took ${slowest.toFixed(0)} ms (${probes.length} probes)`);
    const during = probes.filter((p) => p.during).length;
    assert.ok(during >= 3, `only ${during} of ${probes.length} probes answered while the requests ran`);
  } finally {
    await server.close();
    cleanup();
  }
});

test(
  'a small request is not stuck behind a 256-input one: batches take inputs from requests in turn',
  { timeout: 120_000 },
  async () => {
    const { dir, cleanup } = tempDir('fair');
    const modelDir = await tinyModelDir(dir);
    const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0, maxBatchInputs: 8 });
    try {
      const tok = await Tokenizer.fromFolder(modelDir);
      const texts = Array.from({ length: 256 }, (_, i) => textOfTokens(tok, 100, i));
      let bigDone = 0;
      const big = embeddings(server.url, texts, { truncate: true }).then((r) => {
        bigDone = performance.now();
        return r;
      });
      // wait until the big request's first batch has run, so the small one arrives while it is worked through
      for (;;) {
        const m = await request(server.url, 'GET', '/metrics');
        if (/search_r3_batches_total\{kind="direct"\} [1-9]/.test(m.raw.toString())) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      const small = await embeddings(server.url, 'a small request');
      const smallDone = performance.now();
      assert.equal(small.status, 200);
      assert.equal((await big).status, 200);
      assert.ok(
        smallDone < bigDone,
        `the small request ended ${(smallDone - bigDone).toFixed(0)} ms after the big one`,
      );
    } finally {
      await server.close();
      cleanup();
    }
  },
);

test(
  "a small request is not stuck behind a 64-query analysis: it runs between the generation's steps",
  { timeout: 120_000 },
  async () => {
    const { dir, cleanup } = tempDir('slices');
    const server = await startSearchServer({ backend: await tinyBackend(await tinyModelDir(dir)), port: 0 });
    try {
      const queries = Array.from({ length: 64 }, (_, i) => `query about ${WORDS[i % WORDS.length]} number ${i}`);
      let longDone = 0;
      const ext = {
        mode: 'query',
        reasoning: 'on',
        max_reasoning_tokens: 120,
        temperature: 1.5,
        seed: 1,
        truncate: true,
      };
      const long = embeddings(server.url, queries, ext).then((r) => {
        longDone = performance.now();
        return r;
      });
      // wait until the generation has started
      while (!/search_r3_queue_inputs 64/.test((await request(server.url, 'GET', '/metrics')).raw.toString())) {
        await new Promise((r) => setTimeout(r, 2));
      }
      await new Promise((r) => setTimeout(r, 50));
      const small = await embeddings(server.url, 'a small request');
      const smallDone = performance.now();
      assert.equal(small.status, 200);
      assert.equal((await long).status, 200);
      assert.ok(
        smallDone < longDone,
        `the small request ended ${(smallDone - longDone).toFixed(0)} ms after the generation`,
      );
    } finally {
      await server.close();
      cleanup();
    }
  },
);

test('sizes are checked before tokenizing, and the work one request may queue is bounded', async () => {
  const { dir, cleanup } = tempDir('bounds');
  const modelDir = await tinyModelDir(dir);
  const backend = await tinyBackend(modelDir);
  const index = await SearchIndex.open(path.join(dir, 'idx'), { backend, create: {} });
  await index.addDocuments(corpus(5));
  const server = await startSearchServer({ backend, index, port: 0, maxRequestTokens: 300 });
  const expect400 = (r: Reply, code: string, param: string | null, message: RegExp): void => {
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, code);
    assert.equal(r.body.error?.param, param);
    assert.match(r.body.error!.message, message);
  };
  try {
    const tok = await Tokenizer.fromFolder(modelDir);
    const huge = 'protein cell cancer '.repeat(50_000);
    // far more characters than 128 tokens can hold: refused by its length, not by counting its tokens
    const tooLong = 'context_length_exceeded';
    expect400(await embeddings(server.url, ['fine', huge]), tooLong, 'input[1]', /characters.*at most 128 tokens/);
    expect400(await post(server.url, '/v1/search', { query: huge }), tooLong, 'query', /characters/);
    const chat = { model: 'search-r3', messages: [{ role: 'user', content: huge }] };
    expect400(await post(server.url, '/v1/chat/completions', chat), tooLong, 'messages', /characters/);

    // over the per-request total (300 here): 4 inputs of 100 tokens, each within the per-input limit
    const texts = Array.from({ length: 4 }, (_, i) => textOfTokens(tok, 100, i));
    const total = /'input' has \d+ tokens in all; this server accepts at most 300 tokens per request \(--max-req/;
    expect400(await embeddings(server.url, texts), 'max_tokens_per_request', 'input', total);
    assert.equal((await embeddings(server.url, texts.slice(0, 3), { truncate: true })).status, 200);
    const ids = Array.from({ length: 4 }, () => Array.from({ length: 100 }, () => 5));
    expect400(await embeddings(server.url, ids), 'max_tokens_per_request', 'input', /--max-request-tokens/);

    // reasoning: queries × budget over the default bound of 8192 (the 64 queries × 200 tokens)
    const queries = Array.from({ length: 64 }, (_, i) => `query ${i}`);
    const param = 'search_r3.max_reasoning_tokens';
    const ext = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 200, temperature: 1.5 };
    const over = /64 queries × max_reasoning_tokens 200 = 12800 .*at most 8192 .*--max-request-reasoning-tokens/;
    expect400(await embeddings(server.url, queries, ext), 'max_reasoning_tokens_per_request', param, over);
    // without max_reasoning_tokens the default budget (128) counts
    const rDefault = await embeddings(server.url, [...queries, 'one more'], { mode: 'query', reasoning: 'on' });
    expect400(rDefault, 'max_reasoning_tokens_per_request', param, /65 queries × max_reasoning_tokens 128 /);
  } finally {
    await server.close();
    await index.close();
    cleanup();
  }
});

test('a text its prompt would cut is refused by name, or cut and reported when asked (truncate)', async () => {
  const { dir, cleanup } = tempDir('room');
  const modelDir = await tinyModelDir(dir);
  const backend = await tinyBackend(modelDir);
  const index = await SearchIndex.open(path.join(dir, 'idx'), { backend, create: {} });
  await index.addDocuments(corpus(5));
  const server = await startSearchServer({ backend, index, port: 0 });
  try {
    const tok = await Tokenizer.fromFolder(modelDir);
    // 100 tokens: under the model's 128, but not with the document prompt around it
    const [short, long] = [textOfTokens(tok, 5, 1), textOfTokens(tok, 100, 2)];
    const n = tok.encode(long).length;
    const refused = await embeddings(server.url, [short, long]);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error?.code, 'context_length_exceeded');
    assert.equal(refused.body.error?.param, 'input[1]');
    assert.match(
      refused.body.error!.message,
      new RegExp(
        `input\\[1\\] has ${n} tokens, and the document prompt leaves room for \\d+ of the model's 128;` +
          ".*'search_r3\\.truncate'",
      ),
    );
    const cut = await embeddings(server.url, [short, long], { truncate: true });
    assert.equal(cut.status, 200, JSON.stringify(cut.body.error));
    const reports = cut.body.search_r3 as { truncated_tokens: number }[];
    assert.equal(reports[0].truncated_tokens, 0);
    assert.ok(reports[1].truncated_tokens > 0 && reports[1].truncated_tokens < n, JSON.stringify(reports));
    // the vector of the cut text is what in-process encoding (which cuts) gives
    const [inProcess] = await backend.embedDocuments([long]);
    const served = (cut.body.data as { embedding: number[] }[])[1].embedding;
    served.forEach((x, i) => assert.ok(Math.abs(x - inProcess[i]) <= 1e-6, `component ${i}: ${x} vs ${inProcess[i]}`));
    // cutting lifts the per-input limit: a text 20 times the context is cut too (the request's total still counts)
    const huge = await embeddings(server.url, long.repeat(20), { truncate: true });
    assert.equal(huge.status, 200, JSON.stringify(huge.body.error));

    // a reasoning query: its analysis budget takes room too, and the message says it may be lowered
    const query = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 16 };
    const q = await embeddings(server.url, long, query);
    assert.equal(q.status, 400);
    assert.match(
      q.body.error!.message,
      /reasoning prompt with max_reasoning_tokens 16 .*lower search_r3\.max_reasoning_tokens/,
    );
    assert.equal((await embeddings(server.url, long, { ...query, truncate: true })).status, 200);

    // /v1/search names the query and its own top-level field
    const s = await post(server.url, '/v1/search', { query: long });
    assert.equal(s.status, 400);
    assert.equal(s.body.error?.param, 'query');
    assert.match(s.body.error!.message, new RegExp(`query has ${n} tokens.*set 'truncate'`));
    const sCut = await post(server.url, '/v1/search', { query: long, truncate: true });
    assert.equal(sCut.status, 200, JSON.stringify(sCut.body.error));
    assert.ok((sCut.body.truncated_tokens as number) > 0, JSON.stringify(sCut.body.truncated_tokens));
    const bad = await post(server.url, '/v1/search', { query: short, truncate: 'yes' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.param, 'truncate');
  } finally {
    await server.close();
    await index.close();
    cleanup();
  }
});
