/**
 * A model's identity for an index: vectors from different weights, tokenizers or configs must never be
 * mixed. Small files are hashed whole; a large weight file by its size and its first and last 16 MiB
 * (a full hash of a multi-GB checkpoint on every `search` would cost seconds for no practical gain:
 * a retrained checkpoint differs in its header offsets or in the tensors at both ends).
 *
 * A LoRA adapter folder stands for its base with the adapter merged. Its identity is its base's fingerprint
 * and its own files (the adapter's weights, r, alpha and targets, its tokenizer), not the merged weights':
 * those exist only in memory, and naming a model must not cost merging it (`search` names its model before
 * anything else, recipes name folders they never load). So a folder written by `export merged` is another
 * model to an index, though its vectors are the adapter folder's.
 */
import { type Hash, createHash } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { ModelFileError } from './model-file-error.js';
import { PEFT_CONFIG_FILE, isAdapterFolder, readPeftLoraConfig } from './peft-config.js';

const WHOLE_LIMIT = 64 * 1024 * 1024;
const EDGE = 16 * 1024 * 1024;
const IDENTITY_FILES = new RegExp(
  '^(config\\.json|tokenizer\\.json|tokenizer_config\\.json|chat_template\\.jinja|special_tokens_map\\.json|' +
    'added_tokens\\.json|' +
    '.*\\.safetensors(\\.index\\.json)?)$',
);

export async function modelFingerprint(dir: string): Promise<string> {
  return fingerprintOf(dir, []);
}

/** `adapters`: the real paths of the adapter folders whose base `dir` is, to refuse adapters based on each other. */
async function fingerprintOf(dir: string, adapters: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  if (isAdapterFolder(dir)) {
    const base = await resolveAdapterBase(dir, undefined, adapters);
    const peft = await readPeftLoraConfig(dir);
    // the settings, not adapter_config.json itself: its base path changes when the folders move, the model does not
    // rsLoRA only where it is on, so that other adapters keep the fingerprints they had before it loaded
    const settings = [peft.rank, peft.alpha, peft.targets, ...(peft.rslora ? ['rslora'] : [])];
    h.update(`base\0${base.fingerprint}\0lora\0${JSON.stringify(settings)}\0`);
  }
  const names = (await fsp.readdir(dir)).filter((n) => IDENTITY_FILES.test(n)).sort();
  for (const name of names) await hashFile(h, path.join(dir, name), name);
  return `sha256:${h.digest('hex').slice(0, 32)}`;
}

/**
 * Beside a LoRA adapter trained here: the fingerprint of the base it was trained on, so that a base folder
 * whose files changed since is refused rather than merged onto. Its own file, as PEFT's adapter_config.json
 * has no field for it and PEFT before 0.13 refuses a config with keys it does not know.
 */
export const ADAPTER_BASE_FILE = 'search-r3-base.json';
const ADAPTER_BASE_SCHEMA = 'search-r3/adapter-base@1';

/** Records `fingerprint` as the base of the adapter in `dir` (written atomically). */
export async function recordAdapterBase(dir: string, fingerprint: string): Promise<void> {
  const text = JSON.stringify({ schema: ADAPTER_BASE_SCHEMA, fingerprint }, null, 2) + '\n';
  await writeTextFileAtomically(path.join(dir, ADAPTER_BASE_FILE), text);
}

/** The base fingerprint recorded beside the adapter in `dir`, or null when none is (a PEFT adapter, an older run). */
function recordedBase(dir: string): string | null {
  const file = path.join(dir, ADAPTER_BASE_FILE);
  if (!existsSync(file)) return null;
  const damaged = (why: string): ModelFileError =>
    new ModelFileError(
      file,
      `${why}; it records the fingerprint of the adapter's base model: delete it to load the adapter unchecked.`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw damaged('is damaged (not valid JSON)');
  }
  const r = parsed as { schema?: unknown; fingerprint?: unknown } | null;
  if (typeof r !== 'object' || r === null || r.schema !== ADAPTER_BASE_SCHEMA || typeof r.fingerprint !== 'string')
    throw damaged(`is not a search-r3 adapter base file (schema '${ADAPTER_BASE_SCHEMA}' and a fingerprint)`);
  return r.fingerprint;
}

export interface AdapterBase {
  /** The base model folder. */
  dir: string;
  fingerprint: string;
}

/**
 * The base model folder of the LoRA adapter in `adapterDir`: `given`, else the folder its adapter_config.json
 * names (base_model_name_or_path), checked against the fingerprint recorded beside it. Training writes that path
 * absolute: PEFT reads it as a path from its working directory, so only an absolute one names the same folder to
 * PEFT and to us, and a run folder moved on its own still finds its base. A relative one written by hand is taken
 * from the adapter folder, so that it does not depend on where a command runs.
 */
export function adapterBase(adapterDir: string, given?: string): Promise<AdapterBase> {
  return resolveAdapterBase(adapterDir, given, []);
}

async function resolveAdapterBase(
  adapterDir: string,
  given: string | undefined,
  adapters: readonly string[],
): Promise<AdapterBase> {
  const peft = await readPeftLoraConfig(adapterDir);
  const field = `"base_model_name_or_path" in ${PEFT_CONFIG_FILE}`;
  if (given === undefined && peft.baseModel === '')
    throw new ModelFileError(
      peft.file,
      'names no base model ("base_model_name_or_path" is empty), so this LoRA adapter cannot be loaded; set the ' +
        'field to the path of the model folder it was trained on (the "model" of its training config).',
    );
  const dir = given ?? path.resolve(adapterDir, peft.baseModel);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    if (given !== undefined)
      throw new ModelFileError(dir, 'no such folder; give the base model folder of the adapter.');
    throw new ModelFileError(
      peft.file,
      `the base model "${peft.baseModel}" that "base_model_name_or_path" names is not a folder here (moved or ` +
        'deleted?); set the field to the path of that model folder where it is now.',
    );
  }
  const chain = [...adapters, realpathSync(adapterDir)];
  if (chain.includes(realpathSync(dir)))
    throw new ModelFileError(
      peft.file,
      `${field} leads back to ${dir}: LoRA adapters name each other as their base; name a whole model folder.`,
    );
  const fingerprint = await fingerprintOf(dir, chain);
  const recorded = recordedBase(adapterDir);
  if (recorded !== null && recorded !== fingerprint) {
    const fix = given !== undefined ? 'give the base it was trained on' : `point ${field} at that base`;
    throw new ModelFileError(
      dir,
      `is not the base model the LoRA adapter ${adapterDir} was trained on (its ${ADAPTER_BASE_FILE} records ` +
        `${recorded}, this folder is ${fingerprint}): ${fix}, or delete ${ADAPTER_BASE_FILE} to merge onto this ` +
        'one anyway.',
    );
  }
  return { dir, fingerprint };
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
