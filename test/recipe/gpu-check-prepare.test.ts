/**
 * `scripts/gpu-check.sh prepare`: what a call to the GPU machine needs is checked here, before device time
 * is spent, in a throwaway repository holding the scripts and stand-ins of the built files. And the run
 * itself on a machine where WebGPU finds no adapter: it stops at the device probe, in seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';

const MIB = 1024 * 1024;

test('gpu-check prepare: names what is missing, says how to get under 64 MiB, prints the carry', () => {
  const dir = tempDir('gpu-check-prepare');
  // a file of `bytes` (sparse: no disk), its folders made
  const put = (f: string, bytes = 16): void => {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), '');
    truncateSync(path.join(dir, f), bytes);
  };
  const git = (...args: string[]): void => {
    const r = spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir });
    assert.equal(r.status, 0, String(r.stderr));
  };
  const prepare = (): { status: number | null; out: string } => {
    const r = spawnSync('bash', ['scripts/gpu-check.sh', 'prepare'], { cwd: dir, encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  };
  try {
    mkdirSync(path.join(dir, 'scripts'));
    for (const f of ['gpu-check.sh', 'lease-travel.sh', 'nvidia-vulkan.sh'])
      copyFileSync(path.join(repoRoot, 'scripts', f), path.join(dir, 'scripts', f));
    writeFileSync(path.join(dir, '.gitignore'), '/dist/\n/build/\n/.gpu-pack/\n');
    put('models/search-r3-default/model.safetensors', 30 * MIB);
    put('demo/scifact/corpus.jsonl.gz');
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'tree');

    assert.match(prepare().out, /dist\/bench\/gpu\.js is missing: run npm run build/);
    put('dist/bench/gpu.js');
    assert.match(prepare().out, /dist\/bench\/gpu-sizing\.js is missing: run npm run build/);
    put('dist/bench/gpu-sizing.js');
    mkdirSync(path.join(dir, 'dist/test/tensor/webgpu'), { recursive: true });
    assert.match(prepare().out, /dist\/src\/cli\/device\.js is missing: run npm run build/);
    put('dist/src/cli/device.js');
    put('elsewhere/Release/search_r3_native.node');
    mkdirSync(path.join(dir, 'build'));
    symlinkSync(path.join(dir, 'elsewhere/Release'), path.join(dir, 'build/Release'));
    assert.match(prepare().out, /build\/Release is a symlink: copy the real folder in its place/);
    rmSync(path.join(dir, 'build/Release'));
    put('build/Release/search_r3_native.node');
    const noPack = prepare();
    assert.equal(noPack.status, 1);
    assert.match(noPack.out, /\.gpu-pack\/ is missing: bash \.\.\/shared\/tools\/offline-gpu\/pack\.sh webgpu/);

    put('.gpu-pack/prologue.sh', 36 * MIB);
    const over = prepare();
    assert.equal(over.status, 1);
    assert.match(over.out, /travels: tree 30\.0 MiB \+ carried 36\.0 MiB = 66\.0 MiB of 64\.0 MiB/);
    assert.match(
      over.out,
      /2\.0 MiB too much to send\. .* git switch -c gpu-check && git rm -rq models\/search-r3-default demo/,
    );

    git('switch', '-qc', 'gpu-check');
    git('rm', '-rq', 'models/search-r3-default', 'demo');
    git('commit', '-qm', 'without the shipped model');
    const ok = prepare();
    assert.equal(ok.status, 0, ok.out);
    assert.match(ok.out, /travels: tree 0\.0 MiB \+ carried 36\.0 MiB = 36\.0 MiB of 64\.0 MiB/);
    assert.match(ok.out, /^carry: \[".gpu-pack","dist","build\/Release"\]$/m);
    assert.match(ok.out, /^command \(timeout_s 570\): bash scripts\/gpu-check\.sh$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gpu-check on a machine where WebGPU finds no adapter stops at the probe, saying why', () => {
  const dir = tempDir('gpu-check-probe');
  try {
    mkdirSync(path.join(dir, 'scripts'));
    for (const f of ['gpu-check.sh', 'lease-travel.sh', 'nvidia-vulkan.sh'])
      copyFileSync(path.join(repoRoot, 'scripts', f), path.join(dir, 'scripts', f));
    // the built CLI, and a pack whose prologue has nothing to unpack (node is on PATH here)
    symlinkSync(path.join(repoRoot, 'dist'), path.join(dir, 'dist'));
    mkdirSync(path.join(dir, '.gpu-pack'));
    writeFileSync(path.join(dir, '.gpu-pack/prologue.sh'), '');
    const out = path.join(dir, 'out');
    const r = spawnSync('bash', ['scripts/gpu-check.sh'], {
      cwd: dir,
      encoding: 'utf8',
      // no driver whatever this host has: both of the loader's lists name a missing file
      env: { ...process.env, OUT: out, VK_ICD_FILENAMES: '/nonexistent.json', VK_DRIVER_FILES: '/nonexistent.json' },
    });
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /gpu-check: WebGPU is not usable here \(exit 2, .*probe\.txt\); nothing else was run/);
    const probe = readFileSync(path.join(out, 'probe.txt'), 'utf8');
    assert.match(probe, /^Vulkan ICD: \/nonexistent\.json; NVIDIA_DRIVER_CAPABILITIES=.*; driver libraries: /m);
    assert.match(probe, /search-r3: --device webgpu: WebGPU is unavailable: no WebGPU adapter was found/);
    assert.deepEqual(readdirSync(out), ['probe.txt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
