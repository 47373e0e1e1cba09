import { existsSync, promises as fsp, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { EMBED_TOKEN } from '../embed/index.js';
import { writeDirAtomically } from '../io/atomic-file.js';
import { modelFolderExists } from '../model/json-file.js';
import { addSpecialTokens, loadModelFolder, saveModelFolder } from '../model/model-folder.js';
import { readQwen2Config } from '../model/qwen2-config.js';
import { readSafetensorsFolderEntries } from '../model/safetensors.js';
import { TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from '../model/tokenizer-json.js';
import { Tokenizer } from '../model/tokenizer.js';
import { type Command, UserError } from './command.js';
import { checkNotInside, checkOutputFolder, samePath } from './output-path.js';

const HELP = `search-r3 add-embed-token — make a model folder speak the Search-R3 protocol, untrained

usage: search-r3 add-embed-token --model <dir> [--out <dir>]

Adds <|embed_token|> to the folder's tokenizer as a special token, as stage 1 (search-r3 train sft)
does before it trains: a base model such as Qwen2.5-1.5B-Instruct can then be indexed, searched and
evaluated, its vector being the state at an embed token it has never seen (a baseline; stage 1 is what
makes it a search embedding). When the vocabulary has room for the token (Qwen2.5's has), only the
tokenizer files change; otherwise the embedding (and an untied LM head) grows by one row, the mean of
the others, and the weights are written again in the precision the embedding is stored in. The result is
written beside its place and renamed into it, so a failure leaves the folder as it was.

options:
  --model <dir>   the model folder
  --out <dir>     a new or empty folder for the result, with the model's other files (default: change
                  --model itself)
  -h, --help      this help`;

export const addEmbedTokenCommand: Command = {
  help: HELP,
  async run(argv) {
    const options = { model: { type: 'string' }, out: { type: 'string' } } as const;
    const { values } = parseArgs({ args: argv, strict: true, options });
    if (!values.model) throw new UserError('--model <dir> is required: the model folder to add the token to.');
    const dir = values.model,
      out = values.out ?? dir;
    // before --out, which is --model unless given: a file there is --model's to name
    checkModelFolderOption(dir);
    checkOutputFolder(out, values.out === undefined ? '--model' : '--out', { replaced: true });
    checkNotInside(out, '--out', dir, '--model');
    const inPlace = samePath(out, dir);
    // --out is replaced as a whole: a folder holding anything (another model, other work) is refused
    if (!inPlace && existsSync(out) && readdirSync(out).length > 0) {
      const what = existsSync(path.join(out, 'config.json')) ? 'already holds a model' : 'is not empty';
      throw new UserError(`--out ${out} ${what}; give a new or empty folder, or leave --out out to change --model.`);
    }
    const tokenizer = await Tokenizer.fromFolder(dir);
    if (tokenizer.tokenToId(EMBED_TOKEN) !== undefined) {
      const has = `${dir} already has ${EMBED_TOKEN} (id ${tokenizer.tokenToId(EMBED_TOKEN)})`;
      if (inPlace) {
        console.log(`${has}; nothing to do.`);
        return 0;
      }
      await writeDirAtomically(out, (tmp) => fsp.cp(dir, tmp, { recursive: true }));
      console.log(`${has}; copied to ${out} as it is.`);
      return 0;
    }
    const config = await readQwen2Config(path.join(dir, 'config.json'));
    // the whole folder is written beside --out and renamed into place: a failure (a full disk, Ctrl-C)
    // leaves the old folder as it was, never new tokenizer files beside weights of the old size
    if (tokenizer.vocabSize < config.vocabSize) {
      // the embedding already has a row for the new id: the weights stay as they are
      const {
        ids: [id],
      } = tokenizer.addSpecialTokens([EMBED_TOKEN]);
      await writeDirAtomically(out, async (tmp) => {
        await shareFiles(dir, tmp, (name) => name === TOKENIZER_JSON || name === TOKENIZER_CONFIG_JSON, inPlace);
        await tokenizer.save(tmp);
      });
      console.log(`${out}: ${EMBED_TOKEN} is token ${id}; tokenizer files written, weights unchanged.`);
      return 0;
    }
    // written in the precision the embedding is stored in (a bf16 release stays bf16)
    const entries = await readSafetensorsFolderEntries(dir);
    const dtype = entries.find((e) => e.name === 'model.embed_tokens.weight')?.dtype ?? 'F32';
    const loaded = await loadModelFolder(dir);
    const {
      model,
      ids: [id],
    } = addSpecialTokens(loaded, [EMBED_TOKEN]);
    await writeDirAtomically(out, async (tmp) => {
      await shareFiles(dir, tmp, (name) => REWRITTEN.has(name) || name.endsWith('.safetensors'), inPlace);
      await saveModelFolder(tmp, { model, tokenizer: loaded.tokenizer }, { dtype });
    });
    const grew = `the embedding grew to ${model.config.vocabSize} rows and the weights were written again`;
    console.log(`${out}: ${EMBED_TOKEN} is token ${id}; ${grew}.`);
    return 0;
  },
};

/** Refuses a model folder option that names no folder, or a file, in one sentence. */
export function checkModelFolderOption(dir: string, option = '--model'): void {
  if (!modelFolderExists(dir)) throw new UserError(`${option} ${dir}: no such folder`);
  if (!statSync(dir).isDirectory())
    throw new UserError(`${option} ${dir} is a file; name the model folder (config.json, weights, tokenizer)`);
}

/** The files saveModelFolder writes anew (besides the weights). */
const REWRITTEN = new Set(['config.json', TOKENIZER_JSON, TOKENIZER_CONFIG_JSON, 'model.safetensors.index.json']);

/**
 * Puts the model folder's other files (generation_config.json, a licence, a README) into `to`, except those
 * `skip` names (written anew). In place, hard links where the file system allows (no second copy of large
 * weights while the old folder waits to be removed); into another folder, copies, so that the two stay
 * independent.
 */
export async function shareFiles(
  from: string,
  to: string,
  skip: (name: string) => boolean,
  link: boolean,
): Promise<void> {
  for (const e of await fsp.readdir(from, { withFileTypes: true })) {
    if (skip(e.name)) continue;
    const src = path.join(from, e.name),
      dst = path.join(to, e.name);
    if (e.isDirectory()) await fsp.cp(src, dst, { recursive: true });
    else if (link) await fsp.link(src, dst).catch(() => fsp.copyFile(src, dst));
    else await fsp.copyFile(src, dst);
  }
}
