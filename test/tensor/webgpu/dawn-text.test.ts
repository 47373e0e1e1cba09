/**
 * What Dawn says, as our sentences (no GPU needed): its messages of several lines cut to the one that says
 * what went wrong, what it writes to stderr while it looks for an adapter sorted (the clamp warnings and C++
 * frames it prints every time dropped, why it found no adapter kept for the sentence, what anything else
 * wrote passed on), an unknown `adapter=` named with the adapters there are. And the addon's capture of
 * stderr that lets the GPU device sort it: what is written to fd 2 meanwhile comes back, and stderr is
 * restored; a second capture at the same time is refused. The texts are Dawn's own, copied from its output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadAddon } from '../../../src/tensor/native-kernels.js';
import { adapterRequestSentence, dawnSentence, sortDawnStderr } from '../../../src/tensor/webgpu/dawn-text.js';
import { repoRoot } from '../../helpers/repo.js';

const CLAMPS =
  'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic ' +
  'offset allocation limit.\n' +
  'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic ' +
  'offset allocation limit.\n';

test('a Dawn message is its first line, without the calls it happened in or a full stop', () => {
  const refused =
    'Copy range (offset: 0, size: 4096) does not fit in [Buffer (unlabeled)] size (1024).\n' +
    ' - While validating source [Buffer (unlabeled)] copy size.\n' +
    ' - While encoding [CommandEncoder (unlabeled)].CopyBufferToBuffer([Buffer (unlabeled)], 0, [Buffer ' +
    '(unlabeled)], 0, 4096).\n - While finishing [CommandEncoder (unlabeled)].\n';
  assert.equal(
    dawnSentence(refused),
    'Copy range (offset: 0, size: 4096) does not fit in [Buffer (unlabeled)] size (1024)',
  );
  assert.equal(dawnSentence('device was destroyed'), 'device was destroyed');
});

test("Dawn's stderr: the clamp warnings and C++ frames go, why there is no adapter is kept, others pass", () => {
  const lavapipe = sortDawnStderr(CLAMPS);
  assert.deepEqual(lavapipe, { kept: [], others: [], logged: [] });
  const noDriver = sortDawnStderr(
    'Warning: vkCreateInstance: Found no drivers!\n' +
      'search-r3: a line of our own\n' +
      'Warning: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER\n' +
      '    at CheckVkSuccessImpl (/home/runner/work/node-webgpu/node-webgpu/third_party/dawn/src/dawn/native/' +
      'vulkan/VulkanError.cpp:106)\n\n',
  );
  assert.deepEqual(noDriver, {
    kept: [
      'Warning: vkCreateInstance: Found no drivers!',
      'search-r3: a line of our own',
      'Warning: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER',
    ],
    others: ['search-r3: a line of our own'],
    logged: ['vkCreateInstance: Found no drivers', 'vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER'],
  });
});

test('adapter=<name> that matches none: one sentence naming it and the adapters there are', () => {
  const dawn =
    'no suitable backends found\nAvailable adapters:\n' +
    " * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'.\n";
  assert.equal(
    adapterRequestSentence(dawn, ['adapter=nvidia']),
    "no adapter named 'nvidia' was found (SEARCH_R3_DAWN_FLAGS adapter=nvidia); " +
      "the adapters here: 'llvmpipe (LLVM 15.0.6, 256 bits)' (vulkan)",
  );
  assert.equal(adapterRequestSentence('something else.\n - While x', []), 'something else');
});

test('captureStderr: fd 2 comes back as text, then goes where it went; a second capture meanwhile is refused', (t) => {
  if (process.platform !== 'linux') return t.skip('stderr is captured on Linux only');
  try {
    loadAddon();
  } catch (e) {
    // as the native kernels' tests: the addon must be there, unless its absence is allowed
    if (process.env.SEARCH_R3_ALLOW_NO_NATIVE === '1') return t.skip(`no native addon: ${(e as Error).message}`);
    throw e;
  }
  const native = path.join(repoRoot, 'dist', 'src', 'tensor', 'native-kernels.js');
  const script = `
    import { writeSync } from 'node:fs';
    const { captureStderr } = await import(${JSON.stringify(native)});
    const release = captureStderr();
    writeSync(2, 'inside\\n');
    const second = captureStderr();
    const text = release === null ? null : release();
    writeSync(2, 'after\\n');
    console.log(JSON.stringify({ text, second: second === null }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { text: 'inside\n', second: true });
  assert.equal(r.stderr, 'after\n');
  // a process that exits or aborts while capturing (a driver failing inside Dawn) still says what it caught
  for (const end of ['process.exit(3)', 'process.abort()']) {
    const ending = `
      import { writeSync } from 'node:fs';
      const { captureStderr } = await import(${JSON.stringify(native)});
      captureStderr();
      writeSync(2, 'last words\\n');
      ${end};`;
    const e = spawnSync(process.execPath, ['--input-type=module', '-e', ending], { encoding: 'utf8' });
    assert.ok(e.stderr.startsWith('last words\n'), `${end}: ${e.stderr}`);
  }
});
