import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { RemoteEmbedder } from '../../src/client/remote-embedder.js';
import { startSearchServer } from '../../src/serve/server.js';
import { encodePrompt } from '../../src/embed/index.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { assertSameVectors, corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { documentText } from '../../src/search-index/document-source.js';

test(
  "the 'openai' protocol: token-id embeddings and chat-completion " +
    'reasoning from a generic OpenAI-compatible server',
  async () => {
    const { dir, cleanup } = tempDir('oaiproto');
    const modelDir = await tinyModelDir(dir);
    const local = await tinyBackend(modelDir);
    // the server stands in for vLLM: it is only spoken to through plain OpenAI fields (token-id input,
    // chat completions)
    const server = await startSearchServer({
      backend: await tinyBackend(modelDir),
      port: 0,
      modelName: 'served-search-r3',
    });
    try {
      const tokenizer = await Tokenizer.fromFolder(modelDir);
      const remote = await RemoteEmbedder.connect([server.url], {
        protocol: 'openai',
        model: 'served-search-r3',
        tokenizer,
        maxLength: 128,
        modelId: local.modelId,
        inputsPerRequest: 4,
      });
      assert.equal(remote.dimension, local.dimension);
      const texts = corpus(10).map(documentText);
      assertSameVectors(await remote.embedDocuments(texts), await local.embedDocuments(texts));
      const qs = ['gene therapy for cancer', 'heart'];
      assertSameVectors(
        (await remote.embedQueries(qs)).map((q) => q.vector),
        (await local.embedQueries(qs)).map((q) => q.vector),
      );

      const opts = { reasoning: 'on' as const, maxReasoningTokens: 6 };
      const rq = await remote.embedQueries(qs, opts);
      const lq = await local.embedQueries(qs, opts);
      const tok = local.embedder.tokenizer;
      const embedId = local.embedder.embedId;
      for (let i = 0; i < qs.length; i++) {
        assert.equal(rq[i].reasoning, lq[i].reasoning, 'greedy analysis as in-process');
        assert.equal(rq[i].forced, lq[i].forced);
        // the protocol's vector: prompt + the analysis text re-encoded + the embed token
        const analysis = lq[i].tokens.filter((t) => t !== embedId && !tok.isSpecial(t));
        const content = tok.decode(analysis, { skipSpecialTokens: true });
        const prompt = encodePrompt(tok, qs[i], 'query', local.templates, 128, true).ids;
        const [want] = local.embedder.forwardBatches([[...prompt, ...tok.encode(content), embedId]]);
        assertSameVectors([rq[i].vector], [want]);
      }

      // the same endpoints answer the official client
      const client = new OpenAI({ apiKey: 'x', baseURL: `${server.url}/v1`, maxRetries: 0 });
      const chat = await client.chat.completions.create({
        model: 'served-search-r3',
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 5,
        temperature: 0,
      });
      assert.equal(chat.choices.length, 1);
      assert.equal(typeof chat.choices[0].message.content, 'string');
      assert.ok(['stop', 'length'].includes(chat.choices[0].finish_reason));
      assert.ok(chat.usage!.completion_tokens >= 1 && chat.usage!.completion_tokens <= 5);
      const ids = encodePrompt(tok, 'a document', 'document', local.templates, 128).ids;
      const e = await client.embeddings.create({ model: 'served-search-r3', input: [ids] });
      assertSameVectors([Float32Array.from(e.data[0].embedding)], await local.embedDocuments(['a document']));
      assert.equal(e.usage.prompt_tokens, ids.length);
    } finally {
      await server.close();
      cleanup();
    }
  },
);
