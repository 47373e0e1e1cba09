/**
 * The PID namespace a process runs in, as a queue hold records it: the same for processes that can see
 * each other's ids, another for one in its own namespace (unshare -p), undefined where it cannot be read.
 * Whether a process runs: a zombie (killed, not reaped) does not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PidLock } from '../../src/io/pid-lock.js';
import { pidNamespace, processRuns } from '../../src/io/process-runs.js';
import { repoRoot } from '../helpers/repo.js';
import { until } from '../helpers/until.js';

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

test(
  'a zombie (exited, its parent never reaping it) does not run; its parent does',
  { skip: !linux && 'Linux only' },
  async () => {
    // the child exits after its shell became `sleep 20` by exec, which never waits for children
    const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 20'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(
        await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(String(d)))),
      );
      const stat = (): string => readFileSync(`/proc/${zombie}/stat`, 'latin1');
      await until(
        () => /\) Z /.test(stat()),
        10_000,
        () => `the child is a zombie: ${stat()}`,
        20,
      );
      assert.equal(processRuns(zombie), false);
      assert.equal(processRuns(parent.pid!), true);
      // a trainer's lock left by a killed run that nobody reaped is taken over, not "in use" for good
      const dir = mkdtempSync(path.join(tmpdir(), 'sr3-zombie-lock-'));
      try {
        writeFileSync(path.join(dir, 'train.lock'), `${zombie}\n`);
        PidLock.acquire(path.join(dir, 'train.lock'), (pid) => new Error(`in use by ${pid}`)).release();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      parent.kill('SIGKILL');
    }
  },
);
