/**
 * A model's identity for an index: vectors from different weights, tokenizers or configs must never be
 * mixed. Small files are hashed whole; a large weight file by its size and its first and last 16 MiB
 * (a full hash of a multi-GB checkpoint on every `search` would cost seconds for no practical gain:
 * a retrained checkpoint differs in its header offsets or in the tensors at both ends).
 */
import { type Hash, createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ModelFileError } from './model-file-error.js';

const WHOLE_LIMIT = 64 * 1024 * 1024;
const EDGE = 16 * 1024 * 1024;
const IDENTITY_FILES = new RegExp(
  '^(config\\.json|tokenizer\\.json|tokenizer_config\\.json|chat_template\\.jinja|special_tokens_map\\.json|' +
    'added_tokens\\.json|' +
    '.*\\.safetensors(\\.index\\.json)?)$',
);

export async function modelFingerprint(dir: string): Promise<string> {
  const names = (await fsp.readdir(dir)).filter((n) => IDENTITY_FILES.test(n)).sort();
  const h = createHash('sha256');
  for (const name of names) await hashFile(h, path.join(dir, name), name);
  return `sha256:${h.digest('hex').slice(0, 32)}`;
}

/** The identity of one model file (a GGUF), hashed as a folder's weight files are. */
export async function fileFingerprint(file: string): Promise<string> {
  const h = createHash('sha256');
  await hashFile(h, file, 'gguf');
  return `gguf-sha256:${h.digest('hex').slice(0, 32)}`;
}

async function hashFile(h: Hash, file: string, label: string): Promise<void> {
  const st = await fsp.stat(file);
  if (!st.isFile())
    throw new ModelFileError(file, 'is not a file; a model folder holds its weights and configs as files.');
  const { size } = st;
  h.update(`${label}\0${size}\0`);
  const fd = await fsp.open(file, 'r');
  try {
    const read = async (pos: number, len: number): Promise<void> => {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fd.read(buf, 0, len, pos);
      h.update(buf.subarray(0, bytesRead));
    };
    if (size <= WHOLE_LIMIT) await read(0, size);
    else {
      await read(0, EDGE);
      await read(size - EDGE, EDGE);
    }
  } finally {
    await fd.close();
  }
}
