/**
 * A SHA-256 manifest of a folder's files, in the format `sha256sum` writes and checks
 * (`<64 hex digits>  <file name>` per line), so a damaged file — even one flipped bit in a tensor —
 * is found before anything is loaded from the folder, and `sha256sum -c checksums.sha256` checks it
 * by hand too.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

export const CHECKSUMS_FILE = 'checksums.sha256';

const LINE = /^([0-9a-f]{64}) {2}([^/\\\n]+)$/;

/** Hex SHA-256 of a file's bytes, read in chunks so a large file is never held whole. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes the manifest of every other file in `dir` (its direct children, sorted by name). */
export async function writeChecksums(dir: string): Promise<void> {
  const names = (await fsp.readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name !== CHECKSUMS_FILE)
    .map((e) => e.name)
    .sort();
  const lines: string[] = [];
  for (const n of names) lines.push(`${await sha256File(path.join(dir, n))}  ${n}\n`);
  await fsp.writeFile(path.join(dir, CHECKSUMS_FILE), lines.join(''));
}

/** A file of a folder that its manifest shows to be damaged, with why, in words. */
export interface ChecksumProblem {
  file: string;
  why: string;
}

/**
 * Checks `dir` against its manifest: null when every file it lists is there and matches; the first
 * problem otherwise. `undefined` when the folder has no manifest at all. Files it does not list are not
 * looked at, as `sha256sum -c` does not: a file manager's `.DS_Store` or `Thumbs.db`, or the log of a
 * `sha256sum -c` run written into the folder, damages nothing that is read from it.
 */
export async function verifyChecksums(dir: string): Promise<ChecksumProblem | null | undefined> {
  const manifest = path.join(dir, CHECKSUMS_FILE);
  if (!existsSync(manifest)) return undefined;
  const damaged = (why: string): ChecksumProblem => ({ file: manifest, why });
  const listed = await readManifest(manifest);
  if (typeof listed === 'number') return damaged(`line ${listed} is not "<sha-256>  <file>"`);
  if (listed.size === 0) return damaged('lists no files');
  for (const [name, want] of listed) {
    const file = path.join(dir, name);
    if (!existsSync(file)) return { file, why: `is missing (${CHECKSUMS_FILE} lists it)` };
    if ((await sha256File(file)) !== want) return { file, why: `does not match its SHA-256 in ${CHECKSUMS_FILE}` };
  }
  return null;
}

/**
 * The files of `dir` its manifest does not list (sorted; none without a manifest, or with a damaged one):
 * verifyChecksums leaves them unread, and whoever reads the folder may say so.
 */
export async function unlistedFiles(dir: string): Promise<string[]> {
  const manifest = path.join(dir, CHECKSUMS_FILE);
  if (!existsSync(manifest)) return [];
  const listed = await readManifest(manifest);
  if (typeof listed === 'number') return [];
  return (await fsp.readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name !== CHECKSUMS_FILE && !listed.has(e.name))
    .map((e) => e.name)
    .sort();
}

/** A manifest's SHA-256 by file name, or the number of its first line that is not "<sha-256>  <file>". */
async function readManifest(manifest: string): Promise<Map<string, string> | number> {
  const listed = new Map<string, string>();
  const lines = (await fsp.readFile(manifest, 'latin1')).split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    const m = LINE.exec(line);
    if (!m) return i + 1;
    listed.set(m[2]!, m[1]!);
  }
  return listed;
}
