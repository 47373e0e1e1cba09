/**
 * Output paths checked when a command starts, not when it writes at the end of its work: a missing folder or
 * a folder where a file goes would otherwise surface as a file-system error after minutes of computing.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from './command.js';

/** A file to write: its folder must exist, and it must not be a folder itself. */
export function checkOutputFile(file: string, option: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) {
    throw new UserError(`${option} ${file} is a folder; name the file to write.`);
  }
  const dir = path.dirname(path.resolve(file));
  if (!existsSync(dir)) throw new UserError(`${option} ${file}: the folder ${dir} does not exist; create it first.`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${option} ${file}: ${dir} is a file, not a folder.`);
}

/** A folder to write into (made when missing): it must not be a file. */
export function checkOutputFolder(dir: string, option: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new UserError(`${option} ${dir} is a file; name a folder to write into.`);
  }
}
