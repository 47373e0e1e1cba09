/**
 * Where this package's own files are: the folder of the package.json named search-r3 above the compiled
 * module, so the same paths hold in a checkout, in dist/, and in an installed package.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'search-r3')
      return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json of search-r3 above ${from}`);
  }
}

export const packageRoot: string = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** This package's version, as its package.json gives it. */
export function searchR3Version(): string {
  return (JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The default model folder the recipe (`npm run train:default`) writes and `search-r3 demo` uses. */
export const DEFAULT_MODEL_DIR: string = path.join(packageRoot, 'models', 'search-r3-default');

/** The shipped SciFact test data (BEIR layout, compressed corpus) the demo indexes and evaluates on. */
export const DEMO_DATA_DIR: string = path.join(packageRoot, 'demo', 'scifact');

/** The benchmark datasets beside the package (../shared/data), where the recipe and its evaluation read them. */
export const DEFAULT_DATA_DIR: string = path.resolve(packageRoot, '../shared/data');
