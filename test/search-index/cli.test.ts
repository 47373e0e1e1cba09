import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCliAsync } from '../helpers/cli.js';
import { inPool } from '../helpers/pool.js';
import { repoRoot } from '../helpers/repo.js';
import { lanceRows } from '../queue/store-contents.js';
import { startSearchServer } from '../../src/serve/server.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { corpus, tempDir, tinyBackend, tinyModelDir, writeJsonl } from './fixtures.js';

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runCliAsync(args);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Command lines that do not depend on each other, two at a time (CI has two cores); results in order. */
function clis(...lines: string[][]): Promise<{ code: number | null; stdout: string; stderr: string }[]> {
  return inPool(lines, (line) => cli(...line));
}

test('search-r3 index / search / index --delete from the command line', async () => {
  const { dir, cleanup } = tempDir('cli');
  try {
    const model = await tinyModelDir(dir);
    const docs = corpus(15);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, docs, { source: 'test' });
    const out = path.join(dir, 'idx');
    let r = await cli('index', '--model', model, '--input', input, '--out', out, '--chunk-size', '4');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /15 documents indexed \(15 encoded now, 0 unchanged\)/);
    assert.match(r.stderr, /encoding: 15\/15 \(100\.0%\)/);

    const reason = ['--reasoning', 'on', '--max-reasoning-tokens', '4'];
    // reads of the one index, two at a time; the second hybrid search after the first (which saves bm25.bin)
    const [found, reasoned] = await clis(
      ['search', '--index', out, '-k', '3', '--json', docs[4].title + '\n' + docs[4].text],
      ['search', '--index', out, ...reason, '--hybrid', 'gene therapy'],
    );
    const [old, long] = await clis(
      // the option's old name still works, and says the new one
      ['search', '--index', out, '--reasoning', 'on', '--max-reasoning', '4', '--hybrid', 'gene therapy'],
      // a query longer than its prompt leaves room for is searched cut, and stderr says so
      ['search', '--index', out, ...reason, 'gene therapy '.repeat(40)],
    );
    r = found;
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { data: { rank: number; id: string; score: number; metadata: unknown }[] };
    assert.equal(res.data.length, 3);
    assert.equal(res.data[0].id, docs[4].id);
    assert.equal(res.data[0].rank, 1);
    assert.deepEqual(res.data[0].metadata, { source: 'test' });

    r = reasoned;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^reasoning/);
    assert.match(r.stdout, /^\s+1\. /m);
    assert.equal(r.stderr, '');
    assert.equal(old.code, 0, old.stderr);
    assert.equal(old.stdout, r.stdout);
    assert.equal(
      old.stderr,
      'search-r3: --max-reasoning is now called --max-reasoning-tokens (as in eval and demo); the old name still ' +
        'works.\n',
    );
    r = long;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the query was cut by \d+ tokens to fit its prompt and analysis budget in the model's cut/);
    assert.match(r.stderr, /shorten it, or lower --max-reasoning-tokens to search with all of it/);

    // a second run with one more document encodes just that one
    writeJsonl(input, [...docs, { id: 'new', title: 'new', text: 'brand new' }], { source: 'test' });
    r = await cli('index', '--model', model, '--input', input, '--out', out);
    assert.match(r.stdout, /16 documents indexed \(1 encoded now, 15 unchanged\)/);
    r = await cli('index', '--out', out, '--delete', 'new,d000,ghost');
    assert.match(r.stdout, /deleted 2 documents; not in the index: ghost/);

    // another model may not add to this index
    const other = await tinyModelDir(dir, 99);
    r = await cli('index', '--model', other, '--input', input, '--out', out);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /index\.json: the index was built with model sha256:\w+ .* vectors from different models cannot be mixed/,
    );
  } finally {
    cleanup();
  }
});

test('a --max-length too small for the prompt templates is refused before the index exists', async () => {
  const { dir, cleanup } = tempDir('cli-max-length');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(3));
    const out = path.join(dir, 'idx');
    const r = await cli('index', '--model', model, '--input', input, '--out', out, '--max-length', '3');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /prompt template alone needs \d+ tokens, more than the 3 left for it; raise maxLength/);
    assert.equal(existsSync(out), false, 'no index recording the setting');
    const ok = await cli('index', '--model', model, '--input', input, '--out', out, '--max-length', '64');
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    cleanup();
  }
});

test('a folder of Markdown/text files indexes by relative path; bad input names the file', async () => {
  const { dir, cleanup } = tempDir('clidir');
  try {
    const model = await tinyModelDir(dir);
    const docsDir = path.join(dir, 'notes');
    mkdirSync(path.join(docsDir, 'sub'), { recursive: true });
    writeFileSync(path.join(docsDir, 'a.md'), '# Alpha heading\nalpha body text');
    writeFileSync(path.join(docsDir, 'sub', 'b.txt'), 'beta text');
    writeFileSync(path.join(docsDir, 'ignored.bin'), 'x');
    let r = await cli('index', '--model', model, '--input', docsDir, '--out', path.join(dir, 'idx'));
    assert.equal(r.code, 0, r.stderr);
    const bad = path.join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"_id": "x", "text": "ok"}\n{"text": "no id"}\n');
    const helps = ['index', 'search', 'serve'];
    // independent of each other: two at a time, each refused input with its own --out
    const [found, badLine, noInput, noIndex, ...helped] = await clis(
      ['search', '--index', path.join(dir, 'idx'), '--json', 'alpha'],
      ['index', '--model', model, '--input', bad, '--out', path.join(dir, 'idx2')],
      ['index', '--model', model, '--input', path.join(dir, 'nope'), '--out', path.join(dir, 'idx3')],
      ['search', '--index', path.join(dir, 'nowhere'), 'q'],
      ...helps.map((c) => [c, '--help']),
    );
    r = found;
    const ids = (JSON.parse(r.stdout) as { data: { id: string; title: string }[] }).data
      .map((h) => `${h.id}:${h.title}`)
      .sort();
    assert.deepEqual(ids, ['a.md:Alpha heading', 'sub/b.txt:b']);

    assert.equal(badLine.code, 2);
    assert.match(badLine.stderr, /bad\.jsonl:2: field '_id' \(or 'id'\) is missing/);
    assert.match(noInput.stderr, /--input .*nope: no such file or folder/);
    assert.equal(noIndex.code, 2);
    assert.match(noIndex.stderr, /nowhere\/index\.json is missing/);
    helps.forEach((c, i) => {
      assert.equal(helped[i].code, 0);
      assert.match(helped[i].stdout, new RegExp(`search-r3 ${c} —`));
    });
  } finally {
    cleanup();
  }
});

test('index --remote spreads encoding over servers; search --remote embeds the query there', async () => {
  const { dir, cleanup } = tempDir('cliremote');
  const model = await tinyModelDir(dir);
  const s1 = await startSearchServer({ backend: await tinyBackend(model), port: 0, apiKey: 'k' });
  const s2 = await startSearchServer({ backend: await tinyBackend(model), port: 0, apiKey: 'k' });
  try {
    // one document longer than the model's cut: the servers cut it as in-process encoding does, and say so
    const long = {
      id: 'long',
      title: 'long',
      text: corpus(40, 7)
        .map((d) => d.text)
        .join(' '),
    };
    const docs = [...corpus(12), long];
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, docs);
    const out = path.join(dir, 'idx');
    const [remoteIndex, local] = await clis(
      ['index', '--remote', `${s1.url},${s2.url}`, '--api-key', 'k', '--input', input, '--out', out],
      ['index', '--model', model, '--max-length', '128', '--input', input, '--out', path.join(dir, 'local')],
    );
    let r = remoteIndex;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /13 documents indexed/);
    const cutLine = (stdout: string): string | undefined => /.* were cut to fit\./.exec(stdout)?.[0];
    assert.equal(local.code, 0, local.stderr);
    assert.ok(cutLine(local.stdout), local.stdout);
    assert.equal(cutLine(r.stdout), cutLine(local.stdout));
    const query = docs[3].title + '\n' + docs[3].text;
    // a server that refuses the key: the sentence names the option that sends one
    const keys = [
      [[], 'give it with --api-key <key> or SEARCH_R3_API_KEY'],
      [['--api-key', 'wrong'], 'check --api-key'],
    ] as const;
    // the index names the servers' model, not a folder: without --remote or --model each command says so
    const id = (JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8')) as { model: { id: string } }).model.id;
    const built =
      `search-r3: the index ${out} was built by remote embedding servers (model ${id}, recorded in ` +
      `${path.join(out, 'index.json')}) and names no model folder; pass `;
    const either = '--remote <urls> of servers that run that model, or --model <dir> of its folder.\n';
    const noModel = [
      [['search', '--index', out, 'q'], either],
      [['index', '--input', input, '--out', out], either],
      [['serve', '--index', out, '--port', '0'], '--model <dir> of its folder.\n'],
    ] as const;
    // none of these writes the index: two at a time
    const [remote, ofModel, ...refusals] = await clis(
      ['search', '--index', out, '--remote', s2.url, '--api-key', 'k', '--json', '-k', '2', query],
      // the same index searched in-process with the model folder (the model ids agree)
      ['search', '--index', out, '--model', model, '--json', '-k', '1', query],
      ...keys.map(([key]) => ['search', '--index', out, '--remote', s2.url, ...key, 'q']),
      ...noModel.map(([command]) => [...command]),
    );
    assert.equal(remote.code, 0, remote.stderr);
    assert.equal((JSON.parse(remote.stdout) as { data: { id: string }[] }).data[0].id, docs[3].id);
    keys.forEach(([, how], i) => {
      r = refusals[i];
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^search-r3: .*/v1/models: HTTP 401: .*; ${how}\\.\n$`));
    });
    noModel.forEach(([command, pass], i) => {
      const refused = refusals[keys.length + i];
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(refused.stderr, built + pass, command.join(' '));
    });
    assert.equal((JSON.parse(ofModel.stdout) as { data: { id: string }[] }).data[0].id, docs[3].id);
    // without the key the connection is refused by name, before any document is sent
    writeJsonl(input, [...docs, { id: 'extra', title: '', text: 'one more' }]);
    r = await cli('index', '--remote', s1.url, '--input', input, '--out', out);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /HTTP 401: Missing or incorrect API key/);
  } finally {
    await s1.close();
    await s2.close();
    cleanup();
  }
});

test('odd input: lone surrogates (refused in ids), ids past 2^53, a BEIR folder with metadata, f16 kept', async () => {
  const { dir, cleanup } = tempDir('cli-odd');
  try {
    const model = await tinyModelDir(dir);
    // a lone surrogate is valid JSON; stored as UTF-8 it becomes U+FFFD, and the index must agree with itself
    const surrogates = async (): Promise<void> => {
      const input = path.join(dir, 'docs.jsonl');
      const lines = [
        '{"_id":"ok","text":"protein cell"}',
        '{"_id":"u","text":"a \\ud800 lone"}',
        '{"_id":"t","title":"\\udc01","text":"x","metadata":{"k":"\\ud800"}}',
      ];
      writeFileSync(input, lines.join('\n') + '\n');
      const out = path.join(dir, 'idx');
      let r = await cli('index', '--model', model, '--input', input, '--out', out, '--dtype', 'f16');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /3 documents indexed/);
      assert.doesNotMatch(r.stderr, /damaged/);
      // updated without --dtype: the index keeps its f16
      writeFileSync(input, [...lines, '{"_id":"new","text":"gene"}'].join('\n') + '\n');
      r = await cli('index', '--input', input, '--out', out);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /4 documents indexed \(1 encoded now, 3 unchanged\)/);
      // an id would come back as another one: refused, naming the line
      writeFileSync(input, [...lines, '{"_id":"\\udc01","text":"x"}'].join('\n') + '\n');
      r = await cli('index', '--input', input, '--out', out);
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /docs\.jsonl:4: the id "\\udc01" holds a lone UTF-16 surrogate .* give an id made of whole/,
      );
      r = await cli('search', '--index', out, '--json', 'lone');
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /damaged|not encoded yet/);
      assert.ok((JSON.parse(r.stdout) as { data: { text: string }[] }).data.some((h) => h.text === 'a \uFFFD lone'));
    };

    const others = async (): Promise<void> => {
      const big = path.join(dir, 'big.jsonl');
      writeFileSync(big, '{"_id":12345678901234567890,"text":"x"}\n');
      let r = await cli('index', '--model', model, '--input', big, '--out', path.join(dir, 'big'));
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /big\.jsonl:1: id 12345678901234567000 is a number JSON cannot carry exactly .* as a string/,
      );

      // a BEIR folder reads as its corpus.jsonl does: metadata kept, and no re-encoding when switching between them
      const beir = path.join(dir, 'beir');
      mkdirSync(beir);
      const corpusFile = path.join(beir, 'corpus.jsonl');
      writeFileSync(corpusFile, '{"_id":"a","title":"T","text":"alpha beta","metadata":{"url":"http://x"}}\n');
      const bi = path.join(dir, 'bi');
      r = await cli('index', '--model', model, '--input', beir, '--out', bi);
      assert.equal(r.code, 0, r.stderr);
      r = await cli('index', '--input', corpusFile, '--out', bi);
      assert.match(r.stdout, /1 document indexed \(0 encoded now, 1 unchanged\)/);
      r = await cli('search', '--index', bi, '--json', 'alpha');
      const hit = (JSON.parse(r.stdout) as { data: { metadata: unknown }[] }).data[0];
      assert.deepEqual(hit.metadata, { url: 'http://x' });

      r = await cli('index', '--out', path.join(dir, 'nowhere'), '--delete', 'a');
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--out .*nowhere: no search-r3 index there to delete from/);
      assert.equal(existsSync(path.join(dir, 'nowhere')), false);
    };
    // each on its own files and folders: side by side (CI has two cores)
    await Promise.all([surrogates(), others()]);
  } finally {
    cleanup();
  }
});

test('index --delete takes escaped commas and repeats; --delete-file ids as written, less a BOM', async () => {
  const { dir, cleanup } = tempDir('cli-delete');
  try {
    const model = await tinyModelDir(dir);
    const notes = path.join(dir, 'notes');
    mkdirSync(path.join(notes, 'minutes'), { recursive: true });
    const names = ['minutes/meeting, 2024.md', ' lead.md', 'x.md', 'y.md', 'z.md', 'w.md'];
    names.forEach((n, i) => writeFileSync(path.join(notes, n), `note ${i} about cells`));
    const out = path.join(dir, 'idx');
    let r = await cli('index', '--model', model, '--input', notes, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const left = async (): Promise<string[]> => {
      const index = await SearchIndex.open(out);
      try {
        return index.documentIds().sort();
      } finally {
        await index.close();
      }
    };
    assert.deepEqual(await left(), [...names].sort());

    r = await cli('index', '--out', out, '--delete', 'minutes/meeting\\, 2024.md');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'deleted 1 document.\n');
    // each --delete counts, not only the last
    r = await cli('index', '--out', out, '--delete', 'x.md', '--delete', ' y.md ,ghost');
    assert.equal(r.stdout, 'deleted 2 documents; not in the index: ghost.\n');
    // a file's lines are the ids, their spaces and commas kept; a byte-order mark is no part of the first
    const list = path.join(dir, 'ids.txt');
    writeFileSync(list, '\uFEFF lead.md\r\nw.md\n\nw.md,z.md\n');
    r = await cli('index', '--out', out, '--delete-file', list);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'deleted 2 documents; not in the index: "w.md,z.md".\n');
    assert.deepEqual(await left(), ['z.md']);

    // an indexing run's options are no part of a delete, which says so rather than pass for an indexing run
    r = await cli('index', '--out', out, '--delete', 'ghost', '--input', notes, '--prune');
    assert.equal(r.code, 0, r.stderr);
    const ignored = (o: string): string => `search-r3: ${o} has no effect: --delete and --delete-file delete and exit`;
    assert.match(r.stderr, new RegExp(`^${ignored('--input')}, indexing nothing\\.\n${ignored('--prune')}`, 'm'));
    assert.deepEqual(await left(), ['z.md']);

    // refused before the index is opened: side by side
    writeFileSync(list, '');
    const latin1 = path.join(dir, 'latin1.txt');
    writeFileSync(latin1, Buffer.from('z.md\ncaf\xe9.md\n', 'latin1'));
    const [none, empty, notUtf8] = await clis(
      ['index', '--out', out, '--delete-file', path.join(dir, 'none.txt')],
      ['index', '--out', out, '--delete-file', list],
      ['index', '--out', out, '--delete-file', latin1],
    );
    assert.equal(none.code, 2);
    assert.match(none.stderr, /none\.txt/);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /--delete \(or --delete-file\) needs at least one document id/);
    // an id read with U+FFFD for its bad byte would match no document (or another): nothing is deleted
    assert.equal(notUtf8.code, 2);
    assert.equal(
      notUtf8.stderr,
      `search-r3: --delete-file ${latin1} is not UTF-8 text; save it as UTF-8, one id per line.\n`,
    );
    assert.deepEqual(await left(), ['z.md']);
  } finally {
    cleanup();
  }
});

test('an existing index refuses another --store or --store-uri, as it refuses another --dtype', async () => {
  const { dir, cleanup } = tempDir('cli-store');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(6));
    const local = path.join(dir, 'local');
    const lance = path.join(dir, 'lance');
    const table = path.join(dir, 'table.lance');
    const built = await clis(
      ['index', '--model', model, '--input', input, '--out', local],
      // a store URI alone asks for LanceDB
      ['index', '--model', model, '--input', input, '--out', lance, '--store-uri', table],
    );
    assert.deepEqual(
      built.map((r) => r.code),
      [0, 0],
    );
    assert.ok(existsSync(table) && !existsSync(path.join(lance, 'vectors.usearch')));
    const elsewhere = path.join(dir, 'elsewhere.lance');
    const refused: [string, string[], RegExp][] = [
      [local, ['--store', 'lancedb'], /not in the LanceDB table at .*local\/vectors\.lance; build a new index/],
      [local, ['--store-uri', elsewhere], /not in the LanceDB table at .*elsewhere\.lance; build a new index/],
      [lance, ['--store', 'local'], /table\.lance, not in a local HNSW file .*; build a new index/],
      [lance, ['--store-uri', elsewhere], /table\.lance, not in the LanceDB table at .*elsewhere\.lance/],
      [path.join(dir, 'new'), ['--store', 'local', '--store-uri', elsewhere], /--store-uri names a LanceDB table/],
      // the manifest would record i8 of a table of float32 vectors
      [path.join(dir, 'new'), ['--store', 'lancedb', '--dtype', 'i8'], /^search-r3: --dtype i8 is the local HNSW /],
      [path.join(dir, 'new'), ['--store-uri', elsewhere, '--dtype', 'f16'], /keeps float32 vectors: drop --dtype\.\n$/],
    ];
    // each refused before it writes: two at a time
    const runs = await clis(
      ...refused.map(([out, options]) => ['index', '--model', model, '--input', input, '--out', out, ...options]),
    );
    refused.forEach(([, options, message], i) => {
      assert.equal(runs[i].code, 2, `${options.join(' ')}: ${runs[i].stderr}`);
      assert.match(runs[i].stderr, message);
    });
    assert.ok(!existsSync(elsewhere) && !existsSync(path.join(local, 'vectors.lance')), 'no store was created');
    assert.ok(!existsSync(path.join(dir, 'new')), 'no index was created');
    // left out, or given as they are, the index keeps its own; one run on each index at a time
    const kept: [string, string[]][] = [
      [local, []],
      [lance, []],
      [local, ['--store', 'local']],
      [lance, ['--store', 'lancedb', '--store-uri', table]],
    ];
    for (const pair of [kept.slice(0, 2), kept.slice(2)]) {
      const keptRuns = await clis(
        ...pair.map(([out, options]) => ['index', '--input', input, '--out', out, ...options]),
      );
      pair.forEach(([, options], i) => {
        assert.equal(keptRuns[i].code, 0, `${options.join(' ')}: ${keptRuns[i].stderr}`);
        assert.match(keptRuns[i].stdout, /6 documents indexed \(0 encoded now, 6 unchanged\)/);
      });
    }
  } finally {
    cleanup();
  }
});

test("a LanceDB index made with a relative --out is its folder's: searched elsewhere, copied, updated", async () => {
  const { dir, cleanup } = tempDir('cli-lance-relative');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(6));
    let r = await runCliAsync(
      ['index', '--model', model, '--input', input, '--out', 'idx', '--store', 'lancedb'],
      {},
      dir,
    );
    assert.equal(r.status, 0, r.stderr);
    const idx = path.join(dir, 'idx');
    // from another folder: the table in the index folder is searched, not one 'idx/vectors.lance' names there
    r = await runCliAsync(['search', '--index', idx, '-k', '2', 'gene therapy'], {}, repoRoot);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no table is missing, nothing rebuilt in memory');
    assert.ok(!existsSync(path.join(repoRoot, 'idx')), 'nothing made in the folder it ran from');
    // an index.json of an older search-r3 that kept the default relative to the folder it ran in
    const manifest = path.join(idx, 'index.json');
    const { checksum, ...fields } = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
    assert.ok(checksum, 'an older search-r3 wrote none');
    writeFileSync(manifest, JSON.stringify({ ...fields, storeUri: 'idx/vectors.lance' }));
    r = await runCliAsync(['search', '--index', idx, '-k', '2', 'gene therapy'], {}, repoRoot);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', "the folder's own table is searched");
    // a copy of the folder updates its own table, never the original's
    const copy = path.join(dir, 'copy');
    cpSync(idx, copy, { recursive: true });
    writeJsonl(input, corpus(9));
    r = await runCliAsync(['index', '--input', input, '--out', copy], {}, repoRoot);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await lanceRows(path.join(idx, 'vectors.lance'))).length, 6, 'rows in the original table');
    assert.equal((await lanceRows(path.join(copy, 'vectors.lance'))).length, 9, "rows in the copy's table");
  } finally {
    cleanup();
  }
});

test("an older index.json's relative --store-uri that names nothing from here is refused, not made anew", async () => {
  const { dir, cleanup } = tempDir('cli-lance-unplaced');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(6));
    const store = ['--store', 'lancedb', '--store-uri', 'vecs'];
    let r = await runCliAsync(['index', '--model', model, '--input', input, '--out', 'idx', ...store], {}, dir);
    assert.equal(r.status, 0, r.stderr);
    // as an older search-r3 kept it: the path as typed, relative to the folder it ran in
    const manifest = path.join(dir, 'idx', 'index.json');
    const { checksum, ...fields } = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
    assert.equal(fields.storeUri, path.join(dir, 'vecs'), 'this one keeps it absolute');
    assert.ok(checksum);
    writeFileSync(manifest, JSON.stringify({ ...fields, storeUri: 'vecs' }));
    r = await runCliAsync(['search', '--index', 'idx', '-k', '2', 'gene therapy'], {}, dir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'from the folder it was made in, the path names the table');
    const elsewhere = path.join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const idx = path.join(dir, 'idx');
    const said =
      `${manifest}: field 'storeUri' is 'vecs', a path an older search-r3 kept relative to the folder the index ` +
      `was made from, and nothing is there from ${elsewhere}; run this from that folder, or set 'storeUri' to the ` +
      "LanceDB folder's absolute path (and remove the file's 'checksum', which the edit no longer matches)";
    r = await runCliAsync(['index', '--input', input, '--out', idx], {}, elsewhere);
    assert.equal(r.stderr, `search-r3: ${said}.\n`);
    assert.equal(r.status, 2);
    assert.deepEqual(readdirSync(elsewhere), [], 'no table is made where this run started');
    // a reader searches docs.sqlite's vectors in memory, and says why
    r = await runCliAsync(['search', '--index', idx, '-k', '2', 'gene therapy'], {}, elsewhere);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stderr.includes(said), r.stderr);
    assert.deepEqual(readdirSync(elsewhere), []);
  } finally {
    cleanup();
  }
});

test('index reads --input twice a document at a time: a bad line after 10,000 good ones stages nothing', async () => {
  const { dir, cleanup } = tempDir('cli-stream');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(3));
    const out = path.join(dir, 'idx');
    let r = await cli('index', '--model', model, '--input', input, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    // more than one staging slice (10,000 documents) before the bad line: a single streamed pass would have
    // staged them as pending, for the next run to encode
    const good = Array.from({ length: 12_000 }, (_, i) => JSON.stringify({ _id: `n${i}`, text: `new ${i}` }));
    writeFileSync(input, [...good, '{"_id": "broken", "text": '].join('\n') + '\n');
    r = await cli('index', '--input', input, '--out', out);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`^search-r3: ${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:12001: not valid JSON`),
    );
    const index = await SearchIndex.open(out, {});
    try {
      assert.deepEqual({ ...index.stats(), generation: 0 }, { documents: 3, pending: 0, outdated: 0, generation: 0 });
    } finally {
      await index.close();
    }
  } finally {
    cleanup();
  }
});

test('search and errors print stored text without the control characters that would act on a terminal', async () => {
  const { dir, cleanup } = tempDir('cli-ctl');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    // a colour, an OSC window title ended by BEL, a clear screen: in the id, the title and the text
    const doc = { _id: 'e\u001b[31mred', title: 'T\u001b]0;pwned\u0007', text: 'gene \u001b[2J\r\nclear\u009b' };
    writeFileSync(input, `${JSON.stringify(doc)}\n`);
    const out = path.join(dir, 'idx');
    let r = await cli('index', '--model', model, '--input', input, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const [plain, json] = await clis(['search', '--index', out, 'gene'], ['search', '--index', out, '--json', 'gene']);
    r = plain;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.replace(/ \d\.\d{4} /, ' S '), '  1. S  e[31mred  T]0;pwned\n     gene [2J clear\n');
    // --json gives the document as stored (JSON escapes them)
    r = json;
    const hit = (JSON.parse(r.stdout) as { data: { id: string; title: string; text: string }[] }).data[0];
    assert.deepEqual([hit.id, hit.title, hit.text], [doc._id, doc.title, doc.text]);
    // an error that quotes the id drops them too
    writeFileSync(input, `${JSON.stringify(doc)}\n${JSON.stringify(doc)}\n`);
    r = await cli('index', '--input', input, '--out', out);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /document id 'e\[31mred' appears twice/);
    assert.doesNotMatch(r.stderr, /\p{Cc}(?<!\n)/u);
    // and so does index's note of the documents no longer in --input
    writeFileSync(input, `${JSON.stringify({ _id: 'other', text: 'gene' })}\n`);
    r = await cli('index', '--input', input, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1 document of the index is not in --input \(e\[31mred\)/);
    assert.doesNotMatch(r.stdout, /\p{Cc}(?<!\n)/u);
  } finally {
    cleanup();
  }
});
