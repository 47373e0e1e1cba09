/**
 * PidLock, one writer per folder between processes: when several processes find the same stale lock at
 * once, exactly one takes it over and the others are refused naming it; a lock that is still being written
 * (empty, just made) is not stale. Within one process, a lock held is refused to a second acquire, in the
 * same thread or another. A lock is held while the thread it names runs with the start it wrote: one whose
 * thread is gone (a terminated worker) or runs with another start (its pid given anew) is stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
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
import { LockThread } from '../helpers/lock-thread.js';
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

/** When thread `tid` of process `pid` started: field 22 of its stat, counted after the command's ')'. */
function startOf(pid: number, tid = pid): string {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

/** The text of a lock naming thread `tid` of process `pid`, started at `start`. */
const lockOf = (pid: number, tid: number, start = startOf(pid, tid)): string =>
  `${pid}\nthread ${tid} start ${start}\n`;

/** An error carrying what PidLock.acquire passed to refuse. */
const refusal = (pid: number | undefined, otherThread: boolean): Error =>
  Object.assign(new Error(`held by ${pid}${otherThread ? ' in another thread' : ''}`), { pid, otherThread });

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
    // a writer that creates its lock, then writes its pid into it: caught in between. The writer is started
    // first and told when to write, so that its start (seconds on a busy machine) is not in the lock's grace
    const writes = spawn(
      process.execPath,
      [
        '-e',
        `process.stdout.write('ready\\n'); process.stdin.once('data', () => setTimeout(() => ` +
          `require('fs').writeFileSync(${JSON.stringify(file)}, '${holder.pid}\\n'), 300))`,
      ],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    await new Promise((res) => writes.stdout.once('data', res));
    writeFileSync(file, '');
    // flushed before acquire() holds this thread
    await new Promise<void>((res) => writes.stdin.end('go\n', res));
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
    assert.equal(readFileSync(file, 'utf8'), lockOf(process.pid, process.pid));
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
    assert.equal(readFileSync(path.join(folder, 'write.lock'), 'utf8'), lockOf(process.pid, process.pid));
    assert.throws(() => PidLock.acquire(path.join(folder, 'write.lock'), refuse), {
      message: `held by ${process.pid}`,
    });
    second.release();
    assert.deepEqual(readdirSync(folder), []);
    // a lock file with this process's pid that no acquire here holds (a killed process had the same pid),
    // as search-r3 wrote them with the pid alone and as it writes them now, naming this thread
    for (const text of [`${process.pid}\n`, lockOf(process.pid, process.pid)]) {
      writeFileSync(path.join(folder, 'write.lock'), text);
      PidLock.acquire(path.join(folder, 'write.lock'), refuse).release();
      assert.deepEqual(readdirSync(folder), []);
    }
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

test('two threads of one process: a lock one holds refuses the others, naming this process and a thread', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'write.lock');
  const [one, two] = await Promise.all([LockThread.start(), LockThread.start()]);
  const refused = { refused: process.pid, otherThread: true };
  try {
    assert.deepEqual(await one.ask({ acquire: file }), { won: true });
    assert.equal(readFileSync(file, 'utf8'), lockOf(process.pid, one.tid));
    assert.deepEqual(await two.ask({ acquire: file }), refused);
    assert.throws(() => PidLock.acquire(file, refusal), { pid: process.pid, otherThread: true });
    assert.equal(PidLock.holder(file), process.pid);
    assert.deepEqual(await two.ask({ holder: file }), { holder: process.pid });
    assert.deepEqual(await one.ask({ holder: file }), { holder: undefined }, 'its own is no other holder');

    assert.deepEqual(await one.ask({ release: file }), { released: true });
    assert.deepEqual(await two.ask({ acquire: file }), { won: true });
    assert.deepEqual(await one.ask({ acquire: file }), refused);
    await two.ask({ release: file });
    const main = PidLock.acquire(file, refusal);
    assert.deepEqual(await one.ask({ acquire: file }), refused);
    assert.deepEqual(await two.ask({ release: file }), { released: true }, 'a release of what it does not hold');
    assert.equal(readFileSync(file, 'utf8'), lockOf(process.pid, process.pid), 'leaves the holder its lock');
    main.release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    await Promise.all([one.terminate(), two.terminate()]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker terminated while it holds a lock leaves it stale: another thread takes it at once', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'train.lock');
  const worker = await LockThread.start();
  try {
    assert.deepEqual(await worker.ask({ acquire: file }), { won: true });
    const left = lockOf(process.pid, worker.tid);
    assert.equal(readFileSync(file, 'utf8'), left);
    assert.throws(() => PidLock.acquire(file, refusal), { pid: process.pid, otherThread: true });
    await worker.terminate();
    assert.equal(readFileSync(file, 'utf8'), left, 'a terminated worker runs no exit handler');
    assert.equal(PidLock.holder(file), undefined);
    const lock = PidLock.acquire(file, refusal);
    assert.equal(readFileSync(file, 'utf8'), lockOf(process.pid, process.pid));
    lock.release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    await worker.terminate();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock naming a live thread of this process is held with its start, stale with another', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'write.lock');
  const worker = await LockThread.start();
  const other = (start: string): string => String(BigInt(start) + 1n);
  try {
    // the worker's thread, as it would write it: held; with another start, a dead thread's whose tid it was given
    writeFileSync(file, lockOf(process.pid, worker.tid));
    assert.throws(() => PidLock.acquire(file, refusal), { pid: process.pid, otherThread: true });
    writeFileSync(file, lockOf(process.pid, worker.tid, other(startOf(process.pid, worker.tid))));
    assert.equal(PidLock.holder(file), undefined);
    PidLock.acquire(file, refusal).release();

    // the main thread, seen from the worker: held; with another start, a killed process's whose pid this one has
    writeFileSync(file, lockOf(process.pid, process.pid));
    assert.deepEqual(await worker.ask({ acquire: file }), { refused: process.pid, otherThread: true });
    writeFileSync(file, lockOf(process.pid, process.pid, other(startOf(process.pid))));
    assert.deepEqual(await worker.ask({ acquire: file }), { won: true });
    await worker.ask({ release: file });
    // and from the main thread itself
    writeFileSync(file, lockOf(process.pid, process.pid, other(startOf(process.pid))));
    PidLock.acquire(file, refusal).release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    await worker.terminate();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock naming another live process is held with its start, stale with another (its pid given anew)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'train.lock');
  // a command with ') ' in it, as /proc writes it in parentheses before the start
  const title = 'a) 1 2 (b';
  const live = spawn(process.execPath, ['-e', `process.title = '${title}'; setTimeout(() => {}, 60000)`], {
    stdio: 'ignore',
  });
  const pid = live.pid!;
  try {
    while (!existsSync(`/proc/${pid}/comm`) || readFileSync(`/proc/${pid}/comm`, 'utf8') !== `${title}\n`)
      await new Promise((res) => setTimeout(res, 10));
    writeFileSync(file, lockOf(pid, pid));
    assert.throws(() => PidLock.acquire(file, refusal), { pid, otherThread: false });
    assert.equal(PidLock.holder(file), pid);
    writeFileSync(file, lockOf(pid, pid, String(BigInt(startOf(pid)) - 1n)));
    assert.equal(PidLock.holder(file), undefined);
    PidLock.acquire(file, refusal).release();

    // a lock holding the pid alone (as search-r3 wrote them, and writes them without /proc): judged by it
    writeFileSync(file, `${pid}\n`);
    assert.throws(() => PidLock.acquire(file, refusal), { pid, otherThread: false });
    live.kill('SIGKILL');
    await new Promise((res) => live.exitCode !== null || live.once('exit', res));
    for (const text of [`${pid}\n`, lockOf(pid, pid, '1')]) {
      writeFileSync(file, text);
      assert.equal(PidLock.holder(file), undefined);
      PidLock.acquire(file, refusal).release();
    }
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    live.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock naming a zombie (exited, never reaped, as under a pid 1 that does not reap) is stale', async (t) => {
  if (!existsSync('/proc/self/stat')) return t.skip('no /proc here');
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-pidlock-'));
  const file = path.join(dir, 'write.lock');
  // the shell becomes `sleep 30`, which never waits for its child: the child stays a zombie once it exits
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = Number(await new Promise<string>((res) => parent.stdout.once('data', (d) => res(String(d)))));
    writeFileSync(file, lockOf(pid, pid));
    assert.throws(() => PidLock.acquire(file, refusal), { pid, otherThread: false });
    const state = (): string => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0]!;
    while (state() !== 'Z') await new Promise((res) => setTimeout(res, 20));
    PidLock.acquire(file, refusal).release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    parent.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
