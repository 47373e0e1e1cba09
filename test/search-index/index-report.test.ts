/**
 * What `search-r3 index` tells the user: counts that add up after a resume, cut documents, skipped files, stale ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { corpus, tempDir, tinyBackend, tinyModelDir, writeJsonl } from './fixtures.js';

test(
  'after a killed run, index counts what it encoded now and what was already indexed, which add up; search says ' +
    'what is not encoded yet; --prune deletes before it encodes',
  async () => {
    const { dir, cleanup } = tempDir('count');
    try {
      const model = await tinyModelDir(dir);
      const idx = path.join(dir, 'idx');
      const docs = corpus(20).map(({ id, title, text }) => ({ id, title, text }));
      const input = path.join(dir, 'docs.jsonl');
      writeJsonl(input, docs);
      // a run that dies after its second commit of 4 documents: 8 indexed, 12 pending
      const killed = await SearchIndex.open(idx, { backend: await tinyBackend(model), create: {} });
      await assert.rejects(
        killed.addDocuments(docs, {
          documentsPerCommit: 4,
          onChunkCommitted: (p) => {
            if (p.chunks === 2) throw new Error('killed');
          },
        }),
      );
      await killed.close();
      const search = runCli(['search', '--index', idx, '--json', 'protein']);
      assert.equal(search.status, 0, search.stderr);
      assert.match(search.stderr, /12 documents of this index are not encoded yet .*; the results rank the 8 that are/);
      // with --prune and an input without the last 10 documents, those are deleted before encoding, not after
      const fewer = path.join(dir, 'fewer.jsonl');
      writeJsonl(fewer, docs.slice(0, 10));
      const pruned = runCli(['index', '--input', fewer, '--out', idx, '--prune']);
      assert.equal(pruned.status, 0, pruned.stderr);
      assert.match(pruned.stderr, /resuming: 12 documents left pending by an earlier run/);
      // the killed run encoded the 8 longest documents (the index's encoding order: length, then id)
      const encodedFirst = new Set(
        [...docs]
          .sort((a, b) => b.title.length + b.text.length - (a.title.length + a.text.length) || (a.id < b.id ? -1 : 1))
          .slice(0, 8)
          .map((d) => d.id),
      );
      const kept = docs.slice(0, 10).filter((d) => encodedFirst.has(d.id)).length;
      assert.ok(kept < 8, 'some of the pruned documents were indexed, some pending');
      const counts = `${10 - kept} encoded now, ${kept} unchanged, 10 pruned`;
      assert.match(pruned.stdout, new RegExp(`10 documents indexed \\(${counts}\\)`));
      const r = runCli(['index', '--input', input, '--out', idx]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /20 documents indexed \(10 encoded now, 10 unchanged\)/);
    } finally {
      cleanup();
    }
  },
);

/** Documents of the index in docs.sqlite whose stored text starts with `prefix` (0 while the file is busy). */
function indexedWithPrefix(idx: string, prefix: string): number {
  try {
    const db = new Database(path.join(idx, 'docs.sqlite'), { readonly: true, timeout: 0 });
    try {
      const sql = "SELECT count(*) AS n FROM docs WHERE status = 'indexed' AND substr(text, 1, length(?)) = ?";
      return (db.prepare(sql).get(prefix, prefix) as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

test('Ctrl-C stops an update at its last commit and says so in one line (exit 130); a rerun ends it', async () => {
  const { dir, cleanup } = tempDir('sigint');
  try {
    const model = await tinyModelDir(dir);
    const idx = path.join(dir, 'idx');
    const docs = corpus(400).map(({ id, title, text }) => ({ id, title, text }));
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, docs);
    assert.equal(runCli(['index', '--model', model, '--input', input, '--out', idx]).status, 0);
    const changed = path.join(dir, 'changed.jsonl');
    writeJsonl(
      changed,
      docs.map((d) => ({ ...d, text: `CHANGED ${d.text}` })),
    );
    const update = ['index', '--input', changed, '--out', idx, '--commit-every', '1'];
    const p = spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...update]);
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      p.on('exit', (code, signal) => resolve({ code, signal })),
    );
    // interrupted once the update has committed something
    while (indexedWithPrefix(idx, 'CHANGED ') === 0) await new Promise((r) => setTimeout(r, 20));
    p.kill('SIGINT');
    const { code, signal } = await exited;
    assert.deepEqual({ code, signal }, { code: 130, signal: null }, stderr);
    const lines = stderr.trim().split('\n');
    assert.match(
      lines.at(-1)!,
      /^search-r3: SIGINT: stopped at the last commit .*; run the same command again to continue\.$/,
    );
    assert.ok(!existsSync(path.join(idx, 'docs.sqlite-journal')), 'no write was cut off');
    const committed = indexedWithPrefix(idx, 'CHANGED ');
    assert.ok(committed > 0 && committed < 400, `stopped part-way: ${committed} of 400 updated`);

    const search = runCli(['search', '--index', idx, '--json', '-k', '400', 'protein']);
    assert.equal(search.status, 0, search.stderr);
    assert.equal((JSON.parse(search.stdout) as { data: unknown[] }).data.length, 400, 'every document is searchable');
    const rerun = runCli(update);
    assert.equal(rerun.status, 0, rerun.stderr);
    const counts = `${400 - committed} encoded now, ${committed} unchanged`;
    assert.match(rerun.stdout, new RegExp(`400 documents indexed \\(${counts}\\)`));
    assert.equal(indexedWithPrefix(idx, 'CHANGED '), 400);
  } finally {
    cleanup();
  }
});

test(
  'index reports documents cut to the context, a clamped --max-length (which a rerun may give again), and takes ' +
    'the model from an existing index',
  async () => {
    const { dir, cleanup } = tempDir('cut');
    try {
      const model = await tinyModelDir(dir);
      const idx = path.join(dir, 'idx');
      const input = path.join(dir, 'docs.jsonl');
      const docs = [...corpus(6), { id: 'long', title: 'long', text: 'protein cell '.repeat(200) }];
      writeJsonl(input, docs);
      let r = runCli([
        'index',
        '--model',
        model,
        '--input',
        input,
        '--out',
        idx,
        '--max-length',
        '100000',
        '--commit-every',
        '3',
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /--max-length 100000 is above the model's context; texts are cut at 256 tokens/);
      assert.match(r.stdout, /1 of the 7 documents encoded now was longer than 256 tokens and was cut to fit/);
      // the same command again: the value it lowers to is the index's cut length; another one is refused
      const again = ['index', '--input', input, '--out', idx, '--max-length'];
      r = runCli([...again, '100000']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /7 documents indexed \(0 encoded now, 7 unchanged\)/);
      r = runCli([...again, '100']);
      assert.equal(r.status, 2, r.stderr);
      assert.match(
        r.stderr,
        /--max-length 100 differs from the 256 tokens this index cuts texts at; build a new index/,
      );
      // no --model: the index's own; a changed document is encoded again with it
      writeJsonl(input, [...docs.slice(0, 6), { id: 'long', title: 'long', text: 'short now' }]);
      r = runCli(['index', '--input', input, '--out', idx]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /7 documents indexed \(1 encoded now, 6 unchanged\)/);
      assert.doesNotMatch(r.stdout, /cut to fit/);
      // the former flag name still works, and says what it is called now
      r = runCli(['index', '--input', input, '--out', idx, '--chunk-size', '2']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /--chunk-size is now called --commit-every \(documents per commit\)/);
      // a new index without a model is refused by name
      r = runCli(['index', '--input', input, '--out', path.join(dir, 'new')]);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /give --model <dir> \(or --remote <urls>\): a new index needs a model/);
    } finally {
      cleanup();
    }
  },
);

test(
  'folder input: links out of the folder, binary and non-UTF-8 files, files of other kinds are skipped and ' +
    'counted, a BEIR corpus among them named; removed files are reported, then pruned',
  async () => {
    const { dir, cleanup } = tempDir('folder');
    try {
      const model = await tinyModelDir(dir);
      const notes = path.join(dir, 'notes');
      mkdirSync(path.join(notes, 'sub'), { recursive: true });
      writeFileSync(path.join(notes, 'a.md'), '# Alpha\nalpha body');
      writeFileSync(path.join(notes, 'sub', 'b.txt'), 'beta body');
      writeFileSync(path.join(dir, 'secret.txt'), 'outside the indexed folder');
      symlinkSync(path.join(dir, 'secret.txt'), path.join(notes, 'leak.txt'));
      symlinkSync(path.join(notes, 'a.md'), path.join(notes, 'alias.md'));
      symlinkSync(dir, path.join(notes, 'up'));
      writeFileSync(path.join(notes, 'image.txt'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13]));
      writeFileSync(path.join(notes, 'latin1.txt'), Buffer.from('caf\xe9 cr\xe8me', 'latin1'));
      // files of other kinds: a table, and a BEIR dataset's corpus, which the user may have meant to index
      writeFileSync(path.join(notes, 'table.csv'), 'a,b\n');
      mkdirSync(path.join(notes, 'sub', 'beir'));
      writeFileSync(path.join(notes, 'sub', 'beir', 'corpus.jsonl'), '{"_id": "d1", "text": "delta"}\n');
      const idx = path.join(dir, 'idx');
      let r = runCli(['index', '--model', model, '--input', notes, '--out', idx]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /3 documents indexed/);
      assert.match(r.stdout, /skipped in .*notes: 1 outside the folder, 2 not \.txt or \.md, 1 binary, 1 not UTF-8\./);
      const beir = path.join(notes, 'sub', 'beir');
      assert.ok(
        r.stdout.includes(
          `${notes} was read as a folder of .txt/.md files, and holds BEIR corpora it did not read (` +
            `${path.join('sub', 'beir', 'corpus.jsonl')}); to index one, give its folder as --input (--input ${beir}).`,
        ),
        r.stdout,
      );
      r = runCli(['search', '--index', idx, '--json', '-k', '10', 'alpha']);
      assert.deepEqual((JSON.parse(r.stdout) as { data: { id: string }[] }).data.map((h) => h.id).sort(), [
        'a.md',
        'alias.md',
        'sub/b.txt',
      ]);

      writeFileSync(path.join(notes, 'sub', 'b.txt'), Buffer.from([0]));
      r = runCli(['index', '--input', notes, '--out', idx]);
      assert.match(
        r.stdout,
        /1 document of the index is not in --input \(sub\/b\.txt\); it stays searchable — rerun with --prune to/,
      );
      r = runCli(['index', '--input', notes, '--out', idx, '--prune']);
      assert.match(r.stdout, /2 documents indexed \(0 encoded now, 2 unchanged, 1 pruned\)/);
    } finally {
      cleanup();
    }
  },
);

test('index --out at a file, or below one, is one sentence', async () => {
  const { dir, cleanup } = tempDir('outfile');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(3));
    for (const out of [input, path.join(input, 'idx')]) {
      const r = runCli(['index', '--model', model, '--input', input, '--out', out]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(
        r.stderr,
        /^search-r3: (.*docs\.jsonl is a file, not an index folder|cannot create the index folder .*\/idx \(ENOTDIR\))/,
      );
    }
  } finally {
    cleanup();
  }
});
