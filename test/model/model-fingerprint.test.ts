import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { modelFingerprint } from '../../src/model/model-fingerprint.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';

test('a chat_template.jinja is part of the model: changing it changes the fingerprint', async () => {
  const { dir, cleanup } = tempDir('fingerprint-jinja');
  try {
    const modelDir = await tinyModelDir(dir);
    const plain = await modelFingerprint(modelDir);
    // the template decides the prompts an embedding is computed from, so vectors made with another differ
    writeFileSync(path.join(modelDir, 'chat_template.jinja'), '{{ messages[0].content }}');
    const withFile = await modelFingerprint(modelDir);
    assert.notEqual(withFile, plain);
    writeFileSync(path.join(modelDir, 'chat_template.jinja'), '{{ messages[-1].content }}');
    assert.notEqual(await modelFingerprint(modelDir), withFile);
  } finally {
    cleanup();
  }
});
