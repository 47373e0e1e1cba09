/**
 * usearch (the HNSW index), loaded as its CommonJS build. Its ES module build finds its native addon from a
 * global `__dirname` when there is one, and `node -e` sets that global to '.': from a relative path its search
 * upward never reaches the root, so `node -e "require('search-r3')"` would spin forever. The CommonJS build looks
 * from its own folder.
 */
import { createRequire } from 'node:module';

export type Usearch = typeof import('usearch');

export const usearch: Usearch = createRequire(import.meta.url)('usearch');
