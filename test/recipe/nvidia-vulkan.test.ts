/**
 * scripts/nvidia-vulkan.sh on fake machines (VK_SEARCH_ROOT, and an ldconfig of the test's on PATH): the
 * Vulkan loader is pointed at NVIDIA's ICD file wherever the loader's folders hold one; where only the
 * driver's library is there (a container without the ICD file), found in a folder or through the linker's
 * cache, at a file written to name it; where neither is, at nothing, with the missing libraries said; and
 * a driver list already given is kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';

test('nvidia-vulkan.sh finds the ICD file, or writes one for the driver library, or says what is missing', () => {
  const dir = tempDir('nvidia-vulkan');
  const put = (root: string, f: string, text = ''): string => {
    const file = path.join(root, f);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    return file;
  };
  // `ldconfig -p` prints what LDCONFIG_LISTS names, as the real one lists the linker's cache
  const bin = path.join(dir, 'bin');
  put(
    bin,
    'ldconfig',
    '#!/bin/sh\n[ -n "$LDCONFIG_LISTS" ] && printf \'\\t%s (libc6,x86-64) => %s\\n\' $LDCONFIG_LISTS\n',
  );
  chmodSync(path.join(bin, 'ldconfig'), 0o755);
  const source = (root: string, env: Record<string, string> = {}): { vk: string; out: string } => {
    const script = path.join(repoRoot, 'scripts', 'nvidia-vulkan.sh');
    const r = spawnSync('bash', ['-c', `source '${script}' && echo "VK=\${VK_DRIVER_FILES:-}"`], {
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        VK_DRIVER_FILES: '',
        VK_ICD_FILENAMES: '',
        LDCONFIG_LISTS: '',
        VK_SEARCH_ROOT: root,
        TMPDIR: root,
        ...env,
      },
    });
    assert.equal(r.status, 0, r.stderr);
    return { vk: /^VK=(.*)$/m.exec(r.stdout)![1], out: r.stdout };
  };
  const icdOf = (file: string): string =>
    (JSON.parse(readFileSync(file, 'utf8')) as { ICD: { library_path: string } }).ICD.library_path;
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
    assert.equal(icdOf(written.vk), glx);
    assert.match(written.out, /driver libraries: libGLX_nvidia\.so\.0 libnvidia-glvkspirv\.so \(libnvidia-gpucomp/);

    // only the linker's cache knows the library
    const cached = path.join(dir, 'cached');
    mkdirSync(cached);
    const listed = source(cached, { LDCONFIG_LISTS: 'libGLX_nvidia.so.0 /opt/driver/libGLX_nvidia.so.0' });
    assert.equal(icdOf(listed.vk), '/opt/driver/libGLX_nvidia.so.0');

    const bare = path.join(dir, 'bare');
    mkdirSync(bare);
    const none = source(bare, { NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' });
    assert.equal(none.vk, '');
    assert.match(none.out, /^Vulkan ICD: none found; NVIDIA_DRIVER_CAPABILITIES=compute,utility; driver libraries: /m);
    assert.match(none.out, /\(libGLX_nvidia\.so\.0 missing\)/);

    // a list the prologue or the user gave is kept: files that all exist, or VK_ICD_FILENAMES
    const other = put(dir, 'other_icd.json', '{}');
    assert.equal(source(libMachine, { VK_DRIVER_FILES: `${icd}:${other}` }).vk, `${icd}:${other}`);
    assert.equal(source(libMachine, { VK_ICD_FILENAMES: '/nonexistent.json' }).vk, '');
    // a list naming a missing file is replaced
    assert.equal(source(icdMachine, { VK_DRIVER_FILES: `${other}:/nonexistent.json` }).vk, icd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
