/**
 * Atomic writes: the temporary files a killed writer left beside a file (Ctrl-C while writing gigabytes of
 * GGUF) are removed by the next write of that file, and only those; a path that is a symbolic link is
 * written through, the link kept; a failure names the path given, not a temporary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  promises as fsp,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import {
  probeWrite,
  recoverSetAside,
  tempPathFor,
  writeDirAtomically,
  writeFileAtomicallySync,
  writeLinesAtomicallySync,
  writeTextFileAtomically,
} from '../../src/io/atomic-file.js';
import { until } from '../helpers/until.js';

test('a write removes the temporaries that killed writers left for the same file, and nothing else', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    const gone = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout);
    const left = [
      `.model.gguf.${gone}.mqx1abc.tmp`, // a killed export: removed
      `.model.gguf.${process.pid}.mqx2abc.tmp`, // a write of this process in progress: kept
      `.other.gguf.${gone}.mqx3abc.tmp`, // another file's: kept
      '.model.gguf.notes', // not a temporary: kept
    ];
    for (const name of left) writeFileSync(path.join(dir, name), 'x');
    mkdirSync(path.join(dir, `.corpus.${gone}.mqx4abc.tmp`)); // a killed folder write: removed with the next
    mkdirSync(path.join(dir, `.corpus.${gone}.mqx5abc.tmp.old`));
    await writeTextFileAtomically(path.join(dir, 'model.gguf'), 'gguf');
    await writeDirAtomically(path.join(dir, 'corpus'), async (tmp) => writeFileSync(path.join(tmp, 'a'), 'a'));
    assert.deepEqual(readdirSync(dir).sort(), ['corpus', 'model.gguf', ...left.slice(1)].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a write through a symbolic link replaces its target and keeps the link, a dangling one too', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    const store = path.join(dir, 'store');
    mkdirSync(store);
    writeFileSync(path.join(store, 'mined.jsonl'), 'old');
    symlinkSync('store/mined.jsonl', path.join(dir, 'link.jsonl'));
    symlinkSync('link.jsonl', path.join(dir, 'chain.jsonl')); // a link to a link
    symlinkSync('store/later.trec', path.join(dir, 'dangling.trec'));
    mkdirSync(path.join(dir, 'sub'));
    symlinkSync('../store/sync.npy', path.join(dir, 'sub', 'up.npy')); // relative to the link's own folder

    await writeTextFileAtomically(path.join(dir, 'chain.jsonl'), 'new');
    await writeTextFileAtomically(path.join(dir, 'dangling.trec'), 'run');
    writeFileAtomicallySync(path.join(dir, 'sub', 'up.npy'), 'npy');

    assert.equal(readlinkSync(path.join(dir, 'chain.jsonl')), 'link.jsonl');
    assert.equal(readlinkSync(path.join(dir, 'link.jsonl')), 'store/mined.jsonl');
    assert.equal(readlinkSync(path.join(dir, 'dangling.trec')), 'store/later.trec');
    assert.equal(readlinkSync(path.join(dir, 'sub', 'up.npy')), '../store/sync.npy');
    assert.equal(readFileSync(path.join(store, 'mined.jsonl'), 'utf8'), 'new');
    assert.equal(readFileSync(path.join(store, 'later.trec'), 'utf8'), 'run');
    assert.equal(readFileSync(path.join(store, 'sync.npy'), 'utf8'), 'npy');
    assert.deepEqual(readdirSync(store).sort(), ['later.trec', 'mined.jsonl', 'sync.npy'], 'no temporary left');
    assert.deepEqual(readdirSync(dir).sort(), ['chain.jsonl', 'dangling.trec', 'link.jsonl', 'store', 'sub']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder written through a symbolic link replaces its target; files hard-linked from it survive', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    const real = path.join(dir, 'real_base');
    mkdirSync(real);
    writeFileSync(path.join(real, 'weights'), 'large weights');
    writeFileSync(path.join(real, 'tokenizer.json'), 'old');
    const link = path.join(dir, 'blink');
    symlinkSync('real_base', link);
    const inode = statSync(path.join(real, 'weights')).ino;

    // rewritten in place as add-embed-token does: the unchanged files hard-linked, reached through the link
    await writeDirAtomically(link, async (tmp) => {
      linkSync(path.join(link, 'weights'), path.join(tmp, 'weights'));
      writeFileSync(path.join(tmp, 'tokenizer.json'), 'new');
    });
    assert.equal(lstatSync(link).isSymbolicLink(), true);
    assert.equal(readlinkSync(link), 'real_base');
    assert.equal(readFileSync(path.join(real, 'tokenizer.json'), 'utf8'), 'new');
    assert.equal(readFileSync(path.join(real, 'weights'), 'utf8'), 'large weights');
    assert.equal(statSync(path.join(real, 'weights')).ino, inode, 'the weights are the same file, not a copy');
    assert.deepEqual(readdirSync(dir).sort(), ['blink', 'real_base'], 'no temporary or old folder left');

    symlinkSync('cb', path.join(dir, 'cbl')); // names a folder not made yet
    await writeDirAtomically(path.join(dir, 'cbl'), async (tmp) => writeFileSync(path.join(tmp, 'valid.jsonl'), '{}'));
    assert.equal(readlinkSync(path.join(dir, 'cbl')), 'cb');
    assert.deepEqual(readdirSync(path.join(dir, 'cb')), ['valid.jsonl']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed write names the path it was given, never its temporary', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    const names = async (write: () => Promise<unknown>, want: string): Promise<void> => {
      await assert.rejects(write, (e: NodeJS.ErrnoException) => {
        assert.equal(e.path, want);
        assert.doesNotMatch(e.message, /\.tmp/, e.message);
        return true;
      });
    };
    const missing = path.join(dir, 'missing', 'run.trec');
    await names(() => writeTextFileAtomically(missing, 'x'), missing);
    assert.throws(() => writeFileAtomicallySync(missing, 'x'), { path: missing });
    // through a link whose target's folder is gone: the link, as the user named it
    const link = path.join(dir, 'link.trec');
    symlinkSync(path.join(dir, 'gone', 'run.trec'), link);
    await names(() => writeTextFileAtomically(link, 'x'), link);
    // a file inside a folder being written: the same file inside the folder named
    const out = path.join(dir, 'out');
    await names(
      () => writeDirAtomically(out, (tmp) => fsp.writeFile(path.join(tmp, 'sub', 'w.bin'), 'x')),
      path.join(out, 'sub', 'w.bin'),
    );
    assert.deepEqual(readdirSync(dir).sort(), ['link.trec'], 'no temporary left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder that cannot be renamed into place gives the name back to the old folder, whole', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    const out = path.join(dir, 'final');
    await writeDirAtomically(out, (tmp) => fsp.writeFile(path.join(tmp, 'model.safetensors'), 'old weights'));
    const rename = fs.renameSync;
    // the new folder's rename fails (as on a file system that refuses it), the old one's moves go through
    t.mock.method(fs, 'renameSync', (from: string, to: string) => {
      if (String(from).endsWith('.tmp') && to === out)
        throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
      return rename(from, to);
    });
    syncBuiltinESMExports(); // the module's own `import { renameSync }` sees the mock
    try {
      await assert.rejects(
        writeDirAtomically(out, (tmp) => fsp.writeFile(path.join(tmp, 'model.safetensors'), 'new weights')),
        /EIO/,
      );
    } finally {
      t.mock.restoreAll();
      syncBuiltinESMExports();
    }
    assert.deepEqual(readdirSync(dir), ['final'], 'the old folder under its name, no temporary left');
    assert.equal(readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old weights');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A folder's layout when a write of it was killed between its two renames: the old one aside, the new one beside. */
function killedBetweenRenames(dir: string, name: string, pid: number): { old: string; half: string } {
  const old = path.join(dir, `.${name}.${pid}.mqx6abc.tmp.old`);
  const half = path.join(dir, `.${name}.${pid}.mqx6abc.tmp`);
  mkdirSync(old);
  writeFileSync(path.join(old, 'model.safetensors'), 'old weights');
  mkdirSync(half);
  writeFileSync(path.join(half, 'model.safetensors'), 'new wei');
  return { old, half };
}

test('a folder a killed write left aside, its only copy, is restored by a reader and by the next write', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    const gone = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout);
    const out = path.join(dir, 'final');
    const { half } = killedBetweenRenames(dir, 'final', gone);
    recoverSetAside(out); // a reader: the folder gets its name back, nothing is removed
    assert.equal(readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old weights');
    assert.deepEqual(readdirSync(dir).sort(), [path.basename(half), 'final'].sort());

    rmSync(out, { recursive: true });
    rmSync(half, { recursive: true });
    killedBetweenRenames(dir, 'final', gone);
    tempPathFor(out); // what every write of `out` does first: restored, the half-written new folder removed
    assert.deepEqual(readdirSync(dir), ['final']);
    assert.equal(readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'old weights');

    // the new folder took the name before the kill: the one aside is removed
    killedBetweenRenames(dir, 'final', gone);
    rmSync(half, { recursive: true });
    writeFileSync(path.join(out, 'model.safetensors'), 'new weights');
    tempPathFor(out);
    assert.deepEqual(readdirSync(dir), ['final']);
    assert.equal(readFileSync(path.join(out, 'model.safetensors'), 'utf8'), 'new weights');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('probing where a file will be written leaves nothing behind, a folder not made yet included', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-atomic-'));
  try {
    probeWrite(path.join(dir, 'run.trec'));
    probeWrite(path.join(dir, 'a', 'b', 'run.trec'));
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'probing a folder names no file in it, so a process killed mid-probe leaves the folder as it was',
  { skip: process.platform !== 'linux' && "unnamed files (O_TMPFILE) are Linux's" },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sr3-probe-'));
    const seen: string[] = [];
    const watcher = fs.watch(dir, (_, name) => seen.push(String(name)));
    try {
      // what every command does before it replaces a model folder (add-embed-token in place)
      probeWrite(path.join(dir, 'file'));
      // the watch sees what is made in the folder, in order: what it saw before config.json is the probe's doing
      writeFileSync(path.join(dir, 'config.json'), '{}');
      await until(
        () => seen.includes('config.json'),
        10_000,
        () => `the watch saw ${JSON.stringify(seen)}`,
        20,
      );
      assert.deepEqual(
        seen.slice(0, seen.indexOf('config.json')),
        [],
        'names that appeared in the folder while it was probed',
      );
    } finally {
      watcher.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('writeLinesAtomicallySync writes more text than one string can hold (600 MiB), a piece at a time', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-lines-out-'));
  try {
    const file = path.join(dir, 'big.jsonl');
    // one 1 MiB string written 600 times: joined first, the text would pass V8's string limit (about 512 MiB)
    const line = 'x'.repeat((1 << 20) - 1) + '\n';
    writeLinesAtomicallySync(
      file,
      Array.from({ length: 600 }, () => line),
    );
    assert.equal(statSync(file).size, 600 * (1 << 20));
    const fd = openSync(file, 'r');
    const tail = Buffer.alloc(4);
    readSync(fd, tail, 0, 4, 600 * (1 << 20) - 4);
    closeSync(fd);
    assert.equal(tail.toString(), 'xxx\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeLinesAtomicallySync stopped by a file size limit fails and leaves the old file, never a cut one', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-lines-limit-'));
  try {
    const file = path.join(dir, 'run.trec');
    const atomicFile = new URL('../../src/io/atomic-file.js', import.meta.url).href;
    // The limit lets write() take only the bytes below it, which it reports in its count alone; the write
    // after that fails (EFBIG, as a full disk fails with ENOSPC). Two shapes: the cut falls in the last piece,
    // or in a full piece after which nothing is left to write.
    const shapes = {
      'a run smaller than one piece': 'Array.from({ length: 4000 }, (_, i) => `q1 Q0 d${i} ${i + 1} 1.0 run\\n`)',
      'a run of exactly one full piece': "['x'.repeat(1 << 20) + '\\n']",
    };
    for (const [shape, lines] of Object.entries(shapes)) {
      writeFileSync(file, 'old run\n');
      const script = `import { writeLinesAtomicallySync } from '${atomicFile}';
        writeLinesAtomicallySync(process.argv[1], ${lines});`;
      // bash's ulimit -f counts 1024-byte blocks: 64 KiB
      const child = spawnSync(
        'bash',
        ['-c', 'ulimit -f 64 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, file],
        { encoding: 'utf8' },
      );
      assert.notEqual(child.status, 0, `${shape}: the write reported success (stderr: ${child.stderr})`);
      assert.match(child.stderr, /EFBIG/, shape);
      assert.equal(readFileSync(file, 'utf8'), 'old run\n', shape);
      assert.deepEqual(readdirSync(dir), ['run.trec'], `${shape}: its temporary file was removed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
