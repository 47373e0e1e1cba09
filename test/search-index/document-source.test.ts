import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  MAX_METADATA_DEPTH,
  readDocuments,
  storedDocument,
  streamDocuments,
} from '../../src/search-index/document-source.js';
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

test("a record with both '_id' and 'id' is named by '_id' and keeps 'id' in its metadata", async () => {
  const { dir, cleanup } = tempDir('doc-source-ids');
  try {
    const file = path.join(dir, 'docs.jsonl');
    writeFileSync(file, '{"_id": "d1", "id": "pmid:42", "text": "one", "year": 2020}\n{"id": 7, "text": "two"}\n');
    const docs = await readDocuments(file);
    assert.deepEqual(
      docs.map((d) => [d.id, d.metadata]),
      [
        ['d1', { id: 'pmid:42', year: 2020 }],
        ['7', undefined],
      ],
    );
  } finally {
    cleanup();
  }
});

test("a JSON line with neither 'title' nor 'text' is refused, as eval refuses it; either alone is taken", async () => {
  const { dir, cleanup } = tempDir('doc-source-text');
  try {
    const file = path.join(dir, 'docs.jsonl');
    writeFileSync(file, '{"_id": "a", "title": "a title"}\n{"_id": "b", "text": ""}\n');
    assert.deepEqual(
      (await readDocuments(file)).map((d) => [d.id, d.title, d.text]),
      [
        ['a', 'a title', ''],
        ['b', '', ''],
      ],
    );
    writeFileSync(file, '{"_id": "a", "text": "one"}\n{"id": "c", "body": "misnamed", "title": null}\n');
    await assert.rejects(readDocuments(file), {
      message:
        `${file}:2: document 'c' has neither 'title' nor 'text' (its fields: id, body, title); a document line is ` +
        '{"_id" (or "id"), "title", "text"}.',
    });
  } finally {
    cleanup();
  }
});

test('a JSON array or an indented JSON document as --input says to write JSON lines', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    const write = (name: string, text: string): string => {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      return file;
    };
    const what = (file: string, line: number, it: string): string =>
      `${file}:${line}: ${it}, where JSON lines hold one object per line; write each document on its own line ` +
      "(jq -c '.[]' turns an array into JSON lines).";
    const spread = 'one JSON document spread over lines (an array or an indented object)';
    const oneLine = write('one-line.json', '[{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}]\n');
    await assert.rejects(readDocuments(oneLine), { message: what(oneLine, 1, 'a JSON array') });
    const pretty = write('pretty.json', JSON.stringify([{ _id: 'a', text: 'x' }], null, 2));
    await assert.rejects(readDocuments(pretty), { message: what(pretty, 1, spread) });
    const object = write('object.json', JSON.stringify({ _id: 'a', text: 'x' }, null, 2));
    await assert.rejects(readDocuments(object), { message: what(object, 1, spread) });
    // a later line that is no JSON is named as such
    const cut = write('cut.jsonl', '{"_id": "a", "text": "x"}\n{"_id": "b",\n');
    await assert.rejects(readDocuments(cut), (e: Error) => e.message.startsWith(`${cut}:2: not valid JSON (`));
  } finally {
    cleanup();
  }
});

test('a pipe or - as --input is refused before it is read: index reads its input twice', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    const stream =
      'index reads its input twice (it checks every document before it stores any), so it cannot read a stream; ' +
      'write the documents to a file and give its path.';
    await assert.rejects(readDocuments('-'), { message: `--input -: ${stream}` });
    const fifo = path.join(dir, 'docs.fifo');
    execFileSync('mkfifo', [fifo]);
    // opening a FIFO for reading would wait for a writer: the refusal must come from its type alone
    await assert.rejects(readDocuments(fifo), {
      message: `--input ${fifo}: is a pipe, socket or device, not a file or folder; ${stream}`,
    });
  } finally {
    cleanup();
  }
});

test('metadata nested deeper than the stored bound is one sentence, in JSON lines and the library', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    const nested = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`;
    const file = path.join(dir, 'deep.jsonl');
    const sentence = (where: string): string =>
      `${where}: the metadata nests objects and arrays more than ${MAX_METADATA_DEPTH} levels deep, which an ` +
      'index does not store; flatten it.';
    // the metadata object is a level: 99 arrays in it are the most stored
    writeFileSync(file, `{"_id": "a", "text": "x", "extra": ${nested(MAX_METADATA_DEPTH - 1)}}\n`);
    assert.equal((await readDocuments(file)).length, 1);
    // thousands of levels overflowed JSON.stringify's stack: a RangeError and its stack trace
    writeFileSync(
      file,
      `{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "x", "metadata": {"m": ${nested(20_000)}}}\n`,
    );
    await assert.rejects(readDocuments(file), { name: 'IndexError', message: sentence(`${file}:2`) });
    const metadata = JSON.parse(`{"m": ${nested(20_000)}}`) as Record<string, unknown>;
    assert.throws(() => storedDocument({ id: 'c', title: '', text: 'x', metadata }, 'document 1 given'), {
      name: 'IndexError',
      message: sentence('document 1 given'),
    });
  } finally {
    cleanup();
  }
});

test('a folder holding only a JSON-lines file of another name than corpus.jsonl names that file', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    writeFileSync(path.join(dir, 'notes.jsonl'), '{"_id": "a", "text": "x"}\n');
    await assert.rejects(readDocuments(dir), {
      message:
        `--input ${dir}: a folder is read as BEIR (corpus.jsonl) or as .txt/.md files, which gave none here; ` +
        `give the JSON-lines file itself (--input ${path.join(dir, 'notes.jsonl')}).`,
    });
  } finally {
    cleanup();
  }
});

test('a text folder entry whose name is not UTF-8 is skipped and counted, never read as another', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    const at = (name: string): Buffer => Buffer.from(`${dir}${path.sep}${name}`);
    // 'café' in Latin-1; the name as a string reads 'caf\uFFFD', which is the name of the file beside it
    const latin1 = Buffer.from('caf\xe9', 'latin1');
    writeFileSync(Buffer.concat([at(''), latin1, Buffer.from('.txt')]), 'latin-1 name');
    writeFileSync(at('caf\uFFFD.txt'), 'replacement character name');
    mkdirSync(Buffer.concat([at(''), latin1]));
    writeFileSync(Buffer.concat([at(''), latin1, Buffer.from('/in.md')]), 'in a latin-1 folder');
    writeFileSync(Buffer.concat([at(''), latin1, Buffer.from('.bin')]), 'not a text file: not counted');
    const skipped: string[] = [];
    const docs = await readDocuments(dir, { onSkip: (file, why) => skipped.push(`${path.basename(file)}: ${why}`) });
    assert.deepEqual(
      docs.map((d) => [d.id, d.text]),
      [['caf\uFFFD.txt', 'replacement character name']],
    );
    assert.deepEqual(skipped.sort(), [
      'caf\uFFFD.txt: with a name not in UTF-8',
      'caf\uFFFD: with a name not in UTF-8',
    ]);
  } finally {
    cleanup();
  }
});

test('a text file over 64 MiB in a text folder is skipped and counted, one over 2 GiB included', async () => {
  const { dir, cleanup } = tempDir('doc-source');
  try {
    writeFileSync(path.join(dir, 'a.txt'), 'kept');
    // sparse files: sizes without the disk space; 3 GiB made readFile throw ERR_FS_FILE_TOO_LARGE
    for (const [name, size] of [
      ['b.txt', 64 * 1024 * 1024 + 1],
      ['c.md', 3 * 1024 ** 3],
    ] as const) {
      writeFileSync(path.join(dir, name), '');
      truncateSync(path.join(dir, name), size);
    }
    const skipped: string[] = [];
    const docs = await readDocuments(dir, { onSkip: (file, why) => skipped.push(`${path.basename(file)}: ${why}`) });
    assert.deepEqual(
      docs.map((d) => d.id),
      ['a.txt'],
    );
    assert.deepEqual(skipped, ['b.txt: over 64 MiB', 'c.md: over 64 MiB']);
  } finally {
    cleanup();
  }
});
