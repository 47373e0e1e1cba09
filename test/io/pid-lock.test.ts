/**
 * PidLock, one writer per folder between processes: when several processes find the same stale lock at
 * once, exactly one takes it over and the others are refused naming it; a lock that is still being written
 * (empty, just made) is not stale. Within one process, a lock held is refused to a second acquire.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { PidLock } from '../../src/io/pid-lock.js';
import { repoRoot } from '../helpers/repo.js';

/** A child process running test/helpers/lock-racer.ts, and the lines it prints, in turn. */
class Racer {
  private readonly lines: string[] = [];
  private waiting: ((line: string) => void) | undefined;

  constructor(readonly child: ChildProcessByStdio<Writable, Readable, null>) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) w(line);
      else this.lines.push(line);
    });
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  next(): Promise<string> {
    const line = this.lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => (this.waiting = resolve));
  }
}

const deadPid = (): number =>
  Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout);

/**
 * Six racers find the same stale lock at once, `rounds` times: exactly one takes it over and the others are refused
 * naming it. `mode` 'no-hard-links' races them where link() fails, as on a file system without hard links.
 */
async function raceForStaleLock(mode: 'hard-links' | 'no-hard-links', rounds: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'train.lock');
  const racers = Array.from(
    { length: 6 },
    () =>
      new Racer(
        spawn(process.execPath, [path.join(repoRoot, 'dist/test/helpers/lock-racer.js'), 'race', mode], {
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      ),
  );
  const gone = deadPid();
  try {
    for (let round = 0; round < rounds; round++) {
      writeFileSync(file, `${gone}\n`); // left by a killed run
      const at = performance.timeOrigin + performance.now() + 40;
      for (const r of racers) r.send(`go ${file} ${at}`);
      const said = await Promise.all(racers.map((r) => r.next()));
      const winners = racers.filter((_, i) => said[i] === 'won').map((r) => r.child.pid);
      assert.equal(winners.length, 1, `round ${round}: ${said.join(', ')}`);
      assert.deepEqual(
        said.filter((s) => s !== 'won'),
        Array(racers.length - 1).fill(`refused ${winners[0]}`),
        `round ${round}: the others are refused naming the winner`,
      );
      for (const r of racers) r.send('release');
      assert.deepEqual(await Promise.all(racers.map((r) => r.next())), Array(racers.length).fill('released'));
      assert.deepEqual(readdirSync(dir), [], `round ${round}: nothing left beside the lock once it is released`);
    }
  } finally {
    for (const r of racers) r.child.stdin.end();
    await Promise.all(racers.map((r) => new Promise((res) => r.child.exitCode !== null || r.child.once('exit', res))));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('processes that find the same stale lock at once: exactly one takes it over, each time', () =>
  raceForStaleLock('hard-links', 100));

test('without hard links (locks made empty, then written) exactly one takes a stale lock over, each time', () =>
  raceForStaleLock('no-hard-links', 100));

test('a lock just made and still empty is being written, not stale; an old empty one is stale', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'write.lock');
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  const refuse = (pid: number | undefined): Error => Object.assign(new Error(`held by ${pid}`), { pid });
  try {
    // a writer that creates its lock, then writes its pid into it: caught in between
    writeFileSync(file, '');
    const writes = spawn(
      process.execPath,
      ['-e', `setTimeout(() => require('fs').writeFileSync(${JSON.stringify(file)}, '${holder.pid}\\n'), 300)`],
      { stdio: 'ignore' },
    );
    assert.throws(() => PidLock.acquire(file, refuse), { message: `held by ${holder.pid}` });
    assert.equal(PidLock.holder(file), holder.pid);
    await new Promise((res) => writes.exitCode !== null || writes.once('exit', res));

    // one left empty long ago (its writer died before writing) is taken over at once
    writeFileSync(file, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    const started = performance.now();
    assert.equal(PidLock.holder(file), undefined);
    const lock = PidLock.acquire(file, refuse);
    assert.ok(performance.now() - started < 1000, 'no wait for a lock that nobody writes');
    lock.release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    holder.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a takeover whose taker was killed mid-way blocks no one, and what it left goes with the next', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'train.lock');
  try {
    const gone = deadPid();
    writeFileSync(file, `${gone}\n`);
    // the claim on removing that stale lock, made by a taker that was then killed, and one it left on an
    // earlier lock's
    const s = statSync(file, { bigint: true });
    writeFileSync(`${file}.takeover-${s.ino}-${s.mtimeNs}`, `${gone}\n`);
    writeFileSync(`${file}.takeover-1-2`, `${gone}\n`);
    const lock = PidLock.acquire(file, () => new Error('refused'));
    assert.deepEqual(readdirSync(dir), ['train.lock']);
    assert.equal(readFileSync(file, 'utf8'), `${process.pid}\n`);
    lock.release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('within one process a held lock refuses a second acquire, by any name of its folder, until released', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const folder = path.join(dir, 'index');
  const link = path.join(dir, 'link');
  mkdirSync(folder);
  symlinkSync(folder, link);
  const refuse = (pid: number | undefined): Error => new Error(`held by ${pid}`);
  try {
    const first = PidLock.acquire(path.join(folder, 'write.lock'), refuse);
    for (const name of [folder, link, path.join(link, '..', 'index')])
      assert.throws(() => PidLock.acquire(path.join(name, 'write.lock'), refuse), {
        message: `held by ${process.pid}`,
      });
    first.release();
    const second = PidLock.acquire(path.join(link, 'write.lock'), refuse);
    first.release(); // again: the lock is the second's now, and stays
    assert.equal(readFileSync(path.join(folder, 'write.lock'), 'utf8'), `${process.pid}\n`);
    assert.throws(() => PidLock.acquire(path.join(folder, 'write.lock'), refuse), {
      message: `held by ${process.pid}`,
    });
    second.release();
    assert.deepEqual(readdirSync(folder), []);
    // a lock file with this process's pid that no acquire here holds (a killed process had the same pid)
    writeFileSync(path.join(folder, 'write.lock'), `${process.pid}\n`);
    PidLock.acquire(path.join(folder, 'write.lock'), refuse).release();
    assert.deepEqual(readdirSync(folder), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock that cannot be made names the lock file, not the temporary it is written through', () => {
  // /proc/1 exists and nothing can be created in it, as in a read-only folder (root may write anywhere else)
  assert.throws(
    () => PidLock.acquire('/proc/1/write.lock', () => new Error('held')),
    (e: NodeJS.ErrnoException) => e.path === '/proc/1/write.lock' && e.message.endsWith("'/proc/1/write.lock'"),
  );
});
