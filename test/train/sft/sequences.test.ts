import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { Embedder } from '../../../src/embed/embedder.js';
import { DEFAULT_TEMPLATES, EMBED_TOKEN } from '../../../src/embed/prompts.js';
import { forwardChunk } from '../../../src/train/sft/batch-loss.js';
import { SequenceEncoder } from '../../../src/train/sft/sequences.js';
import { tinyModel } from '../../helpers/tiny-model.js';

test(
  'a training sequence: labels are exactly the assistant ' +
    'response, and its embedding is the one inference computes',
  () => {
    const { model, tokenizer } = tinyModel(2);
    const enc = new SequenceEncoder(tokenizer, DEFAULT_TEMPLATES, 200);
    const texts = ['a short query', 'a somewhat longer document about letters and numbers 42'];
    const seqs = [enc.encode(texts[0], 'query'), enc.encode(texts[1], 'document')];
    for (const s of seqs) {
      assert.equal(
        tokenizer.decode(s.ids.slice(s.respFrom + 1, s.respTo + 1)),
        `${DEFAULT_TEMPLATES.directResponse}<|im_end|>`,
      );
      assert.equal(s.ids[s.embedAt], tokenizer.tokenToId(EMBED_TOKEN));
    }
    const out = T.noGrad(() => forwardChunk({ model, ref: null }, seqs, undefined, true, false));
    assert.equal(
      out.labels.length,
      seqs.reduce((a, s) => a + s.respTo - s.respFrom, 0),
    );
    const emb = new Embedder(model, tokenizer);
    const inf = [emb.embedQueries([texts[0]])[0].vector, emb.embedDocuments([texts[1]]).vectors[0]];
    const d = model.config.hiddenSize;
    inf.forEach((v, i) => {
      const row = out.emb.data.subarray(i * d, (i + 1) * d);
      const norm = Math.hypot(...row);
      for (let k = 0; k < d; k++) assert.ok(Math.abs(row[k] / norm - v[k]) < 1e-5, `sequence ${i} dim ${k}`);
    });
    // a text longer than the context is cut, counted, and still ends with the whole response
    const long = enc.encode('word '.repeat(500), 'document');
    assert.ok(long.truncated > 0 && long.ids.length <= 200);
    assert.equal(tokenizer.decode(long.ids.slice(long.respFrom + 1)), `${DEFAULT_TEMPLATES.directResponse}<|im_end|>`);
  },
);
