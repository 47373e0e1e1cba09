/**
 * SEARCH_R3_BACKEND naming no backend: the tensor layer still loads (a throwing import is a stack trace, even
 * for --help); asking for the kernels, or checkBackendChoice, throws a BackendChoiceError that says it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/repo.js';

test('a SEARCH_R3_BACKEND that names no backend: the layer loads; kernels() and checkBackendChoice() throw', () => {
  const index = pathToFileURL(path.join(repoRoot, 'dist/src/tensor/index.js')).href;
  const script = `
    const T = await import(${JSON.stringify(index)});
    const said = [];
    for (const f of [() => T.kernels(), () => T.checkBackendChoice(), () => T.tensor([1, 2], [2])])
      try {
        f();
        said.push('no error');
      } catch (e) {
        said.push(e instanceof T.BackendChoiceError ? e.message : String(e));
      }
    console.log(JSON.stringify(said));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, SEARCH_R3_BACKEND: 'gpu' },
  });
  assert.equal(r.status, 0, r.stderr);
  const message =
    "SEARCH_R3_BACKEND must be 'js', 'native' or 'webgpu', not 'gpu'; set it to one of them, or unset it.";
  assert.deepEqual(JSON.parse(r.stdout), [message, message, message]);
});

test('SEARCH_R3_BACKEND=webgpu with no adapter: said when kernels are asked for; --device cpu still runs', () => {
  const index = pathToFileURL(path.join(repoRoot, 'dist/src/tensor/index.js')).href;
  const script = `
    const T = await import(${JSON.stringify(index)});
    const said = [];
    const attempt = (f) => {
      try {
        said.push(JSON.stringify(f() ?? 'ok'));
      } catch (e) {
        said.push(e.name + ': ' + e.message);
      }
    };
    attempt(() => T.checkBackendChoice());
    attempt(() => T.tensor([1, 2], [2]).read()[1]);
    attempt(() => T.useDevice('WEBGPU'));
    attempt(() => T.useDevice('cpu').backend);
    attempt(() => T.tensor([1, 2], [2]).read()[1]);
    console.log(JSON.stringify(said));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, SEARCH_R3_BACKEND: 'webgpu', VK_ICD_FILENAMES: '/nonexistent.json' },
  });
  assert.equal(r.status, 0, r.stderr);
  const [check, before, wrong, cpu, after] = JSON.parse(r.stdout) as string[];
  assert.equal(check, '"ok"', 'a backend that is named but missing does not stop a command at its start');
  // the variable chose: the sentence names it, and how to do without the GPU
  assert.match(before, /^GpuError: SEARCH_R3_BACKEND=webgpu: WebGPU is unavailable: no WebGPU adapter/);
  assert.match(before, /; unset SEARCH_R3_BACKEND to compute on the CPU\.$/);
  assert.equal(wrong, "BackendChoiceError: device must be 'auto', 'cpu' or 'webgpu', not 'WEBGPU'.");
  assert.match(cpu, /^"(native|js)"$/);
  assert.equal(after, '2', 'the device chosen explicitly computes');
});

test('a program that chooses its device itself (not the CLI) is refused SEARCH_R3_CHECK_FINITE=false too', () => {
  const index = pathToFileURL(path.join(repoRoot, 'dist/src/tensor/index.js')).href;
  const script = `
    const T = await import(${JSON.stringify(index)});
    try {
      T.useDevice('cpu');
      console.log(JSON.stringify({ checked: T.isFiniteCheckEnabled() }));
    } catch (e) {
      console.log(JSON.stringify({ name: e.name, message: e.message }));
    }`;
  const run = (value: string): unknown =>
    JSON.parse(
      spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, SEARCH_R3_CHECK_FINITE: value },
      }).stdout,
    );
  // 'false' read as "not '0'" left the per-op check on without a word
  assert.deepEqual(run('false'), {
    name: 'SettingError',
    message: "SEARCH_R3_CHECK_FINITE must be 0 or 1, not 'false'; set it to one of them, or unset it.",
  });
  assert.deepEqual(run('0'), { checked: false });
  assert.deepEqual(run('1'), { checked: true });
});
