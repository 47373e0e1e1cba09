/**
 * A stop signal that arrives while the main thread blocks in a GPU read: Node runs signal listeners from
 * its event loop, which a blocked thread never reaches, so the read delivers the signal itself. A listener
 * that exits ends the process within seconds, its other exit listeners run, and the GPU work still queued
 * (tens of seconds on lavapipe) is neither waited for nor torn down into Dawn's abort.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../helpers/repo.js';
import { skipWithoutGpu } from './harness.js';

const opt = { skip: skipWithoutGpu, timeout: 180_000 };

/** Whether the main thread of process `pid` sleeps in a futex (Atomics.wait), or null where Linux does not say. */
function blockedInWait(pid: number): boolean | null {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/wchan`, 'utf8').includes('futex');
  } catch {
    return null;
  }
}

/**
 * Whether process `pid` has ended (its main thread exited: a zombie, or gone), or null where Linux does not
 * say. The kernel frees a process's memory after that; on a loaded machine that alone took seconds.
 */
function hasEnded(pid: number): boolean | null {
  try {
    return /^[ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? true : null;
  }
}

/** How a stopped child ended: its status and output, and the seconds from SIGTERM to its end. */
interface Stopped {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  seconds: number;
}

/**
 * Runs `script` (a module body) in a node with `env`; `whenOut` hears its output so far and is given `send`,
 * which sends SIGTERM once (a child that never sees it is killed 15 s later, so that a test fails in seconds).
 */
function stoppedChild(
  script: string,
  env: NodeJS.ProcessEnv,
  whenOut: (out: string, send: () => void, pid: number) => void,
): Promise<Stopped> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'pipe', env });
  let out = '',
    err = '',
    sentAt = 0,
    endedAt = 0;
  const watch = setInterval(() => {
    if (sentAt !== 0 && endedAt === 0 && hasEnded(child.pid!)) endedAt = performance.now();
  }, 5);
  const send = (): void => {
    if (sentAt !== 0) return;
    sentAt = performance.now();
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  };
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.on('data', (d: Buffer) => whenOut((out += d.toString()), send, child.pid!));
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      clearInterval(watch);
      resolve({ code, signal, out, err, seconds: ((endedAt || performance.now()) - sentAt) / 1000 });
    }),
  );
}

/**
 * Starts a node (with `env`) that reads GPU results in a loop, each read behind 32 products of 1024³ on a
 * software adapter (69 GFLOP: over twenty seconds on lavapipe), 1,000 of 4096³ on a GPU (137 TFLOP: seconds on
 * an H200), with `listeners` (a module body) registered once the device is open.
 * Resolves, once SIGTERM was sent in its first read, to its status and output and the seconds until it ended.
 * The signal comes 0.5 s into the read, or with `atStart` as soon as its main thread blocks (polled every
 * millisecond), in the read's first milliseconds.
 */
function stopInRead(listeners: string, atStart = false, env: NodeJS.ProcessEnv = process.env): Promise<Stopped> {
  const tensor = path.join(repoRoot, 'dist', 'src', 'tensor', 'index.js');
  const script = `
    const T = await import(${JSON.stringify(tensor)});
    T.setBackend('webgpu');
    T.webgpuKernels().gpu.stats(); // the device is open: its exit listener comes before the ones below
    ${listeners}
    const software = T.webgpuKernels().gpu.facts.software;
    const [n, count] = software ? [1024, 32] : [4096, 1000];
    const a = new T.Tensor(new Float32Array(n * n).fill(1 / n), [n, n]);
    for (;;) {
      let b = a;
      for (let i = 0; i < count; i++) {
        const c = T.matmul(b, a);
        if (b !== a) b.release();
        b = c;
      }
      T.webgpuKernels().gpu.flush();
      console.log('reading');
      b.read();
      console.log('read');
    }`;
  let started = false;
  return stoppedChild(script, env, (out, send, pid) => {
    // into the read: the main thread is blocked in Atomics.wait by now
    if (started || !out.includes('reading')) return;
    started = true;
    if (!atStart) setTimeout(send, 500);
    else {
      const poll = setInterval(() => {
        // where Linux does not say, the signal goes at once: still in the read's first milliseconds
        if (blockedInWait(pid) !== false) {
          clearInterval(poll);
          send();
        }
      }, 1);
    }
  });
}

test(
  'SIGTERM in a long GPU read runs the listener at once; its exit runs the exit listeners, not the GPU work',
  opt,
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gpu-signal-'));
    try {
      const marker = path.join(dir, 'cleaned');
      const r = await stopInRead(`
      const { writeFileSync } = await import('node:fs');
      process.on('exit', () => writeFileSync(${JSON.stringify(marker)}, 'cleaned'));
      process.on('SIGTERM', () => { console.log('stopping'); process.exit(143); });`);
      assert.equal(r.code, 143, r.err);
      assert.match(r.out, /stopping/);
      assert.doesNotMatch(r.out, /\bread\b/, 'the GPU finished the read before the signal: it proves nothing');
      assert.ok(r.seconds < 5, `the process ended ${r.seconds.toFixed(1)} s after SIGTERM`);
      assert.equal(readFileSync(marker, 'utf8'), 'cleaned');
      assert.doesNotMatch(r.err, /FATAL|Abort/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('SIGTERM in a long GPU read of a process with no listener ends it by the signal, at once', opt, async () => {
  const r = await stopInRead('');
  assert.equal(r.signal, 'SIGTERM', `status ${r.code}: ${r.err}`);
  assert.ok(r.seconds < 5, `the process ended ${r.seconds.toFixed(1)} s after SIGTERM`);
});

test('SIGTERM in the first milliseconds of a long GPU read runs the listener at once', opt, async () => {
  const r = await stopInRead(`process.on('SIGTERM', () => { console.log('stopping'); process.exit(143); });`, true);
  assert.equal(r.code, 143, r.err);
  assert.match(r.out, /stopping/);
  assert.doesNotMatch(r.out, /\bread\b/, 'the GPU finished the read before the signal: it proves nothing');
  assert.ok(r.seconds < 5, `the process ended ${r.seconds.toFixed(1)} s after SIGTERM`);
});

test('an exit listener that a signal listener adds runs before a process the signal stops ends', opt, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gpu-signal-'));
  try {
    const marker = path.join(dir, 'unlocked');
    const r = await stopInRead(`
      const { writeFileSync } = await import('node:fs');
      process.on('SIGTERM', () => {
        process.on('exit', () => writeFileSync(${JSON.stringify(marker)}, 'unlocked'));
        process.exit(143);
      });`);
    assert.equal(r.code, 143, r.err);
    assert.match(r.err, /not waiting for the GPU/, 'the GPU finished before the exit: it proves nothing');
    assert.equal(readFileSync(marker, 'utf8'), 'unlocked');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'SEARCH_R3_GPU_PROFILE: a process a signal stops in a long GPU read prints the profile of the work done',
  opt,
  async () => {
    // one product read back first: the long read's own timestamps come back only when its work has run
    const r = await stopInRead(
      `
      const s = new T.Tensor(new Float32Array(64 * 64).fill(0.01), [64, 64]);
      T.matmul(s, s).read();
      process.on('SIGTERM', () => process.exit(143));`,
      false,
      { ...process.env, SEARCH_R3_GPU_PROFILE: '1' },
    );
    assert.equal(r.code, 143, r.err);
    assert.doesNotMatch(r.out, /\bread\b/, 'the GPU finished the read before the signal: it proves nothing');
    assert.ok(r.seconds < 5, `the process ended ${r.seconds.toFixed(1)} s after SIGTERM`);
    assert.match(
      r.err,
      /^search-r3: GPU kernel profile \(SEARCH_R3_GPU_PROFILE\) of the work done before SIGTERM \(what was still /m,
    );
    assert.match(r.err, /^\| gemm\w* \| [1-9]\d* \| \d+\.\d{3} \|/m);
  },
);

/**
 * Starts a node whose SIGTERM listener `listeners` (a module body) is in place before it asks for the
 * WebGPU device, with a Vulkan driver manifest that is a named pipe nobody writes: the Vulkan loader
 * blocks reading it, as an adapter does that takes minutes to come up on some drivers. SIGTERM goes 1 s
 * after the request began. Resolves to the child's status and output and the seconds it took to end after.
 */
function stopInAdapterStart(listeners: string, dir: string): Promise<Stopped> {
  const manifest = path.join(dir, 'icd.json');
  execFileSync('mkfifo', [manifest]);
  const tensor = path.join(repoRoot, 'dist', 'src', 'tensor', 'index.js');
  const script = `
    const T = await import(${JSON.stringify(tensor)});
    ${listeners}
    console.log('opening');
    T.setBackend('webgpu');
    console.log('opened');`;
  // VK_DRIVER_FILES for loaders since 1.3.207, VK_ICD_FILENAMES for older ones
  const env = { ...process.env, VK_DRIVER_FILES: manifest, VK_ICD_FILENAMES: manifest };
  let started = false;
  return stoppedChild(script, env, (out, send) => {
    if (started || !out.includes('opening')) return;
    started = true;
    setTimeout(send, 1000);
  });
}

test(
  'SIGTERM while the WebGPU adapter comes up runs the listener at once, its output and exit listeners too',
  { ...opt, skip: process.platform !== 'linux' ? 'the slow adapter is a Vulkan driver manifest' : opt.skip },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gpu-signal-'));
    try {
      const marker = path.join(dir, 'unlocked');
      const r = await stopInAdapterStart(
        `
      const { writeFileSync } = await import('node:fs');
      process.on('exit', () => writeFileSync(${JSON.stringify(marker)}, 'unlocked'));
      process.on('SIGTERM', () => { process.stderr.write('stopping\\n'); process.exit(143); });`,
        dir,
      );
      assert.equal(r.code, 143, `signal ${r.signal}: ${r.err}`);
      assert.doesNotMatch(r.out, /opened/, 'the adapter came up: it proves nothing');
      assert.ok(r.seconds < 5, `the process ended ${r.seconds.toFixed(1)} s after SIGTERM`);
      assert.match(r.err, /^stopping$/m);
      assert.equal(readFileSync(marker, 'utf8'), 'unlocked');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
