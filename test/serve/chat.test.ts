/** Chat completions in the model worker (src/serve/chat.ts): stops, what usage counts, a chat template's failures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { generate, runSteps } from '../../src/model/generate.js';
import { chatSteps, prepareChat } from '../../src/serve/chat.js';
import { HttpError } from '../../src/serve/http-error.js';
import type { ChatJob, ChatResult } from '../../src/serve/worker-protocol.js';
import { startSearchServer } from '../../src/serve/server.js';
import { tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';

test(
  'a text stop ends the generation at the token that completes it, even across tokens; the content is cut ' +
    'before it and usage counts the tokens up to that one',
  { timeout: 60_000 },
  async () => {
    const { dir, cleanup } = tempDir('chat-stop');
    try {
      const { embedder } = await tinyBackend(await tinyModelDir(dir));
      const tok = embedder.tokenizer;
      // sampled, so that the tiny random model writes some ASCII among its bytes
      const job: ChatJob = {
        messages: [{ role: 'user', content: 'which protein binds?' }],
        maxTokens: 25,
        temperature: 1,
        seed: 1,
        stops: [],
      };
      const run = (stops: string[]): ChatResult => {
        const j = { ...job, stops };
        return runSteps(chatSteps(embedder, j, prepareChat(embedder, j)));
      };
      const free = run([]);
      assert.equal(free.completionTokens, 25);
      const prepared = prepareChat(embedder, job);
      const [g] = generate(embedder.model, [prepared.prompt], {
        maxNewTokens: 25,
        temperature: 1,
        seed: 1,
        stopTokens: [...prepared.stopIds.keys()],
      });
      // a stop made of the end of one printable token and the whole of the next: it spans two tokens
      const text = (ids: number[]): string => tok.decode(ids, { skipSpecialTokens: true });
      const printable = (i: number): boolean => /^[!-~][ -~]*$/.test(text([g.tokens[i]!]).trim() || '\u0000');
      const i = g.tokens.findIndex((_, k) => k >= 3 && k < 20 && printable(k) && printable(k + 1));
      assert.ok(i >= 0, `no two printable tokens in a row: ${JSON.stringify(free.content)}`);
      const stop = text([g.tokens[i]!]).slice(-1) + text([g.tokens[i + 1]!]);
      let completing = 1;
      while (!text(g.tokens.slice(0, completing)).includes(stop)) completing++;
      assert.ok(!text([g.tokens[completing - 1]!]).includes(stop), 'the stop spans tokens');

      const r = run(['no such text', stop]);
      assert.equal(r.content, free.content.slice(0, free.content.indexOf(stop)));
      assert.equal(r.finish, 'stop');
      assert.equal(r.stopReason, stop);
      assert.equal(r.completionTokens, completing, 'generation ended at the token that completed the stop');
      assert.ok(r.completionTokens < 25);
    } finally {
      cleanup();
    }
  },
);

test(
  "a chat template's failure never shows the server's paths: a 400 naming messages when these messages are at " +
    'fault, a 500 naming the file by name when the template is (it renders no plain question)',
  { timeout: 60_000 },
  async () => {
    const { dir, cleanup } = tempDir('chat-template-fails');
    try {
      /** prepareChat with a model whose chat_template.jinja is `template`: the HttpError it throws. */
      const refusal = async (seed: number, template: string, role: 'system' | 'user'): Promise<HttpError> => {
        const modelDir = await tinyModelDir(dir, seed);
        writeFileSync(path.join(modelDir, 'chat_template.jinja'), template);
        const { embedder } = await tinyBackend(modelDir);
        const job: ChatJob = { messages: [{ role, content: 'x' }], temperature: 0, stops: [] };
        try {
          prepareChat(embedder, job);
        } catch (e) {
          assert.ok(e instanceof HttpError, String(e));
          assert.ok(!e.message.includes(dir), e.message);
          return e;
        }
        assert.fail('prepareChat took the conversation');
      };
      const turns = '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}';
      // both templates render the embedding prompts (system, user, assistant) the model loads with
      const raise = (when: string, why: string): string => `{% if ${when} %}{{ raise_exception('${why}') }}{% endif %}`;
      const endsWithSystem = raise("loop.last and m.role == 'system'", 'end with a user turn');
      const lastNotSystem = `{% for m in messages %}${endsWithSystem}{% endfor %}`;
      const refused = await refusal(7, lastNotSystem + turns, 'system');
      assert.equal(refused.status, 400);
      assert.equal(refused.param, 'messages');
      assert.match(refused.message, /^the model's chat template cannot render these messages \(.*end with a user turn/);
      // a template that renders no plain question is at fault, whatever the messages
      const broken = await refusal(8, raise("messages[0].role != 'system'", 'a system turn first') + turns, 'user');
      assert.equal(broken.status, 500);
      assert.match(broken.message, /^internal error: the model's chat_template\.jinja: chat_template cannot render/);
    } finally {
      cleanup();
    }
  },
);

test(
  "an internal error quoting a request reaches the server's stderr without its control characters",
  { timeout: 60_000 },
  async () => {
    const { dir, cleanup } = tempDir('chat-log-escapes');
    try {
      const modelDir = await tinyModelDir(dir, 9);
      // a template that renders no plain question and quotes the first message when it fails: a 500 whose words
      // are the client's
      const quoting =
        "{% if messages[0].role != 'system' %}" +
        "{{ raise_exception('a system turn first, not ' + messages[0].content) }}{% endif %}" +
        '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}';
      writeFileSync(path.join(modelDir, 'chat_template.jinja'), quoting);
      const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
      const logged: string[] = [];
      const write = process.stderr.write;
      process.stderr.write = ((chunk: string | Uint8Array): boolean => {
        logged.push(String(chunk));
        return true;
      }) as typeof process.stderr.write;
      let status: number;
      try {
        const content = 'clear \u001b[2J\u001b]0;title\u0007 here';
        const r = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'search-r3', messages: [{ role: 'user', content }] }),
        });
        status = r.status;
        await r.text();
      } finally {
        process.stderr.write = write;
        await server.close();
      }
      assert.equal(status, 500);
      const log = logged.join('');
      assert.match(log, /a system turn first, not clear \[2J\]0;title here/);
      assert.doesNotMatch(log, /\p{Cc}(?<![\n\t])/u);
    } finally {
      cleanup();
    }
  },
);
