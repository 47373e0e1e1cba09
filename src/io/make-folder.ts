/**
 * Creating a folder and the missing folders above it, one level at a time. Node's own recursive mkdir cannot
 * be used for a place the user names: on a read-only mount it reports ENOENT instead of EROFS, and where a
 * folder exists but takes no new entries (/proc) it retries forever. Here the error is the one the kernel
 * gave for the first folder that could not be made, with that folder as its path.
 */
import { existsSync, mkdirSync, promises as fsp, readdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * `dir` and the folders above it that do not exist yet, outermost first, written as `dir` is (relative or not).
 * A file in the way stays out, so that creating below it fails as the kernel says (ENOTDIR); a file at `dir`
 * itself is tried, and fails (EEXIST).
 */
function missingLevels(dir: string): string[] {
  const levels: string[] = [];
  for (let d = dir; !existsSync(d); d = path.dirname(d)) {
    levels.unshift(d);
    if (path.dirname(d) === d) break;
  }
  return levels.length === 0 && !isFolder(dir) ? [dir] : levels;
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The file where `dir` or a folder above it would be made, or undefined: the nearest of them that exists, when it
 * is no folder. Commands check it when they start, as mkdir there fails (ENOTDIR, EEXIST) only once they write.
 */
export function fileInTheWay(dir: string): string | undefined {
  let d = path.resolve(dir);
  while (!existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return existsSync(d) && !isFolder(d) ? d : undefined;
}

/** What fileInTheWay(dir) finds, in words that follow the folder's name ('lies under /a/b, a file'). */
export function fileInTheWaySaid(dir: string): string | undefined {
  const file = fileInTheWay(dir);
  if (file === undefined) return undefined;
  return file === path.resolve(dir) ? 'is a file' : `lies under ${file}, a file`;
}

/** mkdir of one level; a folder made there meanwhile is no error, anything else there (a file) is. */
function madeOrThere(err: unknown, level: string): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'EEXIST' && isFolder(level);
}

/** Creates `dir` and the folders above it as needed; returns the first folder made (undefined: none), as mkdir -p. */
export async function makeFolder(dir: string): Promise<string | undefined> {
  let first: string | undefined;
  for (const level of missingLevels(dir)) {
    try {
      await fsp.mkdir(level);
      first ??= level;
    } catch (err) {
      if (!madeOrThere(err, level)) throw err;
    }
  }
  return first;
}

/** The synchronous twin of makeFolder. */
export function makeFolderSync(dir: string): string | undefined {
  let first: string | undefined;
  for (const level of missingLevels(dir)) {
    try {
      mkdirSync(level);
      first ??= level;
    } catch (err) {
      if (!madeOrThere(err, level)) throw err;
    }
  }
  return first;
}

/**
 * Removes `dir` and the folders above it up to `made` (what makeFolder returned), each only while it is empty:
 * a command that made them and then wrote nothing leaves no empty folder behind. Never throws: a folder gone
 * already, or written in meanwhile, is not the caller's to remove, and no error here may hide why it failed.
 */
export function removeFoldersMadeSync(dir: string, made: string | undefined): void {
  if (made === undefined) return;
  try {
    for (let d = dir; readdirSync(d).length === 0; d = path.dirname(d)) {
      rmdirSync(d);
      if (d === made) break;
    }
  } catch {
    // gone already, or not empty: left as it is
  }
}
