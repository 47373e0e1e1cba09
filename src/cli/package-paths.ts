/**
 * Where this package's own files are, found from the compiled module (dist/src/cli → three levels up), so the
 * same paths hold in a checkout and in an installed package.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const packageRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The default model folder the recipe (`npm run train:default`) writes and `search-r3 demo` uses. */
export const DEFAULT_MODEL_DIR: string = path.join(packageRoot, 'models', 'search-r3-default');

/** The shipped SciFact test data (BEIR layout, compressed corpus) the demo indexes and evaluates on. */
export const DEMO_DATA_DIR: string = path.join(packageRoot, 'demo', 'scifact');
