import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../search-index/fixtures.js';

/** The quickstart, `npx search-r3 demo`, from the package npm would publish rather than from this checkout. */
test('the npm package holds what the demo runs on: the default model, its demo vectors and the SciFact data', () => {
  const { dir, cleanup } = tempDir('package');
  try {
    const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    const [{ filename, files }] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
    const paths = new Set(files.map((f) => f.path));
    for (const f of [
      'dist/src/cli/main.js',
      'models/search-r3-default/config.json',
      'models/search-r3-default/model.safetensors',
      'models/search-r3-default/tokenizer.json',
      'models/search-r3-default/demo-index/vectors.safetensors',
      // the weights its hybrid search fuses with: without them, plain RRF halves BM25's nDCG@10
      'models/search-r3-default/search-r3.json',
      'demo/scifact/corpus.jsonl.gz',
      'demo/scifact/qrels/test.tsv',
    ])
      assert.ok(paths.has(f), `${f} is not in the package`);
    assert.ok(![...paths].some((p) => p.startsWith('dist/test/') || p.startsWith('test/')), 'tests are packed');

    const unpacked = path.join(dir, 'unpacked');
    mkdirSync(unpacked);
    const tar = spawnSync('tar', ['-xzf', path.join(dir, filename), '-C', unpacked, '--strip-components', '1']);
    assert.equal(tar.status, 0, String(tar.stderr));
    // the dependencies an install would bring; the native addon an install builds stays out (TS kernels)
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(unpacked, 'node_modules'));
    const demo = spawnSync(
      process.execPath,
      [path.join(unpacked, 'dist/src/cli/main.js'), 'demo', '--no-table', '--json', '--quiet', '-k', '3'],
      { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: path.join(dir, 'cache'), SEARCH_R3_THREADS: '1' } },
    );
    assert.equal(demo.status, 0, demo.stderr);
    const r = JSON.parse(demo.stdout) as {
      model: { dir: string };
      index: { action: string; documents: number; encoded: number; seeded: number };
      examples: { hits: unknown[] }[];
    };
    assert.equal(r.model.dir, path.join(unpacked, 'models/search-r3-default'));
    assert.deepEqual(r.index, { ...r.index, action: 'built', documents: 5183, encoded: 0, seeded: 5183 });
    assert.deepEqual(
      r.examples.map((e) => e.hits.length),
      [3, 3, 3],
    );
  } finally {
    cleanup();
  }
});

/**
 * `npm run build` deletes dist/ and tsc writes the CLI without the executable bit, which npx's existing bin
 * link needs: the build marks it executable after tsc (checked on a stand-in package, as a full build here
 * would take dist/ away from the tests that run beside this one).
 */
test('the build marks the bin executable after tsc, so the bin link npx made still runs after a rebuild', (t) => {
  if (process.platform === 'win32') return t.skip('no executable bit on Windows');
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
    scripts: { build: string };
  };
  const steps = pkg.scripts.build.split('&&').map((s) => s.trim());
  const tsc = steps.findIndex((s) => s.startsWith('tsc '));
  const mark = steps.indexOf('node scripts/bin-executable.mjs');
  assert.ok(
    tsc >= 0 && mark > tsc,
    `the build script does not mark the bin executable after tsc: ${pkg.scripts.build}`,
  );

  const { dir, cleanup } = tempDir('bin');
  try {
    const bin = path.join(dir, pkg.bin['search-r3']);
    mkdirSync(path.dirname(bin), { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ bin: pkg.bin }));
    // as tsc leaves it
    writeFileSync(bin, "#!/usr/bin/env node\nconsole.log('ran');\n", { mode: 0o644 });
    const marked = spawnSync(process.execPath, [path.join(repoRoot, 'scripts/bin-executable.mjs'), dir], {
      encoding: 'utf8',
    });
    assert.equal(marked.status, 0, marked.stderr);
    const ran = spawnSync(bin, [], { encoding: 'utf8' });
    assert.equal(ran.error, undefined);
    assert.equal(ran.stdout, 'ran\n');
  } finally {
    cleanup();
  }
});

/** The imports docs/gpu.md and docs/serve.md write, resolved as an installed package's user resolves them. */
test('the documented imports resolve from an installed search-r3: the entry and the tensor layer', (t) => {
  const gpu = readFileSync(path.join(repoRoot, 'docs/gpu.md'), 'utf8');
  const deep = /import \* as T from '(search-r3\/[^']+)'/.exec(gpu);
  assert.ok(deep, 'docs/gpu.md names no import of the tensor layer as T');
  const used = [...new Set([...gpu.matchAll(/`T\.(\w+)\(/g)].map((m) => m[1]))];
  assert.ok(used.length > 0);
  const { dir, cleanup } = tempDir('imports');
  try {
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(repoRoot, path.join(dir, 'node_modules', 'search-r3'));
    const script =
      `import * as T from '${deep[1]}';\n` +
      "import * as api from 'search-r3';\n" +
      `console.log(JSON.stringify({ T: ${JSON.stringify(used)}.filter((f) => typeof T[f] !== 'function'), ` +
      "api: ['useDevice', 'LanceStore', 'SearchIndex'].filter((f) => typeof api[f] !== 'function') }));\n";
    writeFileSync(path.join(dir, 'check.mjs'), script);
    const r = spawnSync(process.execPath, ['check.mjs'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { T: [], api: [] }, `missing: ${r.stdout}`);
  } finally {
    cleanup();
  }
  t.diagnostic(`T.${used.join(', T.')} from ${deep[1]}`);
});

/** `npm pack`'s file list, without writing the tarball. */
function packedFiles(): Set<string> {
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(pack.status, 0, pack.stderr);
  return new Set((JSON.parse(pack.stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path));
}

test('the package holds what an install and serve read, and no source maps of sources it leaves out', () => {
  const paths = packedFiles();
  const gyp = JSON.parse(readFileSync(path.join(repoRoot, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '')) as {
    targets: { sources: string[] }[];
  };
  const headers = readdirSync(path.join(repoRoot, 'native'))
    .filter((f) => f.endsWith('.h'))
    .map((f) => `native/${f}`);
  const needed = [
    'LICENSE',
    'demo/scifact/LICENSE.txt',
    // the install script and all it compiles
    'scripts/build-native.mjs',
    'binding.gyp',
    ...gyp.targets.flatMap((t) => t.sources),
    ...headers,
    // the pages serve answers with (src/serve/routes/web.ts), and the licence of the uPlot bundled into them
    ...['playground.html', 'playground.js', 'dashboard.html', 'dashboard.js', 'style.css', 'uplot.css'].map(
      (f) => `dist/web/${f}`,
    ),
    'dist/web/uplot.LICENSE.txt',
    'dist/src/index.d.ts',
  ];
  assert.deepEqual(
    needed.filter((f) => !paths.has(f)),
    [],
    'not in the package',
  );
  // tsc's maps point at src/*.ts, which is not packed: in an installed package they map to nothing
  assert.deepEqual(
    [...paths].filter((p) => p.startsWith('dist/src/') && p.endsWith('.map')),
    [],
    'source maps of dist/src are packed',
  );
  assert.ok(!paths.has('native-build.log'), 'the native build log is packed');
});

/**
 * The README's and docs' TypeScript examples, compiled as a consumer's strict project compiles them
 * (module nodenext, skipLibCheck off) against this package's .d.ts, with only what an install of it brings:
 * its dependencies, not its devDependencies (a consumer has @types/node of its own).
 */
test('the documented TypeScript examples compile in a strict nodenext project against the published types', () => {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
    devDependencies: Record<string, string>;
  };
  const devOnly = new Set(Object.keys(pkg.devDependencies).filter((d) => d !== '@types/node'));
  const docs = ['README.md', ...readdirSync(path.join(repoRoot, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
    f.endsWith('.md'),
  );
  const examples = docs.flatMap((doc) =>
    [...readFileSync(path.join(repoRoot, doc), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((m) => m[1])
      .filter((code) => /from 'search-r3/.test(code))
      .map((code, i) => ({ name: `${doc.replace(/[/.]/g, '-')}-${i}.mts`, code })),
  );
  assert.ok(examples.length >= 2, `found ${examples.length} examples importing search-r3 in README.md and docs/`);

  const { dir, cleanup } = tempDir('consumer');
  try {
    const modules = path.join(dir, 'node_modules');
    // the package's manifest and built files, without this checkout's node_modules beneath them
    mkdirSync(path.join(modules, 'search-r3'), { recursive: true });
    for (const f of ['package.json', 'dist']) symlinkSync(path.join(repoRoot, f), path.join(modules, 'search-r3', f));
    const repoModules = path.join(repoRoot, 'node_modules');
    for (const entry of readdirSync(repoModules)) {
      if (entry.startsWith('.')) continue;
      const names = entry.startsWith('@')
        ? readdirSync(path.join(repoModules, entry)).map((n) => `${entry}/${n}`)
        : [entry];
      for (const name of names.filter((n) => !devOnly.has(n))) {
        mkdirSync(path.dirname(path.join(modules, name)), { recursive: true });
        symlinkSync(path.join(repoModules, name), path.join(modules, name));
      }
    }
    for (const { name, code } of examples) writeFileSync(path.join(dir, name), code);
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const compilerOptions = {
      strict: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      skipLibCheck: false,
      noEmit: true,
      types: ['node'],
      // resolve the package's own imports from this project's node_modules, as an install lays them out
      preserveSymlinks: true,
    };
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.mts'] }));
    const tsc = spawnSync(process.execPath, [path.join(repoModules, 'typescript/bin/tsc'), '-p', dir], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  } finally {
    cleanup();
  }
});

/**
 * The install script on a machine without a toolchain (here: no python3, make or compiler on PATH), run on a
 * copy of what it builds so this checkout's build/ stays: the install goes on, with one line saying what was
 * missing and where node-gyp's log is, rather than node-gyp's page of `gyp ERR!`. `prepare` may alter the copy.
 */
function installWithoutToolchain(prepare: (dir: string) => void = () => {}) {
  const { dir, cleanup } = tempDir('no-toolchain');
  for (const f of ['package.json', 'binding.gyp', 'native', 'scripts/build-native.mjs'])
    cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: true });
  prepare(dir);
  const emptyBin = path.join(dir, 'empty-bin');
  mkdirSync(emptyBin);
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(PYTHON|npm_config_python)$/i.test(k)),
  ) as NodeJS.ProcessEnv;
  const r = spawnSync(process.execPath, [path.join(dir, 'scripts/build-native.mjs')], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...env, PATH: emptyBin },
  });
  return { dir, cleanup, r, lines: r.stderr.trimEnd().split('\n') };
}

test('npm install without a C toolchain: the native build falls back in one line naming what is missing', (t) => {
  if (process.platform === 'win32') return t.skip('node-gyp looks for Visual Studio there, not a PATH toolchain');
  const { dir, cleanup, r, lines } = installWithoutToolchain();
  try {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(lines.length, 1, `more than one line:\n${r.stderr}`);
    if (/node-gyp not found/.test(lines[0])) return t.skip('no node-gyp beside this node (npm ships one)');
    const log = path.join(dir, 'native-build.log');
    assert.match(
      lines[0],
      /^search-r3: the native backend was not built \(no Python found, which node-gyp needs; node-gyp's log: /,
    );
    assert.ok(lines[0].includes(log) && lines[0].includes('npm rebuild search-r3'), lines[0]);
    assert.ok(existsSync(log) && readFileSync(log, 'utf8').includes('gyp ERR!'), 'node-gyp wrote no log');
  } finally {
    cleanup();
  }
});

test('npm install where the package folder takes no log: the fallback line names one in the temporary folder', (t) => {
  if (process.platform === 'win32') return t.skip('node-gyp looks for Visual Studio there, not a PATH toolchain');
  // a folder in the log's place makes opening it fail as a read-only package folder would (root writes anyway)
  const { cleanup, r, lines } = installWithoutToolchain((dir) => mkdirSync(path.join(dir, 'native-build.log')));
  try {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(lines.length, 1, `more than one line:\n${r.stderr}`);
    if (/node-gyp not found/.test(lines[0])) return t.skip('no node-gyp beside this node (npm ships one)');
    const log = /node-gyp's log: (\S+)\)/.exec(lines[0])?.[1] ?? '';
    assert.ok(log.startsWith(tmpdir()), lines[0]);
    assert.ok(readFileSync(log, 'utf8').includes('gyp ERR!'), 'node-gyp wrote no log');
    rmSync(log, { force: true });
  } finally {
    cleanup();
  }
});
