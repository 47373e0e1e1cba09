// Builds the N-API addon (OpenBLAS sgemm + fused C kernels) with node-gyp.
// A failed build must not fail `npm install`: the pure-TS backend still works, and the
// CLI says once that it is running without the native backend. The native tests do fail
// without the addon (unless SEARCH_R3_ALLOW_NO_NATIVE=1), so CI notices.
// node-gyp's output goes to native-build.log, not the terminal: a machine without a toolchain
// would otherwise print a page of `gyp ERR!` for what is one line of news (what is missing).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
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
const logFile = openLog([join(root, 'native-build.log'), join(tmpdir(), `search-r3-native-build-${process.pid}.log`)]);
const r = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: ['ignore', logFile?.fd ?? 'ignore', logFile?.fd ?? 'ignore'],
});
if (logFile) closeSync(logFile.fd);
if (r.status !== 0) {
  const text = logFile ? readFileSync(logFile.path, 'utf8') : '';
  console.warn(
    `search-r3: the native backend was not built (${failureReason(text)}; ` +
      `node-gyp's log: ${logFile?.path ?? 'none, nowhere to write it'}); ` +
      'the pure-TypeScript backend will be used. ' +
      'To build it: install python3, make, a C compiler and libopenblas-dev, then run npm rebuild search-r3.',
  );
}
process.exit(0);

/**
 * The first of `paths` that can be written (a package folder may be read-only: the install must still not fail),
 * opened for node-gyp's output; null when none can.
 */
function openLog(paths) {
  for (const path of paths) {
    try {
      return { path, fd: openSync(path, 'w') };
    } catch {
      /* the next place */
    }
  }
  return null;
}

/** What the build lacked, from node-gyp's log: the usual missing pieces by name, else the first error line. */
function failureReason(text) {
  const known = [
    [/cblas\.h|cannot find -lopenblas/i, 'OpenBLAS not found (libopenblas-dev)'],
    [/Could not find any Python/i, 'no Python found, which node-gyp needs'],
    [/not found: make|make: not found|spawn make ENOENT/i, 'no make found'],
    [/\b(cc|gcc): (command )?not found|make: (cc|gcc): No such file/i, 'no C compiler found'],
  ];
  for (const [pattern, reason] of known) if (pattern.test(text)) return reason;
  const line = text.split('\n').find((l) => /error/i.test(l) && !/^gyp info/.test(l));
  return line ? line.replace(/\s+/g, ' ').trim().slice(0, 200) : `node-gyp exited with ${r.status ?? r.signal}`;
}
