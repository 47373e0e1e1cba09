/**
 * The npm packages that loading the given built modules needs: every package imported statically (or required
 * as a module loads), through our own modules' static imports, and those packages' dependencies. A machine that
 * gets only these (the GPU machine a session is lent, which has no registry) runs them; a hand-kept list would
 * drift from the code. Dynamic imports are not followed: they are how the CLI keeps each command's packages to
 * itself (src/cli/commands.ts) and how optional engines load (webgpu, which the GPU pack brings; node-llama-cpp).
 *
 * usage: node dist/scripts/runtime-packages.js <module.js> ...   (one package per line, sorted)
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../test/helpers/repo.js';

const IMPORT = /(?:^|[;\s])(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]|(?:^|[;\s])import\s*['"]([^'"]+)['"]/gm;

/** A package loaded as the module loads, through require (createRequire(import.meta.url)('name')). */
const REQUIRE = /createRequire\(import\.meta\.url\)\(\s*['"]([^'"]+)['"]\s*\)/g;

/** `@scope/name` or `name`, from a specifier that may name a file inside the package. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const isPackage = (s: string): boolean => !s.startsWith('.') && !s.startsWith('/') && !s.startsWith('node:');

export function importedPackages(entries: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const queue = entries.map((e) => path.resolve(e));
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    if (seen.has(f)) continue;
    seen.add(f);
    const src = readFileSync(f, 'utf8');
    for (const m of [...src.matchAll(IMPORT), ...src.matchAll(REQUIRE)]) {
      const spec = m[1] ?? m[2];
      if (isPackage(spec)) packages.add(packageName(spec));
      else if (spec.startsWith('.')) queue.push(path.resolve(path.dirname(f), spec));
    }
  }
  return packages;
}

/** The packages and, transitively, their `dependencies`, as installed in `nodeModules`. */
export function withDependencies(packages: Iterable<string>, nodeModules: string): string[] {
  const all = new Set<string>();
  const queue = [...packages];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    if (all.has(p)) continue;
    const manifest = path.join(nodeModules, p, 'package.json');
    if (!existsSync(manifest)) throw new Error(`${p} is imported but not installed in ${nodeModules}: run npm ci`);
    all.add(p);
    const deps = (JSON.parse(readFileSync(manifest, 'utf8')) as { dependencies?: Record<string, string> }).dependencies;
    queue.push(...Object.keys(deps ?? {}));
  }
  return [...all].sort();
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const entries = process.argv.slice(2);
  if (entries.length === 0) {
    console.error('usage: node dist/scripts/runtime-packages.js <module.js> ...');
    process.exit(2);
  }
  console.log(withDependencies(importedPackages(entries), path.join(repoRoot, 'node_modules')).join('\n'));
}
