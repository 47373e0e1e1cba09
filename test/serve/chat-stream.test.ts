/**
 * Streamed chat completions (`"stream": true`): OpenAI's chunks, read by the official client, add up to
 * the completion the same request gets whole; nothing of a stop is ever sent; usage comes last when asked.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { sendableContent } from '../../src/serve/chat.js';
import { type RunningServer, startSearchServer } from '../../src/serve/server.js';
import { leaveAfterFirstBytes, post } from '../helpers/http.js';
import { tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';

test('sendable content stops before a stop, holds back what could grow into one and an unfinished character', () => {
  assert.equal(sendableContent('Hello world, again', ['world']), 'Hello ');
  assert.equal(sendableContent('Hello wor', ['world']), 'Hello ', 'the tail could still become the stop');
  assert.equal(sendableContent('Hello wax', ['world']), 'Hello wax', 'it cannot any more');
  assert.equal(sendableContent('Hello w', ['xyz', 'wo']), 'Hello ');
  assert.equal(sendableContent('caf\uFFFD', []), 'caf', 'the rest of the character is to come');
  assert.equal(sendableContent('ab', []), 'ab');
  // as the text grows, each answer extends the one before
  const text = 'the work of a stopwatch stops at the stop';
  for (const stops of [['stop'], ['of a s', 'at t'], ['sto', 'stopwatch'], ['the w']]) {
    let before = '';
    for (let n = 0; n <= text.length; n++) {
      const now = sendableContent(text.slice(0, n), stops);
      assert.ok(now.startsWith(before), `${JSON.stringify(stops)} at ${n}: ${now} extends ${before}`);
      assert.ok(!stops.some((s) => now.includes(s)));
      before = now;
    }
    assert.equal(before, text.slice(0, Math.min(...stops.map((s) => text.indexOf(s)))));
  }
});

const KEY = 'chat-key';
let server: RunningServer;
let client: OpenAI;
let scratch: { dir: string; cleanup: () => void };

before(async () => {
  scratch = tempDir('chat-stream');
  const backend = await tinyBackend(await tinyModelDir(scratch.dir));
  server = await startSearchServer({ backend, port: 0, apiKey: KEY });
  client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
});

after(async () => {
  await server.close();
  scratch.cleanup();
});

// sampled, so that the tiny random model writes some printable text among its bytes
const ask = { model: 'search-r3', messages: [{ role: 'user' as const, content: 'which protein binds?' }] };
const sampling = { max_tokens: 30, temperature: 1, seed: 7 };

/** The chunks of a streamed completion, read by the official client. */
async function streamed(
  params: Partial<OpenAI.ChatCompletionCreateParamsStreaming>,
): Promise<OpenAI.ChatCompletionChunk[]> {
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of await client.chat.completions.create({ ...ask, ...sampling, ...params, stream: true })) {
    chunks.push(c);
  }
  return chunks;
}

const contentOf = (chunks: OpenAI.ChatCompletionChunk[]): string =>
  chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');

test('a streamed completion comes in pieces that add up to the whole one, then its finish and usage', async () => {
  const whole = await client.chat.completions.create({ ...ask, ...sampling });
  const chunks = await streamed({ stream_options: { include_usage: true } });
  assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
  assert.equal(chunks[0]!.object, 'chat.completion.chunk');
  assert.ok(chunks.every((c) => c.id === chunks[0]!.id && c.created === chunks[0]!.created && c.model === 'search-r3'));
  const pieces = chunks.filter((c) => c.choices[0]?.delta.content);
  assert.ok(pieces.length >= 5, `${pieces.length} pieces of ${JSON.stringify(whole.choices[0]!.message.content)}`);
  assert.equal(contentOf(chunks), whole.choices[0]!.message.content);

  const usage = chunks.pop()!;
  assert.deepEqual(usage.choices, []);
  assert.deepEqual(usage.usage, whole.usage);
  const finish = chunks.pop()!;
  assert.equal(finish.choices[0]!.finish_reason, whole.choices[0]!.finish_reason);
  assert.deepEqual(finish.choices[0]!.delta, {});
  assert.ok(chunks.every((c) => c.usage === null && c.choices[0]!.finish_reason === null));

  // without stream_options: no usage field and no usage chunk
  const plain = await streamed({});
  assert.ok(plain.every((c) => !('usage' in c) && c.choices.length === 1));
  assert.equal(contentOf(plain), whole.choices[0]!.message.content);
});

test('a text stop is never sent, not even the part of it that came before the token completing it', async () => {
  const free = (await client.chat.completions.create({ ...ask, ...sampling })).choices[0]!.message.content!;
  // two printable characters from the middle of the text: where generation would stop
  const at = Array.from(free, (_, i) => i).find((i) => i >= 4 && /^[!-~]{2}$/.test(free.slice(i, i + 2)));
  assert.ok(at !== undefined, `no two printable characters in ${JSON.stringify(free)}`);
  const stop = free.slice(at, at + 2);
  const whole = await client.chat.completions.create({ ...ask, ...sampling, stop: ['no such text', stop] });
  const cut = free.slice(0, free.indexOf(stop));
  assert.equal(whole.choices[0]!.message.content, cut);
  const chunks = await streamed({ stop: ['no such text', stop] });
  assert.equal(contentOf(chunks), cut);
  const last = chunks[chunks.length - 1]!.choices[0]! as OpenAI.ChatCompletionChunk.Choice & { stop_reason: string };
  assert.equal(last.finish_reason, 'stop');
  assert.equal(last.stop_reason, stop);
});

test('the raw stream is server-sent events ending in [DONE]; a bad request is a JSON 400, not an event', async () => {
  const auth = { authorization: `Bearer ${KEY}` };
  const r = await post(server.url, '/v1/chat/completions', { ...ask, max_tokens: 3, stream: true }, auth);
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/event-stream/);
  const events = r.raw.toString().split('\n\n').filter(Boolean);
  assert.ok(events.every((e) => e.startsWith('data: ')));
  assert.equal(events.pop(), 'data: [DONE]');
  assert.equal(JSON.parse(events.pop()!.slice(6)).choices[0].finish_reason, 'length');

  const bad = await post(server.url, '/v1/chat/completions', { ...ask, temperature: -1, stream: true }, auth);
  assert.equal(bad.status, 400);
  assert.match(String(bad.headers['content-type']), /^application\/json/);
  assert.equal(bad.body.error?.param, 'temperature');
});

test('a client that leaves a stream is no error: nothing is logged for the work dropped for it', async (t) => {
  // the model as the worker answers a request whose client went away: its content so far, then the cancel
  let cancelled!: Promise<void>;
  t.mock.method(server.backend, 'chat', (_job: unknown, signal: AbortSignal, onContent: (piece: string) => void) => {
    onContent('The');
    const gone = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new Error('cancelled: the client went away'))),
    );
    cancelled = gone.then(undefined, () => undefined);
    return gone;
  });
  const logged = t.mock.method(console, 'error', () => undefined);
  const auth = { authorization: `Bearer ${KEY}` };
  await leaveAfterFirstBytes(server.url, '/v1/chat/completions', { ...ask, stream: true }, auth);
  await cancelled;
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    logged.mock.calls.map((c) => c.arguments),
    [],
  );
});
