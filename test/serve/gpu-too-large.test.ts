/**
 * `search-r3 serve --device webgpu` given inputs whose forward batch is larger than the GPU binds (a wide
 * MLP on lavapipe's 128 MiB bindings, a real limit of the adapter): the batch runs again in halves, so the
 * request is answered as it would be on a larger GPU; an input too large alone fails only its own request,
 * with a 400 that names the bytes and what to shrink; the model worker carries on, and the log holds no
 * stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { postEmbeddings as embeddings, request } from '../helpers/http.js';
import { tinyModel } from '../helpers/tiny-model.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { CliProcess } from '../helpers/cli-process.js';
import { tempDir } from '../search-index/fixtures.js';

/** Sized for an adapter that binds 128 MiB (lavapipe, browsers' default): one that binds more accepts all of it. */
function skip(): string | false {
  const why = webgpuSkip();
  if (why !== false) return why;
  const f = T.webgpuKernels()!.gpu.facts;
  return Math.min(f.maxBufferSize, f.maxStorageBufferBindingSize) > 2 ** 27 ? 'the GPU binds more than 128 MiB' : false;
}

/** A text of about `words` tokens. */
const text = (words: number, seed: number): string =>
  Array.from({ length: words }, (_, i) => ['alpha', 'beta', 'gamma', 'delta', 'omega'][(i * seed) % 5]).join(' ');

test(
  'a forward batch larger than the GPU binds runs in halves; an input too large alone is a 400 naming its bytes',
  { skip: skip(), timeout: 300_000 },
  async () => {
    const { dir, cleanup } = tempDir('gpu-too-large');
    // 163,840 MLP columns: a batch of more than 204 tokens needs a tensor over 128 MiB (3 inputs of about 70 do);
    // 256 tokens alone do
    const model = path.join(dir, 'model');
    await saveModelFolder(
      model,
      tinyModel(7, { hiddenSize: 32, intermediateSize: 163_840, maxPositionEmbeddings: 256, numHiddenLayers: 1 }),
    );
    const serve = new CliProcess(['serve', '--model', model, '--port', '0', '--device', 'webgpu']);
    try {
      const url = (await serve.waitFor(/serving embeddings at (http:\/\/\S+) /, 120_000))[1]!;
      const inputs = Array.from({ length: 3 }, (_, i) => text(12, i + 1));
      const many = await embeddings(url, inputs);
      assert.equal(many.status, 200, JSON.stringify(many.body));
      const vectors = (many.body.data as { embedding: number[] }[]).map((d) => d.embedding);
      assert.equal(vectors.length, 3);
      // the same as the input embedded alone, in a batch that fits
      const alone = await embeddings(url, inputs[2]);
      assert.equal(alone.status, 200, JSON.stringify(alone.body));
      const single = (alone.body.data as { embedding: number[] }[])[0].embedding;
      single.forEach((v, i) => assert.ok(Math.abs(v - vectors[2][i]) < 1e-4, `${i}: ${v} vs ${vectors[2][i]}`));

      const long = await embeddings(url, text(400, 3), { truncate: true });
      assert.equal(long.status, 400, JSON.stringify(long.body));
      assert.match(
        long.body.error!.message,
        new RegExp(
          '^a tensor of \\d+ bytes is larger than the largest buffer this GPU \\(.+\\) binds \\(134217728 bytes\\): ' +
            'for activations, use a shorter input \\(the server bounds them with --max-tokens\\); ',
        ),
      );
      // the model worker carries on, on the same device
      assert.equal((await embeddings(url, 'after the refusal')).status, 200);
      const health = await request(url, 'GET', '/health');
      assert.deepEqual(health.body.model_worker, { state: 'ready', restarts: 0 });
    } finally {
      assert.equal(await serve.stop(), 0, serve.output);
      cleanup();
    }
    assert.doesNotMatch(serve.output, /^\s+at /m, 'a stack trace in the log');
  },
);
