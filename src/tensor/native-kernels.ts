/**
 * Loads the N-API addon (build/Release/search_r3_native.node, built at install by node-gyp from
 * native/) and presents it as Kernels. The addon may implement a subset of the kernels; the rest
 * fall back to the TS reference, so every kernel exists on both backends.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsKernels } from './js-kernels.js';
import type { Kernels } from './kernels.js';

function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'build', 'Release', 'search_r3_native.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('build/Release/search_r3_native.node not found (run `npm install`; it needs libopenblas-dev and a C compiler)');
}

export function loadNativeKernels(): Kernels {
  const require = createRequire(import.meta.url);
  const addon = require(findAddon()) as { makeKernels(): Partial<Kernels> };
  return { ...jsKernels, ...addon.makeKernels(), name: 'native' };
}
