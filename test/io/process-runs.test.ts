/**
 * The PID namespace a process runs in, as a queue hold records it: the same for processes that can see
 * each other's ids, another for one in its own namespace (unshare -p), undefined where it cannot be read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pidNamespace } from '../../src/io/process-runs.js';
import { repoRoot } from '../helpers/repo.js';

const linux = process.platform === 'linux';
const moduleUrl = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'io', 'process-runs.js')).href;
const report = `import(${JSON.stringify(moduleUrl)}).then((m) => process.stdout.write(String(m.pidNamespace())))`;

test('a link that cannot be read gives no namespace', () => {
  assert.equal(pidNamespace('/nonexistent/ns/pid'), undefined);
});

test('a child process shares this namespace', { skip: !linux && 'PID namespaces are Linux only' }, () => {
  const ns = pidNamespace();
  assert.match(ns ?? '', /^pid:\[\d+\]$/);
  const child = spawnSync(process.execPath, ['-e', report]);
  assert.equal(child.stdout.toString(), ns, child.stderr.toString());
});

test('a process in its own PID namespace reports another one', { skip: !linux && 'Linux only' }, (t) => {
  // unshare needs root or unprivileged user namespaces (-r maps this user to root inside)
  const child = spawnSync('unshare', ['-rpf', process.execPath, '-e', report]);
  if (child.error || child.status !== 0) {
    t.skip(`unshare -rpf is not allowed here: ${child.error?.message ?? child.stderr.toString().trim()}`);
    return;
  }
  const ns = child.stdout.toString();
  assert.match(ns, /^pid:\[\d+\]$/);
  assert.notEqual(ns, pidNamespace());
});
