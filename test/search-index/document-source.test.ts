import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { readDocuments, streamDocuments } from '../../src/search-index/document-source.js';
import { tempDir } from './fixtures.js';

test('a JSON-lines id given twice is refused by its line, unless the reader leaves that to its consumer', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    const file = path.join(dir, 'docs.jsonl');
    writeFileSync(
      file,
      ['{"_id": "a", "text": "one"}', '{"_id": "b", "text": "two"}', '{"_id": "a", "text": "3"}'].join('\n'),
    );
    await assert.rejects(readDocuments(file), { message: `${file}:3: document id 'a' appears twice.` });
    const ids: string[] = [];
    for await (const d of streamDocuments(file, { refuseDuplicateIds: false })) ids.push(d.id);
    assert.deepEqual(ids, ['a', 'b', 'a']);
  } finally {
    cleanup();
  }
});
