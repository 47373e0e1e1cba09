/**
 * A disk that fills up while a command writes (a real ENOSPC, on a small tmpfs in a user and mount namespace), or
 * a write past the file size limit: one sentence naming the file and "free space" (exit code 2), nothing earlier
 * lost, no temporaries left, and the same command completes once space is freed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { onSmallDisk } from '../helpers/unwritable.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';
import { toySftRun } from '../helpers/train-fixtures.js';
import { parseMetrics } from '../../src/train/metrics-log.js';

const env = { SEARCH_R3_THREADS: '1' };
const main = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** The ids `search --json` ranked, in order. */
function rankedIds(json: string): string[] {
  return (JSON.parse(json) as { data: { id: string }[] }).data.map((h) => h.id);
}

const namespaces = (() => {
  const { dir, cleanup } = tempDir('small-disk-probe');
  try {
    return onSmallDisk(dir, 64, 'true') !== null;
  } finally {
    cleanup();
  }
})();

test(
  'index --delete on a disk too full for the new vectors.usearch: one sentence, the index searches as before',
  { skip: !namespaces && 'no user and mount namespaces here (unshare -rm)' },
  async () => {
    const { dir, cleanup } = tempDir('full-disk-usearch');
    try {
      const model = await tinyModelDir(dir);
      const docs = path.join(dir, 'docs.jsonl');
      writeJsonl(docs, corpus(300));
      const base = path.join(dir, 'base');
      const built = runCli(['index', '--model', model, '--input', docs, '--out', base], env);
      assert.equal(built.status, 0, built.stderr);
      const query = 'cancer cell therapy';
      const search = runCli(['search', '--index', base, '--k', '5', '--json', query], env);
      const before = rankedIds(search.stdout);
      const gone = corpus(300).find((d) => !before.includes(d.id))!.id;
      const disk = path.join(dir, 'disk');
      const out = path.join(dir, 'out');
      mkdirSync(disk);
      mkdirSync(out);
      // the delete's SQLite commit fits in the space left; the whole new vectors.usearch (80 KiB) does not
      const script = `
        cp -r "$BASE" "$DISK/idx" && fill_to 48 || exit 98
        "$NODE" "$MAIN" index --out "$DISK/idx" --delete "$GONE" 2>"$OUT/delete.err"; echo $? >"$OUT/delete.rc"
        ls -A "$DISK/idx" >"$OUT/files"
        "$NODE" "$MAIN" search --index "$DISK/idx" --k 5 --json "$QUERY" >"$OUT/full.json" || exit 97
        rm "$DISK/.filler"
        "$NODE" "$MAIN" index --input "$DOCS" --out "$DISK/idx" >/dev/null 2>"$OUT/again.err" || exit 96
        ls -A "$DISK/idx" >"$OUT/files-again"
        "$NODE" "$MAIN" search --index "$DISK/idx" --k 5 --json "$QUERY" >"$OUT/freed.json" || exit 95`;
      const r = onSmallDisk(disk, 4096, script, {
        ...env,
        NODE: process.execPath,
        MAIN: main,
        BASE: base,
        GONE: gone,
        QUERY: query,
        DOCS: docs,
        OUT: out,
      });
      assert.ok(r !== null);
      assert.equal(r.status, 0, `${r.stderr}\n${readFileSync(path.join(out, 'delete.err'), 'utf8')}`);
      const err = readFileSync(path.join(out, 'delete.err'), 'utf8').trim();
      assert.equal(readFileSync(path.join(out, 'delete.rc'), 'utf8').trim(), '2', err);
      assert.match(
        err,
        new RegExp(
          `^search-r3: write ${disk}/idx/vectors\\.usearch: no space left on the device \\(ENOSPC\\); free space`,
        ),
      );
      assert.equal(err.split('\n').length, 1, err);
      const files = ['docs.sqlite', 'index.json', 'vectors.generation.json', 'vectors.usearch'].join('\n');
      assert.equal(readFileSync(path.join(out, 'files'), 'utf8').trim(), files, 'no temporaries are left');
      assert.deepEqual(rankedIds(readFileSync(path.join(out, 'full.json'), 'utf8')), before);
      assert.equal(readFileSync(path.join(out, 'files-again'), 'utf8').trim(), files);
      assert.deepEqual(rankedIds(readFileSync(path.join(out, 'freed.json'), 'utf8')), before);
    } finally {
      cleanup();
    }
  },
);

test("index past ulimit -f while docs.sqlite grows: one sentence, not 'damaged, rebuild'", async () => {
  const { dir, cleanup } = tempDir('fsize-sqlite');
  try {
    const model = await tinyModelDir(dir);
    const docs = corpus(400);
    const first = path.join(dir, 'first.jsonl');
    const all = path.join(dir, 'all.jsonl');
    writeJsonl(first, docs.slice(0, 50));
    writeJsonl(all, docs);
    const idx = path.join(dir, 'idx');
    const built = runCli(['index', '--model', model, '--input', first, '--out', idx], env);
    assert.equal(built.status, 0, built.stderr);
    const query = 'cancer cell therapy';
    const before = rankedIds(runCli(['search', '--index', idx, '--k', '5', '--json', query], env).stdout);
    // 128 KiB: the first documents' docs.sqlite fits (64 KiB), the whole corpus's does not (200 KiB; SQLite: a disk
    // I/O error)
    const limited = `ulimit -f 128; exec "${process.execPath}" "${main}" index --input "${all}" --out "${idx}"`;
    const r = spawnSync('sh', ['-c', limited], { encoding: 'utf8', env: { ...process.env, ...env } });
    const lines = r.stderr.split(/[\r\n]+/).filter((l) => l.startsWith('search-r3:'));
    assert.equal(r.status, 2, r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /docs\.sqlite could not be written \(disk I\/O error\): the disk may be full, over its quota /,
    );
    assert.doesNotMatch(r.stderr, /damaged|rebuild/);
    assert.deepEqual(readdirSync(idx).sort(), [
      'docs.sqlite',
      'index.json',
      'vectors.generation.json',
      'vectors.usearch',
    ]);
    const after = runCli(['search', '--index', idx, '--k', '5', '--json', query], env);
    assert.equal(after.status, 0, after.stderr);
    assert.equal(rankedIds(after.stdout).length, before.length);
    const again = runCli(['index', '--input', all, '--out', idx], env);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /400 documents indexed/);
  } finally {
    cleanup();
  }
});

test(
  'index with its LanceDB store on a disk that fills: one sentence naming the store, the index searches as before',
  { skip: !namespaces && 'no user and mount namespaces here (unshare -rm)' },
  async () => {
    const { dir, cleanup } = tempDir('full-disk-lance');
    try {
      const model = await tinyModelDir(dir);
      const docs = corpus(1500);
      const first = path.join(dir, 'first.jsonl');
      const all = path.join(dir, 'all.jsonl');
      writeJsonl(first, docs.slice(0, 600));
      writeJsonl(all, docs);
      const disk = path.join(dir, 'disk');
      const out = path.join(dir, 'out');
      mkdirSync(disk);
      mkdirSync(out);
      const idx = path.join(dir, 'idx');
      // docs.sqlite on this machine's disk, the vectors on the small one: only LanceDB meets the full disk
      const script = `
        "$NODE" "$MAIN" index --model "$MODEL" --input "$FIRST" --out "$IDX" --store-uri "$DISK/vec.lance" \\
          >/dev/null 2>"$OUT/first.err" || exit 98
        "$NODE" "$MAIN" search --index "$IDX" --k 5 --json "$QUERY" >"$OUT/before.json" || exit 97
        fill_to 40
        "$NODE" "$MAIN" index --input "$ALL" --out "$IDX" >/dev/null 2>"$OUT/full.err"; echo $? >"$OUT/full.rc"
        "$NODE" "$MAIN" search --index "$IDX" --k 5 --json "$QUERY" >"$OUT/full.json" 2>/dev/null || exit 96
        rm "$DISK/.filler"
        "$NODE" "$MAIN" index --input "$ALL" --out "$IDX" >"$OUT/again.out" 2>"$OUT/again.err" || exit 95`;
      const vars = { MODEL: model, FIRST: first, ALL: all, IDX: idx, OUT: out, QUERY: 'cancer cell therapy' };
      const r = onSmallDisk(disk, 1024, script, { ...env, NODE: process.execPath, MAIN: main, ...vars });
      assert.ok(r !== null);
      const err = readFileSync(path.join(out, 'full.err'), 'utf8').trim();
      assert.equal(r.status, 0, `${r.stderr}\n${err}`);
      assert.equal(readFileSync(path.join(out, 'full.rc'), 'utf8').trim(), '2', err);
      const sentence = `^search-r3: ${disk}/vec\\.lance: no space left on the device \\(ENOSPC\\); free space, then`;
      assert.match(err, new RegExp(sentence));
      assert.equal(err.split('\n').length, 1, err);
      const before = rankedIds(readFileSync(path.join(out, 'before.json'), 'utf8'));
      assert.ok(before.length > 0);
      assert.deepEqual(rankedIds(readFileSync(path.join(out, 'full.json'), 'utf8')), before);
      assert.match(readFileSync(path.join(out, 'again.out'), 'utf8'), /1500 documents indexed/);
    } finally {
      cleanup();
    }
  },
);

test(
  'train sft on a disk that fills while metrics.jsonl grows: one sentence naming it, no half line left in it',
  { skip: !namespaces && 'no user and mount namespaces here (unshare -rm)' },
  async () => {
    const { dir, cleanup } = tempDir('full-disk-metrics');
    try {
      const disk = path.join(dir, 'disk');
      const out = path.join(dir, 'out');
      mkdirSync(disk);
      mkdirSync(out);
      // no checkpoint within the run: metrics.jsonl is what meets the full disk
      const run = path.join(disk, 'run');
      const config = await toySftRun(path.join(dir, 'sft'), { output: run, steps: 40, checkpoint: { every: 100 } });
      // 12 KiB: run-config.json takes a page, metrics.jsonl the next two and part of a line
      const script = `
        fill_to 12 || exit 98
        "$NODE" "$MAIN" train sft --config "$CONFIG" --quiet 2>"$OUT/full.err"; echo $? >"$OUT/full.rc"
        cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl" || exit 97
        rm "$DISK/.filler"
        "$NODE" "$MAIN" train sft --config "$CONFIG" --quiet >/dev/null 2>"$OUT/again.err" || exit 96
        test -d "$RUN/final" || exit 95`;
      const r = onSmallDisk(disk, 1024, script, {
        ...env,
        NODE: process.execPath,
        MAIN: main,
        CONFIG: config,
        RUN: run,
        OUT: out,
      });
      assert.ok(r !== null);
      assert.equal(r.status, 0, `${r.stderr}\n${readFileSync(path.join(out, 'full.err'), 'utf8')}`);
      const err = readFileSync(path.join(out, 'full.err'), 'utf8').trim();
      assert.equal(readFileSync(path.join(out, 'full.rc'), 'utf8').trim(), '2', err);
      assert.match(
        err,
        new RegExp(`^search-r3: write ${run}/metrics\\.jsonl: no space left on the device \\(ENOSPC\\); free space`),
      );
      const metrics = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8');
      const parsed = parseMetrics(metrics);
      assert.ok(parsed.records.length > 0, 'some steps were logged before the disk filled');
      assert.equal(parsed.damagedLines, 0, metrics.slice(-200));
      assert.ok(metrics.endsWith('\n'));
    } finally {
      cleanup();
    }
  },
);

test(
  'index on a file system out of inodes (bytes free): one sentence that says inodes, not "free space"',
  { skip: !namespaces && 'no user and mount namespaces here (unshare -rm)' },
  async () => {
    const { dir, cleanup } = tempDir('no-inodes');
    try {
      const model = await tinyModelDir(dir);
      const docs = path.join(dir, 'docs.jsonl');
      writeJsonl(docs, corpus(60));
      const base = path.join(dir, 'base');
      assert.equal(runCli(['index', '--model', model, '--input', docs, '--out', base], env).status, 0);
      const disk = path.join(dir, 'disk');
      const out = path.join(dir, 'out');
      mkdirSync(disk);
      mkdirSync(out);
      // one inode left: the lock's temporary file takes it, so the link that makes write.lock fails; a new
      // index's docs.sqlite is made, but SQLite cannot make its journal beside it
      const script = `
        cp -r "$BASE" "$DISK/idx" && keep_inodes 1 || exit 98
        "$NODE" "$MAIN" index --input "$DOCS" --out "$DISK/idx" 2>"$OUT/update.err"; echo $? >"$OUT/update.rc"
        "$NODE" "$MAIN" index --model "$MODEL" --input "$DOCS" --out "$DISK/new" 2>"$OUT/new.err"
        echo $? >"$OUT/new.rc"
        rm "$DISK"/.i*
        "$NODE" "$MAIN" index --model "$MODEL" --input "$DOCS" --out "$DISK/new" >"$OUT/again.out" || exit 97`;
      const r = onSmallDisk(
        disk,
        8192,
        script,
        { ...env, NODE: process.execPath, MAIN: main, BASE: base, DOCS: docs, MODEL: model, OUT: out },
        24,
      );
      assert.ok(r !== null);
      assert.equal(r.status, 0, r.stderr);
      const noInodes = 'no free inodes \\(file entries\\) are left on the file system';
      const update = readFileSync(path.join(out, 'update.err'), 'utf8').trim();
      assert.equal(readFileSync(path.join(out, 'update.rc'), 'utf8').trim(), '2', update);
      assert.match(update, new RegExp(`^search-r3: link ${disk}/idx/write\\.lock: ${noInodes} \\(ENOSPC\\); delete`));
      const made = readFileSync(path.join(out, 'new.err'), 'utf8').trim();
      assert.equal(readFileSync(path.join(out, 'new.rc'), 'utf8').trim(), '2', made);
      assert.match(made, new RegExp(`^search-r3: ${disk}/new/docs\\.sqlite cannot be opened: ${noInodes}; delete`));
      for (const err of [update, made]) assert.equal(err.split('\n').length, 1, err);
      assert.match(readFileSync(path.join(out, 'again.out'), 'utf8'), /60 documents indexed/);
    } finally {
      cleanup();
    }
  },
);
