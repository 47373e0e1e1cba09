import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/temp-dir.js';
import { CHECKSUMS_FILE, unlistedFiles, verifyChecksums, writeChecksums } from '../../src/io/checksums.js';

test('a manifest checks the files it lists; files it does not list (.DS_Store, a check log) are ignored', async () => {
  const dir = tempDir('checksums');
  writeFileSync(path.join(dir, 'a.bin'), 'weights');
  writeFileSync(path.join(dir, 'state.json'), '{}');
  await writeChecksums(dir);
  assert.equal(await verifyChecksums(dir), null);
  writeFileSync(path.join(dir, '.DS_Store'), 'finder');
  writeFileSync(path.join(dir, 'Thumbs.db'), 'explorer');
  writeFileSync(path.join(dir, 'log'), 'a.bin: OK\nstate.json: OK\n');
  assert.equal(await verifyChecksums(dir), null, 'unlisted files are no damage');
  assert.deepEqual(await unlistedFiles(dir), ['.DS_Store', 'Thumbs.db', 'log'], 'and are named for a note');
  writeFileSync(path.join(dir, 'a.bin'), 'weightz');
  assert.deepEqual(await verifyChecksums(dir), {
    file: path.join(dir, 'a.bin'),
    why: `does not match its SHA-256 in ${CHECKSUMS_FILE}`,
  });
  rmSync(path.join(dir, 'a.bin'));
  assert.deepEqual(await verifyChecksums(dir), {
    file: path.join(dir, 'a.bin'),
    why: `is missing (${CHECKSUMS_FILE} lists it)`,
  });
});
