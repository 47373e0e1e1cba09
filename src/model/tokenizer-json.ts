import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { readModelJson } from './json-file.js';
import { ModelFileError } from './model-file-error.js';
import { isJsonObject } from '../io/json-object.js';

/**
 * The shapes of Hugging Face's `tokenizer.json` and `tokenizer_config.json`, as far as we read or
 * write them. Fields we do not interpret are kept (index signatures) so that saving a tokenizer
 * gives back everything that was loaded.
 */

/** One entry of tokenizer.json's `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The added_tokens entry of special token `content`: matched whole and as written, nothing stripped around it. */
export function specialAddedToken(id: number, content: string): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** One value of tokenizer_config.json's `added_tokens_decoder` (keyed by the id as a string). */
export type AddedTokenConfig = Omit<AddedTokenJson, 'id'>;

/** A byte-level BPE model section. Merges come as "a b" strings (older files) or [a, b] pairs. */
export interface BpeModelJson {
  type: 'BPE';
  vocab: Record<string, number>;
  merges: Array<string | [string, string]>;
  [key: string]: unknown;
}

export interface TokenizerJson {
  version?: string;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: BpeModelJson;
  [key: string]: unknown;
}

/** A special-token field of tokenizer_config.json: a plain string or a serialised AddedToken. */
export type SpecialTokenField = string | { content: string; [key: string]: unknown } | null | undefined;

export interface TokenizerConfig {
  chat_template?: string | Array<{ name: string; template: string }>;
  bos_token?: SpecialTokenField;
  eos_token?: SpecialTokenField;
  pad_token?: SpecialTokenField;
  unk_token?: SpecialTokenField;
  additional_special_tokens?: string[];
  added_tokens_decoder?: Record<string, AddedTokenConfig>;
  [key: string]: unknown;
}

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';
/** Where transformers (4.43 on) saves a tokenizer's chat template, instead of tokenizer_config.json. */
export const CHAT_TEMPLATE_JINJA = 'chat_template.jinja';

const TOKENIZER_FILES = 'a tokenizer folder needs tokenizer.json and tokenizer_config.json (Hugging Face format)';

/** The text of a special-token field, or null when the field is absent. */
export function specialTokenContent(field: SpecialTokenField): string | null {
  if (field === null || field === undefined) return null;
  return typeof field === 'string' ? field : field.content;
}

/**
 * Checks that `value` is a byte-level BPE tokenizer.json we can use and returns it typed. `file` names
 * the file in the error (the path it was read from, or just "tokenizer.json").
 */
export function checkTokenizerJson(value: unknown, file = TOKENIZER_JSON): TokenizerJson {
  if (!isJsonObject(value)) throw new ModelFileError(file, 'is not a JSON object.');
  const model = value.model;
  if (!isJsonObject(model))
    throw new ModelFileError(file, 'has no "model" object; is this a Hugging Face tokenizer.json?');
  if (model.type !== 'BPE') {
    throw new ModelFileError(
      file,
      `model.type is ${JSON.stringify(model.type)}, but only byte-level "BPE" tokenizers (Qwen2 family) are supported.`,
    );
  }
  // options of HF's BPE model that change how a word is split; ours (and llama.cpp's) is plain byte-level BPE
  const plain: Record<string, unknown> = {
    dropout: null,
    ignore_merges: false,
    byte_fallback: false,
    fuse_unk: false,
    continuing_subword_prefix: '',
    end_of_word_suffix: '',
  };
  for (const [key, want] of Object.entries(plain)) {
    const got = model[key];
    const same = got === undefined || got === want || (got === null && want === '') || (key === 'dropout' && got === 0);
    if (!same)
      throw new ModelFileError(
        file,
        `model.${key} is ${JSON.stringify(got)}; only plain byte-level BPE (${key} ${JSON.stringify(want)}) is ` +
          `supported, as in Qwen2's tokenizer.json.`,
      );
  }
  if (!isJsonObject(model.vocab)) throw new ModelFileError(file, 'model.vocab is missing or not an object.');
  if (!Array.isArray(model.merges)) throw new ModelFileError(file, 'model.merges is missing or not an array.');
  // Each id names one string. A clash is a damaged or hand-edited file: our engine and llama.cpp would each
  // pick one of the two strings for the id (and HF's Rust tokenizers renumber the added token), so the
  // same text would give different ids, or decode to the other string, depending on who reads the file.
  const tokenOfId = new Map<number, string>();
  const clash = (id: number, first: string, second: string, where: string): ModelFileError =>
    new ModelFileError(
      file,
      `id ${id} is given to both ${JSON.stringify(first)} and ${JSON.stringify(second)} (${where}); ` +
        'give each token an id of its own.',
    );
  for (const [token, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw new ModelFileError(file, `model.vocab[${JSON.stringify(token)}] is ${JSON.stringify(id)}, not a token id.`);
    const other = tokenOfId.get(id as number);
    if (other !== undefined) throw clash(id as number, other, token, 'model.vocab');
    tokenOfId.set(id as number, token);
  }
  model.merges.forEach((m: unknown, i) => {
    const pair = Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string');
    if (!pair && !(typeof m === 'string' && m.indexOf(' ') > 0))
      throw new ModelFileError(file, `model.merges[${i}] ${JSON.stringify(m)} is not "left right" or [left, right].`);
  });
  const added = value.added_tokens ?? [];
  if (!Array.isArray(added)) throw new ModelFileError(file, 'added_tokens is not an array.');
  for (const [i, token] of added.entries()) {
    if (
      !isJsonObject(token) ||
      typeof token.content !== 'string' ||
      !Number.isInteger(token.id) ||
      (token.id as number) < 0
    ) {
      throw new ModelFileError(file, `added_tokens[${i}] needs a token id "id" and a string "content".`);
    }
    const id = token.id as number;
    // some files list vocabulary tokens (GPT-2's <|endoftext|>) again as added tokens, with the same id
    const other = tokenOfId.get(id);
    if (other !== undefined && other !== token.content) throw clash(id, other, token.content, `added_tokens[${i}]`);
    tokenOfId.set(id, token.content);
  }
  return { ...value, added_tokens: added, model } as TokenizerJson;
}

/** Checks that `value` is a tokenizer_config.json object and that its special-token fields have a usable shape. */
export function checkTokenizerConfig(value: unknown, file = TOKENIZER_CONFIG_JSON): TokenizerConfig {
  if (!isJsonObject(value)) throw new ModelFileError(file, 'is not a JSON object.');
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const field = value[key];
    if (field === undefined || field === null || typeof field === 'string') continue;
    if (!isJsonObject(field) || typeof field.content !== 'string') {
      throw new ModelFileError(file, `${key} must be a string, null, or an object with a string "content".`);
    }
  }
  const template = value.chat_template;
  if (template !== undefined && template !== null && typeof template !== 'string' && !Array.isArray(template)) {
    throw new ModelFileError(file, 'chat_template must be a string or a list of {name, template}.');
  }
  if (value.added_tokens_decoder !== undefined && !isJsonObject(value.added_tokens_decoder)) {
    throw new ModelFileError(file, 'added_tokens_decoder must be an object keyed by token id.');
  }
  return value as TokenizerConfig;
}

/** The merges of a BPE model as pairs, whichever of the two on-disk forms the file uses. */
export function mergePairs(model: BpeModelJson): Array<[string, string]> {
  return model.merges.map((merge, i) => {
    if (Array.isArray(merge)) return [merge[0], merge[1]];
    const space = merge.indexOf(' ');
    if (space <= 0)
      throw new ModelFileError(TOKENIZER_JSON, `model.merges[${i}] ${JSON.stringify(merge)} is not "left right".`);
    return [merge.slice(0, space), merge.slice(space + 1)];
  });
}

/** The files of a tokenizer folder, as messages name them; `chatTemplate` is null when the folder has no such file. */
export interface TokenizerFolderFiles {
  json: string;
  config: string;
  chatTemplate: string | null;
}

/** A tokenizer folder's files, read and checked. */
export interface TokenizerFolder {
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfig;
  files: TokenizerFolderFiles;
}

/**
 * Reads and checks a tokenizer folder: tokenizer.json, tokenizer_config.json and, when there is one,
 * chat_template.jinja. The returned config holds the chat template that applies: as in transformers'
 * from_pretrained, a chat_template.jinja replaces any chat_template of tokenizer_config.json.
 */
export async function readTokenizerFolder(dir: string): Promise<TokenizerFolder> {
  const json = path.join(dir, TOKENIZER_JSON);
  const config = path.join(dir, TOKENIZER_CONFIG_JSON);
  const jinja = path.join(dir, CHAT_TEMPLATE_JINJA);
  const tokenizerJson = checkTokenizerJson(await readModelJson(json, TOKENIZER_FILES), json);
  const tokenizerConfig = checkTokenizerConfig(await readModelJson(config, TOKENIZER_FILES), config);
  const template = await readOptionalText(jinja);
  if (template === null) return { tokenizerJson, tokenizerConfig, files: { json, config, chatTemplate: null } };
  const withTemplate = { ...tokenizerConfig, chat_template: template };
  return { tokenizerJson, tokenizerConfig: withTemplate, files: { json, config, chatTemplate: jinja } };
}

/** The text of a file, or null when there is no such file. */
async function readOptionalText(file: string): Promise<string | null> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ModelFileError(file, `cannot be read (${(err as Error).message}).`);
  }
}
