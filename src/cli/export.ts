import { parseArgs } from './parse-options.js';
import path from 'node:path';
import { existsSync, promises as fsp, readFileSync, readdirSync, statSync } from 'node:fs';
import { writeDirAtomically } from '../io/atomic-file.js';
import {
  GGUF_SOURCE_MODEL_KEY,
  exportQwen2GgufFromFolder,
  exportQwen2LoraGgufFromFolder,
  type GgufFileType,
  str,
} from '../model/gguf.js';
import { ADAPTER_BASE_FILE, type AdapterBase, adapterBase, modelFingerprint } from '../model/model-fingerprint.js';
import { loadModelFolder, saveModelFolder } from '../model/model-folder.js';
import { isAdapterFolder } from '../model/peft-config.js';
import { readQwen2Config } from '../model/qwen2-config.js';
import type { SafetensorsDtype } from '../model/safetensors.js';
import { MODEL_SEARCH_FILE } from '../search-index/model-fusion.js';
import { checkModelFolderOption, shareFiles } from './add-embed-token.js';
import { type Command, UserError } from './command.js';
import { checkOutputFile, checkOutputFolder, checkReplacesOnly, samePath } from './output-path.js';
import { refuseExtraArguments, subcommandError } from './subcommand.js';

const help = `search-r3 export gguf — write a model (or a LoRA adapter) as GGUF for llama.cpp, Ollama, node-llama-cpp

usage:
  search-r3 export gguf --model <hf-model-dir> --out model.gguf [--type f32|f16|q8_0]
  search-r3 export gguf --model <hf-model-dir> --lora <peft-adapter-dir> --out adapter.gguf [--type f32|f16]

options:
  --model DIR   Hugging Face Qwen2/Qwen2.5 folder (config.json, tokenizer files, safetensors)
  --lora DIR    PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors); exports the
                adapter alone, for llama.cpp's --lora (the base model is exported separately)
  --out FILE    the GGUF file to write (written to a temp file, then renamed; its folder is created if missing)
  --type T      f32, f16 (default) or q8_0 for models; f32 (default) or f16 for adapters

Norms and biases stay F32 in every type, as llama.cpp's own converter does. A model GGUF says
last-token pooling (an embedding context returns the state at <|embed_token|>) and records the
fingerprint of the folder it came from (search_r3.source_model), which --engine llama.cpp reads.`;

const mergedHelp = `search-r3 export merged — write a LoRA adapter merged into its base as a whole model folder

usage:
  search-r3 export merged --lora <adapter-dir> [--model <base-dir>] --out <dir> [--dtype f32|f16|bf16]

Every command takes a LoRA run's final/ or best/ where it takes a model folder, merging the adapter onto
its base as it loads. This writes that merged model as a Hugging Face folder (config.json, tokenizer
files, safetensors) for what reads no adapters: transformers, export gguf, --engine llama.cpp.

options:
  --lora DIR    PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), such as a
                LoRA run's final/
  --model DIR   its base model folder (default: the folder adapter_config.json's base_model_name_or_path
                names); checked against the base fingerprint a search-r3 run records beside the adapter
                (search-r3-base.json)
  --out DIR     a new or empty folder for the merged model, neither the base nor the adapter (written
                beside it, then renamed into place)
  --dtype T     f32, f16 or bf16 (default: the dtype the base stores its embedding in); each adapted
                weight W + (alpha/r)·B·A is computed in float32, then stored in T

The tokenizer is the adapter's (with <|embed_token|>), and the adapter's search-r3.json (its hybrid
fusion) comes along. Of the base's other files, those it shares with the merged model (generation_config.json,
the tokenizer's vocab.json, merges.txt, special_tokens_map.json, added_tokens.json) and its licence files
(LICENSE, NOTICE, COPYING, ...) are copied; its model card, evaluation, recipe record, GGUF files and
subfolders are not (they describe the base). A README.md names the adapter, the base and its fingerprint,
carries the licence of the base's card and points to that card. With the default dtype the
folder gives the vectors the adapter folder gives; to an index it is another model all the same (its
fingerprint is its own files'), so an index is searched with the folder it was built with.`;

const exportHelp = `search-r3 export — write a model in another form: gguf (for llama.cpp) or merged (a LoRA adapter
merged into its base, as a model folder)

${help}

${mergedHelp}`;

const types: Record<string, GgufFileType> = { f32: 'F32', f16: 'F16', q8_0: 'Q8_0' };

const DTYPES: Record<string, SafetensorsDtype> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

interface ExportValues {
  model?: string;
  lora?: string;
  out?: string;
  type?: string;
  dtype?: string;
}

export const exportCommand: Command = {
  help: exportHelp,
  subcommands: ['gguf', 'merged'],
  helpOf: (subcommand) => (subcommand === 'gguf' ? help : subcommand === 'merged' ? mergedHelp : undefined),
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        lora: { type: 'string' },
        out: { type: 'string' },
        type: { type: 'string' },
        dtype: { type: 'string' },
      },
    });
    if (positionals[0] !== 'gguf' && positionals[0] !== 'merged') {
      throw subcommandError('export', positionals[0], ['gguf', 'merged']);
    }
    refuseExtraArguments(positionals);
    if (positionals[0] === 'merged') return exportMerged(values);
    if (values.dtype !== undefined)
      throw new UserError('--dtype is for export merged; export gguf takes --type f32|f16|q8_0');
    if (!values.model) throw new UserError('--model is required: the Hugging Face model folder to export');
    if (!values.out) throw new UserError('--out is required: the GGUF file to write');
    checkOutputFile(values.out, '--out');
    checkNotOtherFile(values.out);
    checkModelFolderOption(values.model);
    if (isAdapterFolder(values.model))
      throw new UserError(
        `--model ${values.model} is a LoRA adapter folder; give its base as --model and it as --lora, or merge ` +
          `it first (search-r3 export merged --lora ${values.model} --out <dir>) and export that folder`,
      );
    const kind = (values.type ?? (values.lora ? 'f32' : 'f16')).toLowerCase();
    const fileType = types[kind];
    if (!fileType) throw new UserError(`--type ${values.type}: choose f32, f16 or q8_0`);
    const started = Date.now();
    if (values.lora) {
      if (fileType === 'Q8_0') throw new UserError('--type q8_0 is for models; adapters export as f32 or f16');
      const config = await readQwen2Config(path.join(values.model, 'config.json'));
      await exportQwen2LoraGgufFromFolder(values.lora, config, values.out, { fileType });
    } else {
      const source = new Map([[GGUF_SOURCE_MODEL_KEY, str(await modelFingerprint(values.model))]]);
      await exportQwen2GgufFromFolder(values.model, values.out, { fileType, extraMetadata: source });
    }
    console.error(`wrote ${values.out} (${kind}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  },
};

/**
 * The base's files a merged folder takes: those describing what it shares with the base (generation settings, the
 * tokenizer's other files) and the licence and notices that travel with weights derived from the base. The base's
 * model card, evaluation and recipe record tell of the base's own weights and scores, so they stay behind.
 */
const BASE_FILES_TAKEN = new Set([
  'generation_config.json',
  'vocab.json',
  'merges.txt',
  'special_tokens_map.json',
  'added_tokens.json',
]);
const LICENCE_FILE = /^(licen[cs]e|notice|copying)([._-].*)?$/i;

const MODEL_CARD = 'README.md';

/** The licence lines (license, license_name, license_link) of a model card's front matter. */
function cardLicenceLines(card: string): string[] {
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(card)?.[1] ?? '';
  return front.split(/\r?\n/).filter((line) => /^license(_name|_link)?\s*:/.test(line));
}

interface MergedFrom {
  adapter: string;
  base: AdapterBase;
  /** The whole model folder under the base (the base itself unless it is an adapter too). */
  root: string;
  dtype: string;
  /** The base's licence files copied beside the merged weights. */
  licences: readonly string[];
}

/** The model card of a merged folder: what it was made from, and where the base's licence and training are told. */
function mergedModelCard(m: MergedFrom): string {
  const rootCard = path.join(m.root, MODEL_CARD);
  const baseCard = existsSync(rootCard) ? readFileSync(rootCard, 'utf8') : null;
  const recorded = existsSync(path.join(m.adapter, ADAPTER_BASE_FILE))
    ? `, as the adapter's ${ADAPTER_BASE_FILE} records it`
    : '';
  const licenceFiles = m.licences.length > 0 ? ` and the licence files copied here (${m.licences.join(', ')})` : '';
  const see = baseCard !== null ? `the base's model card, \`${rootCard}\`` : `\`${m.root}\` (it has no model card)`;
  return `---
${[...(baseCard !== null ? cardLicenceLines(baseCard) : []), 'library_name: search-r3'].join('\n')}
tags: [search-r3, qwen2, embeddings, lora-merged]
---
# A LoRA adapter merged into its base

A LoRA adapter merged into its base model by \`search-r3 export merged\` (each adapted weight W + (alpha/r)·B·A
computed in float32, stored as ${m.dtype}), with the adapter's tokenizer (with \`<|embed_token|>\`).

| | |
| --- | --- |
| adapter | \`${path.resolve(m.adapter)}\` |
| base | \`${path.resolve(m.base.dir)}\` (fingerprint \`${m.base.fingerprint}\`${recorded}) |

Its licence is its base's, and how the base was trained is told with the base: see ${see}${licenceFiles}.
The base's evaluation does not describe this model; measure it with \`search-r3 eval --retriever <this folder>\`.
`;
}

async function exportMerged(values: ExportValues): Promise<number> {
  if (values.type !== undefined)
    throw new UserError('--type is for export gguf; export merged takes --dtype f32|f16|bf16');
  const adapter = values.lora;
  if (!adapter)
    throw new UserError("--lora is required: the LoRA adapter folder to merge (such as a LoRA run's final/)");
  if (!values.out) throw new UserError('--out is required: the folder to write the merged model to');
  const out = values.out;
  // isAdapterFolder first: it gives back an adapter folder whose only copy a killed write left aside
  if (!isAdapterFolder(adapter)) {
    if (!existsSync(adapter) || !statSync(adapter).isDirectory())
      throw new UserError(`--lora ${adapter}: no such folder`);
    const whole = existsSync(path.join(adapter, 'config.json')) ? ': it is a whole model folder already' : '';
    throw new UserError(`--lora ${adapter} holds no LoRA adapter (adapter_config.json without config.json)${whole}`);
  }
  const dtype = values.dtype === undefined ? undefined : DTYPES[values.dtype.toLowerCase()];
  if (values.dtype !== undefined && dtype === undefined)
    throw new UserError(`--dtype ${values.dtype}: choose f32, f16 or bf16`);
  if (values.model !== undefined) checkModelFolderOption(values.model);
  checkOutputFolder(out, '--out', { replaced: true });
  const base = await adapterBase(adapter, values.model);
  for (const [what, dir] of [
    ['the adapter', adapter],
    ['its base', base.dir],
  ] as const)
    if (samePath(out, dir))
      throw new UserError(`--out ${out} is ${what} ${dir}; the merged model would replace it: name a new folder.`);
  // --out is replaced as a whole: a folder holding anything (another model, other work) is refused
  if (existsSync(out) && readdirSync(out).length > 0)
    throw new UserError(`--out ${out} is not empty; give a new or empty folder for the merged model.`);
  const started = Date.now();
  // a given --dtype is rounded to once, from the float32 merge; by default the weights stay in the base's dtype
  const loaded = await loadModelFolder(adapter, { base: values.model, precision: dtype ? 'f32' : 'file' });
  const held = loaded.model.params.get('model.embed_tokens.weight')!.dtype;
  const stored = dtype ?? DTYPES[held]!;
  let root = base.dir;
  while (isAdapterFolder(root)) root = (await adapterBase(root)).dir;
  const taken = readdirSync(root).filter(
    (name) => (BASE_FILES_TAKEN.has(name) || LICENCE_FILE.test(name)) && statSync(path.join(root, name)).isFile(),
  );
  const licences = taken.filter((name) => LICENCE_FILE.test(name)).sort();
  await writeDirAtomically(out, async (tmp) => {
    await shareFiles(root, tmp, (name) => !taken.includes(name), false);
    const fusion = path.join(adapter, MODEL_SEARCH_FILE);
    if (existsSync(fusion)) await fsp.copyFile(fusion, path.join(tmp, MODEL_SEARCH_FILE));
    await saveModelFolder(tmp, loaded, { dtype: stored });
    const card = mergedModelCard({ adapter, base, root, dtype: stored.toLowerCase(), licences });
    await fsp.writeFile(path.join(tmp, MODEL_CARD), card);
  });
  const kind = stored.toLowerCase();
  const took = ((Date.now() - started) / 1000).toFixed(1);
  console.error(`wrote ${out}: ${adapter} merged onto ${base.dir} (${kind}) in ${took} s`);
  return 0;
}

/** An existing --out may only be a GGUF file (exported again). */
function checkNotOtherFile(out: string): void {
  const why = (head: Buffer): string | null => (head.toString('latin1', 0, 4) === 'GGUF' ? null : '');
  checkReplacesOnly(out, '--out', { command: 'export', kind: 'a GGUF file', why });
}
