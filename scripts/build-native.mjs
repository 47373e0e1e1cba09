// Builds the N-API addon (OpenBLAS sgemm + fused C kernels) with node-gyp.
// A failed build must not fail `npm install`: the pure-TS backend still works, and the
// CLI says once that it is running without the native backend. The native tests do fail
// without the addon (unless SEARCH_R3_ALLOW_NO_NATIVE=1), so CI notices.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'binding.gyp'))) process.exit(0);

/** node-gyp's entry script: npm's own copy first (npm ships one and names it during install scripts). */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    // npm installed beside node: <prefix>/bin/node → <prefix>/lib/node_modules/npm/node_modules/node-gyp
    resolve(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not a dependency */
  }
  return candidates.find((p) => p && existsSync(p));
}

const gyp = findNodeGyp();
if (!gyp) {
  console.warn(
    'search-r3: node-gyp not found (it ships with npm); the native backend was not built, ' +
      'the pure-TypeScript backend will be used.',
  );
  process.exit(0);
}
const args = [gyp, 'rebuild'];
// Use the headers installed with node when present, so building needs no download.
const prefix = resolve(dirname(process.execPath), '..');
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.warn(
    'search-r3: the native backend did not build (is libopenblas-dev installed?); ' +
      'the pure-TypeScript backend will be used.',
  );
}
process.exit(0);
