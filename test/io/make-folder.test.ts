/**
 * makeFolder creates the folders a path needs one level at a time, so that a place where none can be made
 * fails with the kernel's own error for the first folder it could not make: EROFS on a read-only mount
 * (which Node's recursive mkdir reports as ENOENT), ENOENT under /proc (where Node's retries forever).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeFolder, makeFolderSync } from '../../src/io/make-folder.js';
import { repoRoot } from '../helpers/repo.js';
import { readOnlyMount, unwritablePlaces } from '../helpers/unwritable.js';

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-make-folder-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The error `make` fails with (as the async and the sync form), checked to be the same. */
async function failure(dir: string): Promise<NodeJS.ErrnoException> {
  const sync = (() => {
    try {
      makeFolderSync(dir);
    } catch (e) {
      return e as NodeJS.ErrnoException;
    }
    assert.fail(`makeFolderSync(${dir}) made it`);
  })();
  const async = await makeFolder(dir).then(
    () => assert.fail(`makeFolder(${dir}) made it`),
    (e: NodeJS.ErrnoException) => e,
  );
  assert.deepEqual([async.code, async.path, async.syscall], [sync.code, sync.path, sync.syscall]);
  return async;
}

test('makes the missing folders and returns the first it made, written as given, as mkdir -p', async () => {
  const { dir, cleanup } = tempDir();
  const cwd = process.cwd();
  try {
    assert.equal(await makeFolder(path.join(dir, 'a', 'b', 'c')), path.join(dir, 'a'));
    assert.ok(statSync(path.join(dir, 'a', 'b', 'c')).isDirectory());
    assert.equal(makeFolderSync(path.join(dir, 'a', 'b')), undefined, 'nothing to make');
    process.chdir(dir);
    assert.equal(makeFolderSync(path.join('x', 'y')), 'x');
    assert.equal(await makeFolder(path.join('x', 'y', 'z')), path.join('x', 'y', 'z'));
    // a file in the way is the kernel's error, for the folder that could not be made
    writeFileSync(path.join(dir, 'f'), '');
    const below = await failure(path.join(dir, 'f', 'g', 'h'));
    assert.deepEqual([below.code, below.path], ['ENOTDIR', path.join(dir, 'f', 'g')]);
    assert.equal((await failure(path.join(dir, 'f'))).code, 'EEXIST');
    mkdirSync(path.join(dir, 'made-meanwhile'));
    assert.equal(await makeFolder(path.join(dir, 'made-meanwhile')), undefined);
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});

const places = unwritablePlaces();

/**
 * makeFolder and makeFolderSync of `dir` in a child process, stopped after 15 s: where creating loops
 * forever (as Node's recursive mkdir does under /proc) the test fails instead of hanging.
 */
function failureInChild(dir: string): { code: string; path: string; syscall: string }[] {
  const module = pathToFileURL(path.join(repoRoot, 'dist/src/io/make-folder.js')).href;
  const script = `
    import { makeFolder, makeFolderSync } from ${JSON.stringify(module)};
    const dir = ${JSON.stringify(dir)};
    const seen = (e) => ({ code: e.code, path: e.path, syscall: e.syscall });
    const out = [];
    try { makeFolderSync(dir); out.push('made'); } catch (e) { out.push(seen(e)); }
    try { await makeFolder(dir); out.push('made'); } catch (e) { out.push(seen(e)); }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(r.status, 0, `creating ${dir} did not end (${r.signal ?? r.stderr})`);
  return JSON.parse(r.stdout) as { code: string; path: string; syscall: string }[];
}

test(
  'under /proc and /sys, the first folder fails as the kernel says, at once',
  { skip: places === null && 'no /proc and /sys here' },
  () => {
    for (const e of failureInChild(path.join(places!.proc, 'a', 'b')))
      assert.deepEqual(e, { code: 'ENOENT', path: places!.proc, syscall: 'mkdir' });
    for (const e of failureInChild(path.join(places!.sys, 'a'))) {
      assert.ok(['EPERM', 'EACCES'].includes(e.code), e.code);
      assert.equal(e.path, places!.sys);
    }
  },
);

test('on a read-only mount the error is EROFS, for the folder that could not be made', async (t) => {
  const { dir, cleanup } = tempDir();
  const mount = readOnlyMount(dir);
  try {
    if (mount === null) return t.skip('mounting a read-only tmpfs needs root with the right to mount');
    const e = await failure(path.join(dir, 'a', 'b'));
    assert.deepEqual([e.code, e.path, e.syscall], ['EROFS', path.join(dir, 'a'), 'mkdir']);
  } finally {
    mount?.unmount();
    cleanup();
  }
});
