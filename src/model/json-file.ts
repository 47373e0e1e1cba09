/**
 * Reading a model folder: its JSON files, read with every failure said as a ModelFileError naming the file, and
 * whether it holds a file. Both first give the folder back when a write killed halfway left it aside
 * (recoverSetAside), so that its only copy is read rather than reported missing or as no model.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { recoverSetAside } from '../io/atomic-file.js';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';
import { ModelFileError } from './model-file-error.js';

/** `missing` says what the folder needs, for a file that is not there. */
export async function readModelJson(file: string, missing: string): Promise<unknown> {
  const dir = path.dirname(file);
  recoverSetAside(dir);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !existsSync(dir)) {
      throw new ModelFileError(dir, `no such folder; give the folder that holds ${path.basename(file)}.`);
    }
    if (code === 'ENOENT') throw new ModelFileError(file, `is missing; ${missing}.`);
    throw new ModelFileError(file, `cannot be read (${code ?? (err as Error).message}).`);
  }
  try {
    // an editor's UTF-8 byte-order mark (Notepad's "UTF-8 with BOM") is no part of the JSON
    return JSON.parse(withoutByteOrderMark(text)) as unknown;
  } catch (err) {
    throw new ModelFileError(file, `is not valid JSON (${(err as Error).message}).`);
  }
}

/** Whether something is at `dir`, the path of a model folder (one a killed write left aside gets its name back). */
export function modelFolderExists(dir: string): boolean {
  recoverSetAside(dir);
  return existsSync(dir);
}

/** Whether model folder `dir` holds `name` (a folder left aside by a killed write is given its name back first). */
export function modelFolderHolds(dir: string, name: string): boolean {
  recoverSetAside(dir);
  return existsSync(path.join(dir, name));
}
