/**
 * scripts/nvidia-vulkan.sh on fake machines (VK_SEARCH_ROOT): the Vulkan loader is pointed at NVIDIA's ICD
 * file wherever the loader's folders hold one; where only the driver's library is there (a container
 * without the ICD file), at a file written to name it; where neither is, at nothing, with the missing
 * libraries said.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';

function source(root: string, env: Record<string, string> = {}): { vk: string; out: string } {
  const script = path.join(repoRoot, 'scripts', 'nvidia-vulkan.sh');
  const r = spawnSync('bash', ['-c', `source '${script}' && echo "VK=\${VK_DRIVER_FILES:-}"`], {
    encoding: 'utf8',
    env: { ...process.env, VK_DRIVER_FILES: '', VK_SEARCH_ROOT: root, TMPDIR: root, ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return { vk: /^VK=(.*)$/m.exec(r.stdout)![1], out: r.stdout };
}

test('nvidia-vulkan.sh finds the ICD file, or writes one for the driver library, or says what is missing', () => {
  const dir = tempDir('nvidia-vulkan');
  const put = (root: string, f: string, text = ''): string => {
    const file = path.join(root, f);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    return file;
  };
  try {
    const icdMachine = path.join(dir, 'icd');
    const icd = put(icdMachine, 'etc/vulkan/icd.d/nvidia_icd.json', '{}');
    put(icdMachine, 'usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0');
    assert.equal(source(icdMachine).vk, icd);

    const libMachine = path.join(dir, 'lib');
    const glx = put(libMachine, 'usr/local/nvidia/lib64/libGLX_nvidia.so.0');
    put(libMachine, 'usr/local/nvidia/lib64/libnvidia-glvkspirv.so.550.54.15');
    const written = source(libMachine);
    assert.equal(written.vk, path.join(libMachine, 'search-r3-nvidia_icd.json'));
    const json = JSON.parse(readFileSync(written.vk, 'utf8')) as { ICD: { library_path: string } };
    assert.equal(json.ICD.library_path, glx);
    assert.match(written.out, /driver libraries: libGLX_nvidia\.so\.0 libnvidia-glvkspirv\.so \(libnvidia-gpucomp/);

    const bare = path.join(dir, 'bare');
    mkdirSync(bare);
    const none = source(bare, { NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' });
    assert.equal(none.vk, '');
    assert.match(none.out, /^Vulkan ICD: none found; NVIDIA_DRIVER_CAPABILITIES=compute,utility; driver libraries: /m);
    assert.match(none.out, /\(libGLX_nvidia\.so\.0 missing\)/);

    // a file the prologue already chose is kept
    assert.equal(source(libMachine, { VK_DRIVER_FILES: icd }).vk, icd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
