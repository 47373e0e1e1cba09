import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EMBED_TOKEN } from '../embed/index.js';
import { addSpecialTokens, loadModelFolder, saveModelFolder } from '../model/model-folder.js';
import { readQwen2Config } from '../model/qwen2-config.js';
import type { SafetensorsDtype } from '../model/safetensors.js';
import { TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from '../model/tokenizer-json.js';
import { Tokenizer } from '../model/tokenizer.js';
import { type Command, UserError } from './command.js';

const HELP = `search-r3 add-embed-token — make a model folder speak the Search-R3 protocol, untrained

usage: search-r3 add-embed-token --model <dir> [--out <dir>]

Adds <|embed_token|> to the folder's tokenizer as a special token, as stage 1 (search-r3 train sft)
does before it trains: a base model such as Qwen2.5-1.5B-Instruct can then be indexed, searched and
evaluated, its vector being the state at an embed token it has never seen (a baseline; stage 1 is what
makes it a search embedding). When the vocabulary has room for the token (Qwen2.5's has), only the
tokenizer files change; otherwise the embedding (and an untied LM head) grows by one row, the mean of
the others, and the weights are written again in their stored precision.

options:
  --model <dir>   the model folder
  --out <dir>     where to write the result (default: the folder itself)
  -h, --help      this help`;

const STORED: Record<string, SafetensorsDtype> = { bfloat16: 'BF16', float16: 'F16' };

export const addEmbedTokenCommand: Command = {
  help: HELP,
  async run(argv) {
    const options = { model: { type: 'string' }, out: { type: 'string' } } as const;
    const { values } = parseArgs({ args: argv, strict: true, options });
    if (!values.model) throw new UserError('--model <dir> is required: the model folder to add the token to.');
    const dir = values.model,
      out = values.out ?? dir;
    const tokenizer = await Tokenizer.fromFolder(dir);
    if (tokenizer.tokenToId(EMBED_TOKEN) !== undefined) {
      console.log(`${dir} already has ${EMBED_TOKEN} (id ${tokenizer.tokenToId(EMBED_TOKEN)}); nothing to do.`);
      return 0;
    }
    const config = await readQwen2Config(path.join(dir, 'config.json'));
    if (tokenizer.vocabSize < config.vocabSize) {
      // the embedding already has a row for the new id: the weights stay as they are
      if (out !== dir) await copyFolder(dir, out);
      const {
        ids: [id],
      } = tokenizer.addSpecialTokens([EMBED_TOKEN]);
      await tokenizer.save(out);
      console.log(`${out}: ${EMBED_TOKEN} is token ${id}; tokenizer files written, weights unchanged.`);
      return 0;
    }
    const loaded = await loadModelFolder(dir);
    const {
      model,
      ids: [id],
    } = addSpecialTokens(loaded, [EMBED_TOKEN]);
    const dtype = STORED[config.torchDtype ?? ''] ?? 'F32';
    await saveModelFolder(out, { model, tokenizer: loaded.tokenizer }, { dtype });
    const grew = `the embedding grew to ${model.config.vocabSize} rows and the weights were written again`;
    console.log(`${out}: ${EMBED_TOKEN} is token ${id}; ${grew}.`);
    return 0;
  },
};

/** Copies every file of a model folder except its tokenizer files (written next). */
async function copyFolder(from: string, to: string): Promise<void> {
  if (existsSync(path.join(to, 'config.json'))) {
    throw new UserError(`--out ${to} already holds a model; give an empty folder.`);
  }
  await fsp.mkdir(to, { recursive: true });
  for (const name of await fsp.readdir(from)) {
    if (name === TOKENIZER_JSON || name === TOKENIZER_CONFIG_JSON) continue;
    await fsp.cp(path.join(from, name), path.join(to, name), { recursive: true });
  }
}
