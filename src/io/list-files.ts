/**
 * Listing the files of a folder the user gave (documents to index, text to train a tokenizer on).
 */
import { isUtf8 } from 'node:buffer';
import { promises as fsp, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { isWithin } from './path-relation.js';

/** Why listFilesUnder left out a file it would otherwise list. */
export type ListSkipReason = 'outside the folder' | 'with a name not in UTF-8';

/**
 * The files under `root` whose names `accept` takes, recursively, in name order. Hidden entries (a
 * leading dot) are left out. Symbolic links are followed only to files inside root: a link to a folder
 * is not walked (what it holds is listed under its own path, if inside root), so a link loop cannot trap
 * the walk, and a link cannot reach outside the folder given (`onSkip` hears of those). A dangling link
 * is left out. So is an entry whose name is not UTF-8 (a Latin-1 'café.txt'), with `onSkip`: a path is a
 * string here, and its name as one (U+FFFD in place of the byte) opens no file, or another file. `onOther`
 * hears of each file (not a link) whose name `accept` refuses.
 */
export async function listFilesUnder(
  root: string,
  accept: (name: string) => boolean,
  onSkip?: (file: string, why: ListSkipReason) => void,
  onOther?: (file: string) => void,
): Promise<string[]> {
  const out: string[] = [];
  const realRoot = realpathSync(root);
  const walk = async (dir: string): Promise<void> => {
    const entries = (await fsp.readdir(dir, { withFileTypes: true, encoding: 'buffer' })).map((e) => ({
      e,
      name: e.name.toString('utf8'),
      utf8: isUtf8(e.name),
    }));
    for (const { e, name, utf8 } of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (name.startsWith('.')) continue;
      const full = path.join(dir, name);
      if (!utf8) {
        if (e.isDirectory() || accept(name)) onSkip?.(full, 'with a name not in UTF-8');
        continue;
      }
      if (e.isDirectory()) {
        await walk(full);
        continue;
      }
      if (!accept(name)) {
        if (e.isFile()) onOther?.(full);
        continue;
      }
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
