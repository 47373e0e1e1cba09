/**
 * Atomic writes: the temporary files a killed writer left beside a file (Ctrl-C while writing gigabytes of
 * GGUF) are removed by the next write of that file, and only those.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeDirAtomically, writeTextFileAtomically } from '../../src/io/atomic-file.js';

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
