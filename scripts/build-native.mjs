// Builds the optional N-API addon (OpenBLAS sgemm + fused C kernels).
// A failed build must not fail `npm install`: the pure-TS backend still works, and the
// CLI says once that it is running without the native backend.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'binding.gyp'))) process.exit(0);
const r = spawnSync('npx', ['--no-install', 'node-gyp', 'rebuild'], { cwd: root, stdio: 'inherit', shell: false });
if (r.status !== 0) {
  console.warn('search-r3: the native backend did not build (is libopenblas-dev installed?); the pure-TypeScript backend will be used.');
}
process.exit(0);
