/**
 * Output paths checked when a command starts, not when it writes at the end of its work: a missing folder or
 * a folder where a file goes would otherwise surface as a file-system error after minutes of computing.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from './command.js';

/**
 * A file to write: it must not be a folder itself, and its folder must exist, or, with `makesFolder` (the
 * command creates it), the nearest folder above it that exists must be a folder, not a file.
 */
export function checkOutputFile(file: string, option: string, o: { makesFolder?: boolean } = {}): void {
  if (existsSync(file) && statSync(file).isDirectory()) {
    throw new UserError(`${option} ${file} is a folder; name the file to write.`);
  }
  const dir = path.dirname(path.resolve(file));
  if (o.makesFolder) return checkAbove(file, dir, option);
  if (!existsSync(dir)) throw new UserError(`${option} ${file}: the folder ${dir} does not exist; create it first.`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${option} ${file}: ${dir} is a file, not a folder.`);
}

/** A folder to write into (made when missing, with the folders above it): it and what is above it are no file. */
export function checkOutputFolder(dir: string, option: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new UserError(`${option} ${dir} is a file; name a folder to write into.`);
  }
  checkAbove(dir, path.dirname(path.resolve(dir)), option);
}

/** The nearest of `dir` and the folders above it that exists must be a folder: a file there stops mkdir. */
function checkAbove(given: string, dir: string, option: string): void {
  let d = dir;
  while (!existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  if (existsSync(d) && !statSync(d).isDirectory())
    throw new UserError(`${option} ${given}: ${d} is a file, not a folder.`);
}
