/**
 * Listing the files of a folder the user gave (documents to index, text to train a tokenizer on).
 */
import { promises as fsp, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { isWithin } from './path-relation.js';

/**
 * The files under `root` whose names `accept` takes, recursively, in name order. Hidden entries (a
 * leading dot) are left out. Symbolic links are followed only to files inside root: a link to a folder
 * is not walked (what it holds is listed under its own path, if inside root), so a link loop cannot trap
 * the walk, and a link cannot reach outside the folder given (`onSkip` hears of those). A dangling link
 * is left out.
 */
export async function listFilesUnder(
  root: string,
  accept: (name: string) => boolean,
  onSkip?: (file: string, why: 'outside the folder') => void,
): Promise<string[]> {
  const out: string[] = [];
  const realRoot = realpathSync(root);
  const walk = async (dir: string): Promise<void> => {
    for (const e of (await fsp.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        await walk(full);
        continue;
      }
      if (!accept(e.name)) continue;
      if (e.isSymbolicLink()) {
        let target: string;
        try {
          target = realpathSync(full);
        } catch {
          continue;
        }
        if (!isWithin(target, realRoot)) {
          onSkip?.(full, 'outside the folder');
          continue;
        }
        if (!statSync(target).isFile()) continue;
      } else if (!e.isFile()) continue;
      out.push(full);
    }
  };
  await walk(root);
  return out;
}
