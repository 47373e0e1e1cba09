/**
 * Writing a file so that a reader never sees it half written and a crash leaves the old one intact:
 * write a temporary file beside it, then rename it into place. The one implementation every layer uses.
 *
 * A path that is a symbolic link is written through: the temporary file goes beside the link's target and
 * is renamed over the target, so the link stays and whatever else reads the target sees the new file (as
 * editors and sed --follow-symlinks do). Renamed over the link itself, it would become a plain file and
 * leave its target stale.
 */
import {
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  promises as fsp,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { isWithin } from './path-relation.js';
import { processRuns } from './process-runs.js';
import { makeFolder } from './make-folder.js';

/** The most links followed in a row, as Linux's path resolution (ELOOP beyond). */
const MAX_LINKS = 40;

/**
 * The path a write of `file` replaces: `file` itself, or, when it is a symbolic link, what the link names
 * (through a chain of links, and also when the last one names nothing yet: that file is created). Resolved, so
 * that `out/.` or `out/` is the folder `out` in the folder above it, where its temporaries and a folder a killed
 * write set aside lie: as given, `out/.` would be renamed onto itself.
 */
function writeTarget(file: string): string {
  let target = path.resolve(file);
  for (let hops = 0; hops < MAX_LINKS; hops++) {
    let link: string;
    try {
      link = readlinkSync(target);
    } catch {
      return target; // not a link (EINVAL), or nothing there: written as named, and a failure says why
    }
    // relative to the link's real folder: `..` in it leaves that folder, not the path the link was named by
    target = path.resolve(realpathSync(path.dirname(target)), link);
  }
  throw Object.assign(new Error(`ELOOP: too many symbolic links, ${file}`), { code: 'ELOOP', path: file });
}

/**
 * A temporary name beside `file`, so that the final rename stays on one file system (atomic). Temporaries
 * that a killed process left for the same file (Ctrl-C in the middle of writing gigabytes) go first.
 */
export function tempPathFor(file: string): string {
  const dir = path.dirname(file);
  const base = path.basename(file);
  removeOrphans(dir, base);
  return path.join(
    dir,
    `.${base}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`,
  );
}

/** A temporary of `base` that a process no longer running left in a folder's `names`. */
interface Orphan {
  name: string;
  /** When it was made: base 36 milliseconds, then random digits. */
  stamp: string;
  /** `.tmp.old`: a folder writeDirAtomically set aside, complete, until the new one took its name. */
  setAside: boolean;
}

/** The temporaries (`.<base>.<pid>.<stamp>.tmp`, and `.tmp.old`) among `names` whose process no longer runs. */
function orphansOf(names: readonly string[], base: string): Orphan[] {
  const prefix = `.${base}.`;
  return names.flatMap((name) => {
    const m = name.startsWith(prefix) ? /^(\d+)\.([0-9a-z]+)\.tmp(\.old)?$/.exec(name.slice(prefix.length)) : null;
    return m && !processRuns(Number(m[1])) ? [{ name, stamp: m[2], setAside: m[3] !== undefined }] : [];
  });
}

/**
 * When `dir/base` is missing and a killed write set a folder aside for it, that folder is the only copy
 * (the write died between its two renames): it gets its name back, said in one line on stderr. The latest
 * set aside wins. A rename that fails leaves it where it is, for a later try.
 */
function restoreSetAside(dir: string, base: string, names: readonly string[]): void {
  const target = path.join(dir, base);
  if (existsSync(target)) return;
  const setAside = orphansOf(names, base)
    .filter((o) => o.setAside)
    .sort((a, b) => (a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0));
  for (const { name } of setAside) {
    try {
      renameSync(path.join(dir, name), target);
    } catch {
      continue;
    }
    process.stderr.write(`${target}: restored from ${name}, where a write killed before it finished had left it.\n`);
    return;
  }
}

/**
 * Clears what killed writes of `dir/base` left: a folder set aside whose target is missing is restored
 * (restoreSetAside); every other temporary of a dead process goes, set aside ones only once the target is there.
 */
function removeOrphans(dir: string, base: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // no folder yet: nothing was left in it
  }
  restoreSetAside(dir, base, names);
  const targetThere = existsSync(path.join(dir, base));
  for (const o of orphansOf(readdirSync(dir), base)) {
    if (!o.setAside || targetThere) rmSync(path.join(dir, o.name), { recursive: true, force: true });
  }
}

/**
 * Gives `file` back the folder a write killed between its two renames set aside (see writeDirAtomically),
 * when `file` is missing: for readers, so that such a folder is read rather than reported missing.
 */
export function recoverSetAside(file: string): void {
  try {
    const target = writeTarget(file);
    if (existsSync(target)) return;
    restoreSetAside(path.dirname(target), path.basename(target), readdirSync(path.dirname(target)));
  } catch {
    return; // no folder above it, or a loop of links: the reader says what is wrong with the path
  }
}

/**
 * Writes `file` through `write(tempPath)` and renames it into place, so a reader never sees a half
 * written file and a crash leaves the old one intact. The temporary file is removed on failure.
 */
export async function writeFileAtomically(file: string, write: (tempPath: string) => Promise<void>): Promise<void> {
  const target = writeTarget(file);
  const tmp = tempPathFor(target);
  try {
    await write(tmp);
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw namingFile(err, file, tmp, target);
  }
}

/**
 * A failure of a write names the path the caller gave: a write through a file handle fails without a path
 * (a full disk: ENOSPC), and one on the temporary, the old folder set aside or a link's target would name a
 * file the user never named. A path inside a temporary folder becomes the same path inside `file`.
 */
export function namingFile(err: unknown, file: string, tmp: string, target: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string') return err;
  const named = (p: string): string =>
    p === target || p === `${tmp}.old` ? file : isWithin(p, tmp) ? file + p.slice(tmp.length) : p;
  e.path = e.path === undefined ? file : named(e.path);
  e.message = e.message.replace(/'([^']*)'/g, (_, p: string) => `'${named(p)}'`);
  return err;
}

/**
 * Linux's O_TMPFILE: a file made in a folder without a name, gone once closed. Its number is not among Node's
 * constants; __O_TMPFILE is 0o20000000 on the architectures Node runs on, with the platform's O_DIRECTORY.
 */
const O_TMPFILE = process.platform === 'linux' ? 0o20000000 | constants.O_DIRECTORY : undefined;

/** The longest file name, in bytes, that Linux's file systems take. */
const NAME_MAX = 255;

/**
 * Creates a file in `dir` and lets it go: an unnamed one (O_TMPFILE) where the system has them, so that a
 * process killed meanwhile leaves nothing in the folder (a model folder probed before it is replaced would
 * hold a stray file); else `named`, removed at once. The named probe also runs where the unnamed one fails for
 * any reason (a kernel, file system or sandbox without it), so that its error, not O_TMPFILE's, is the answer,
 * and where `named` is too long a name, which an unnamed file would not find out.
 */
function probeFolder(dir: string, named: string): void {
  if (O_TMPFILE !== undefined && Buffer.byteLength(path.basename(named)) <= NAME_MAX) {
    try {
      closeSync(openSync(dir, O_TMPFILE | constants.O_WRONLY, 0o600));
      return;
    } catch {
      // the named probe below answers
    }
  }
  closeSync(openSync(named, 'wx'));
  rmSync(named, { force: true });
}

/**
 * Creates and lets go of a file where a write of `file` makes its temporary file, so that a folder this process
 * may not write in (permission, a read-only mount) is found before the work whose result goes there rather
 * than after it. A folder not made yet is tried at the nearest folder above it, where it would be made.
 * Throws the file-system error, its path the folder tried.
 */
export function probeWrite(file: string): void {
  const target = writeTarget(file);
  let dir = path.dirname(path.resolve(target));
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  try {
    probeFolder(dir, path.join(dir, path.basename(tempPathFor(target))));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code === 'string') e.path = dir;
    throw err;
  }
}

/** Bytes added to a file whose native write failed, to learn whether the file system can take more. */
const DISK_PROBE_BYTES = 1 << 16;

/**
 * Runs `write`, a native library's write of `file` (usearch's save), which reports a failed write without the
 * system's error code ("Failed to serialize into stream"): on a full disk the user would get a stack trace, not
 * what to do. After such a failure the file system is asked itself: a little more written to `file` fails
 * with its code (ENOSPC, EDQUOT, EFBIG) when it is the cause, and that error is thrown instead, with `file`'s
 * path. `file` is a temporary whose caller removes it on failure, so the bytes added are never read.
 */
export function nativeWriteSync(file: string, write: () => void): void {
  try {
    write();
  } catch (err) {
    if (typeof (err as NodeJS.ErrnoException)?.code === 'string') throw err;
    throw fileSystemRefusal(file) ?? err;
  }
}

/** The error a write of a few more bytes to `file` gets (with a code), or null when it succeeds. */
function fileSystemRefusal(file: string): NodeJS.ErrnoException | null {
  try {
    appendFileSync(file, new Uint8Array(DISK_PROBE_BYTES));
    return null;
  } catch (e) {
    return typeof (e as NodeJS.ErrnoException)?.code === 'string' ? (e as NodeJS.ErrnoException) : null;
  }
}

/** Writes a whole text file atomically. */
export async function writeTextFileAtomically(file: string, text: string): Promise<void> {
  await writeFileAtomically(file, (tmp) => fsp.writeFile(tmp, text, 'utf8'));
}

/**
 * The synchronous twin of writeFileAtomically, for files written between synchronous steps: `content`
 * is the whole file, or a function that writes the temporary file itself (streaming a large one).
 */
export function writeFileAtomicallySync(
  file: string,
  content: string | Uint8Array | ((tempPath: string) => void),
): void {
  const target = writeTarget(file);
  const tmp = tempPathFor(target);
  try {
    if (typeof content === 'function') content(tmp);
    else writeFileSync(tmp, content);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw namingFile(err, file, tmp, target);
  }
}

/** Puts the folder set aside back when the new one could not take its name; a failure leaves it aside. */
function restoreOld(old: string, target: string): void {
  try {
    renameSync(old, target);
  } catch {
    // the next write or reader of the target restores it (restoreSetAside)
  }
}

/**
 * Writes a folder atomically: `write` fills a temporary sibling (named as tempPathFor names files), which
 * is then renamed to `dir`. An older folder of that name is moved aside first and removed after, so `dir` is
 * never half of one folder; it is given back its old folder when the new one cannot be renamed into place.
 * Only a crash between the two renames leaves the old one aside, as `<tmp>.old`, with `dir` missing: the next
 * write of `dir`, or a reader calling recoverSetAside, renames it back.
 */
export async function writeDirAtomically(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const target = writeTarget(dir);
  const tmp = tempPathFor(target);
  try {
    await makeFolder(path.dirname(target));
    await fsp.mkdir(tmp);
    try {
      await write(tmp);
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw e;
    }
    const old = existsSync(target) ? `${tmp}.old` : null;
    // back to back, synchronous: a process killed between the two renames leaves `dir` missing and the
    // old folder aside, which the next reader or writer of `dir` restores (restoreSetAside)
    if (old) renameSync(target, old);
    try {
      renameSync(tmp, target);
    } catch (e) {
      // the new folder cannot take the name: the old one gets it back, and the new one goes
      if (old) restoreOld(old, target);
      await fsp.rm(tmp, { recursive: true, force: true });
      throw e;
    }
    if (old) await fsp.rm(old, { recursive: true, force: true });
  } catch (err) {
    throw namingFile(err, dir, tmp, target);
  }
}

/**
 * Writes the text `lines` give (each with its own line break) atomically, in pieces of about 1 MiB: the file is
 * never one string, which past V8's string limit (about 512 MiB) could not be made at all.
 */
export function writeLinesAtomicallySync(file: string, lines: Iterable<string>): void {
  writeFileAtomicallySync(file, (tmp) => {
    const fd = openSync(tmp, 'w');
    try {
      // writeFileSync on a descriptor writes until every byte is out; one writeSync may write fewer (a full disk
      // or a file size limit mid-piece) and say so only in its count, and the cut file would take the name.
      let buf = '';
      for (const line of lines) {
        buf += line;
        if (buf.length > 1 << 20) {
          writeFileSync(fd, buf);
          buf = '';
        }
      }
      writeFileSync(fd, buf);
    } finally {
      closeSync(fd);
    }
  });
}
