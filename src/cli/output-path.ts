/**
 * Output paths checked when a command starts, not when it writes at the end of its work: a missing folder, a
 * folder where a file goes, or a folder this process may not write in would otherwise surface as a
 * file-system error after minutes of computing.
 */
import { closeSync, existsSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { probeWrite, recoverSetAside } from '../io/atomic-file.js';
import { UserError } from './command.js';
import { fileSystemCause } from '../io/file-system-cause.js';
import { fileInTheWay } from '../io/make-folder.js';
import { isWithin, resolvedPath } from '../io/path-relation.js';

/**
 * A file to write: it must not be a folder itself, and the nearest of its folder and the folders above it that
 * exists must be a folder, not a file. A missing folder is no refusal: every command makes its output file's
 * folders, with makeFolder, when it writes the file (not before: a refused run leaves no empty folder).
 */
export function checkOutputFile(file: string, option: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) {
    throw new UserError(`${option} ${file} is a folder; name the file to write.`);
  }
  // a name ending in a separator means a folder, yet writing it would make a file of that name (out/ as out)
  if (file.endsWith('/') || file.endsWith(path.sep)) {
    throw new UserError(`${option} ${file} ends in '${file.slice(-1)}', which names a folder; name the file to write.`);
  }
  checkAbove(file, path.dirname(path.resolve(file)), option);
  checkWritable(file, file, option, 'file');
}

/**
 * A folder to write into (made when missing, with the folders above it): it and what is above it are no file,
 * and this process may write where the folder is made (or, with `replaced`, written beside it and renamed into
 * its place) and, when it exists, in the folder itself (written into, or emptied once replaced).
 */
export function checkOutputFolder(dir: string, option: string, o: { replaced?: boolean } = {}): void {
  // a folder a killed write of it left aside is its only copy: these checks, and the command's own (a folder
  // that already holds a model), see it back in its place
  recoverSetAside(dir);
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new UserError(`${option} ${dir} is a file; name a folder to write into.`);
  }
  checkAbove(dir, path.dirname(path.resolve(dir)), option);
  if (o.replaced || !existsSync(dir)) checkWritable(dir, dir, option, 'folder');
  if (existsSync(dir)) checkWritable(path.join(dir, 'file'), dir, option, 'folder');
}

/**
 * Refuses an output whose temporary file (`file`: the output, or a file in the output folder) cannot be
 * created, in one sentence naming the option, the path given and the folder that refused it.
 */
function checkWritable(file: string, given: string, option: string, what: 'file' | 'folder'): void {
  try {
    probeWrite(file);
  } catch (err) {
    // the probe is created in a folder that exists
    const known = fileSystemCause(err, { creating: true });
    if (known === null) throw err;
    throw new UserError(
      `${option} ${given}: cannot write in ${(err as NodeJS.ErrnoException).path}: ${known.cause} (${known.code}); ` +
        `${known.remedy}, or name another ${what}.`,
    );
  }
}

/** The nearest of `dir` and the folders above it that exists must be a folder: a file there stops mkdir. */
function checkAbove(given: string, dir: string, option: string): void {
  const file = fileInTheWay(dir);
  if (file !== undefined) throw new UserError(`${option} ${given}: ${file} is a file, not a folder.`);
}

/** A file a command reads, and how a message names it (`what`: '--qrels', "--dataset's corpus"). */
export interface InputFile {
  path: string;
  what: string;
}

/**
 * Refuses to write `out` over one of the command's inputs, however either is named (./a and a, a link to a):
 * the write would replace what the command read, or has still to read. An output that does not exist yet
 * is no input, and an input that does not exist is left to the read that reports it.
 */
export function checkNotAnInput(out: string, option: string, inputs: readonly InputFile[]): void {
  const same = inputs.find((i) => samePath(out, i.path));
  if (same !== undefined)
    throw new UserError(
      `${option} ${out} is the same file as ${same.what} ${same.path}; writing it would destroy that input: ` +
        'name another file.',
    );
}

/**
 * Refuses an output folder inside the folder it is copied from (`input`, given as `inputOption`), which the copy
 * would then hold; the folder itself (a change in place) is the caller's to allow or not.
 */
export function checkNotInside(out: string, option: string, input: string, inputOption: string): void {
  const [o, i] = [resolvedPath(out), resolvedPath(input)];
  if (o === i || !isWithin(o, i)) return;
  throw new UserError(`${option} ${out} is inside ${inputOption} ${input}, which it copies; name a folder outside it.`);
}

/** Whether `a` and `b` name one existing file or folder, as the file system resolves them. */
export function samePath(a: string, b: string): boolean {
  const ra = realPath(a);
  return ra !== undefined && ra === realPath(b);
}

/** The path `p` resolves to through every symbolic link, or undefined when nothing is there. */
function realPath(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The first `n` bytes of a file (fewer when it is shorter): enough to tell what kind of file an output replaces. */
export function fileHead(file: string, n: number): Buffer {
  const head = Buffer.alloc(n);
  const fd = openSync(file, 'r');
  try {
    return head.subarray(0, readSync(fd, head, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * An existing output may only be a file of the kind the command writes, written again: anything else there
 * (a model's weights or config.json, a file named by mistake) would be replaced. `why` reads the file's first
 * 4 KiB and says why it is not `kind` (a clause after it, '' for none), or null when it is.
 */
export function checkReplacesOnly(
  file: string,
  option: string,
  o: { command: string; kind: string; why: (head: Buffer) => string | null },
): void {
  if (!existsSync(file)) return;
  const why = o.why(fileHead(file, 4096));
  if (why === null) return;
  throw new UserError(
    `${option} ${file} exists and is not ${o.kind}${why}; ${o.command} replaces only ${o.kind} it wrote before: ` +
      'name a new file.',
  );
}
