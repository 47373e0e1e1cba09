/**
 * A worker thread holding PidLocks, so that two threads of one process contend for one lock (LockThread
 * starts one). Started with workerData 'lock-thread', this file posts its OS thread ('<pid>/task/<tid>')
 * once, then answers each message in turn: { acquire: file } with { won: true } or { refused: pid,
 * otherThread }, { release: file } with { released: true }, { holder: file } with { holder: pid }. Loaded
 * otherwise (the test runner may load every file under dist/test) it only defines LockThread.
 */
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { PidLock } from '../../src/io/pid-lock.js';

/** What the thread is asked: take, release, or name the holder of the lock file named. */
type Command = { acquire: string } | { release: string } | { holder: string };

if (!isMainThread && workerData === 'lock-thread' && parentPort) {
  const port = parentPort;
  const held = new Map<string, PidLock>();
  port.postMessage(readlinkSync('/proc/thread-self'));
  port.on('message', (c: Command) => {
    if ('acquire' in c) {
      try {
        held.set(
          c.acquire,
          PidLock.acquire(c.acquire, (pid, otherThread) => Object.assign(new Error('refused'), { pid, otherThread })),
        );
        port.postMessage({ won: true });
      } catch (e) {
        const { pid, otherThread } = e as { pid?: number; otherThread?: boolean };
        port.postMessage({ refused: pid, otherThread });
      }
    } else if ('release' in c) {
      held.get(c.release)?.release();
      held.delete(c.release);
      port.postMessage({ released: true });
    } else {
      port.postMessage({ holder: PidLock.holder(c.holder) });
    }
  });
}

/** A worker thread of this process holding locks (this file), asked one thing at a time. */
export class LockThread {
  private constructor(
    private readonly worker: Worker,
    readonly tid: number,
  ) {}

  static async start(): Promise<LockThread> {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: 'lock-thread' });
    const self = await new Promise<string>((resolve, reject) => worker.once('message', resolve).once('error', reject));
    return new LockThread(worker, Number(self.split('/')[2]));
  }

  ask(command: Command): Promise<unknown> {
    const answer = new Promise((resolve) => this.worker.once('message', resolve));
    this.worker.postMessage(command);
    return answer;
  }

  /** Ends the thread as Worker.terminate does: no exit handler runs in it, so its locks stay behind. */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}
