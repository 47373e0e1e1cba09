/**
 * A private redis-server for the queue tests: on a free loopback port, without persistence (a restart
 * loses every job, the harshest case for the coordinator), stopped by the test that started it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'redis-'));

  private constructor(
    readonly port: number,
    private readonly extra: readonly string[],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `extra`: more redis-server options, such as ['--requirepass', 'x'] or ['--replicaof', host, port]. */
  static async start(extra: readonly string[] = []): Promise<RedisServer> {
    // freePort's port is free only until it is closed: another test's process may bind it before
    // redis-server does, which then exits saying so; another port is then as good as the first
    for (let attempt = 1; ; attempt++) {
      const r = new RedisServer(await freePort(), extra);
      try {
        await r.launch();
        return r;
      } catch (e) {
        await r.stop();
        if (attempt === 5 || !/address already in use/i.test((e as Error).message)) throw e;
      }
    }
  }

  /** Starts redis-server again on the same port (after stop()), empty. */
  async launch(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...this.extra,
    ];
    // its own working folder: a replica's full sync writes dump.rdb there even with --save ''
    mkdirSync(this.dir, { recursive: true });
    const proc = spawn('redis-server', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.once('error', (e) => reject(new Error(`redis-server could not start (${e.message}); install it`)));
      // 'close', not 'exit': its reason (a port in use) may still be in the pipe when it exits
      proc.once('close', (code) => reject(new Error(`redis-server exited with code ${code}: ${out}`)));
      proc.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (/Ready to accept connections/.test(out)) resolve();
      });
    });
    proc.removeAllListeners('close');
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc && proc.exitCode === null)
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
