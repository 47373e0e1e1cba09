import { parseArgs } from 'node:util';
import path from 'node:path';
import { existsSync, promises as fsp, readdirSync, statSync } from 'node:fs';
import { recoverSetAside, writeDirAtomically } from '../io/atomic-file.js';
import {
  GGUF_SOURCE_MODEL_KEY,
  exportQwen2GgufFromFolder,
  exportQwen2LoraGgufFromFolder,
  type GgufFileType,
  str,
} from '../model/gguf.js';
import { ADAPTER_BASE_FILE, adapterBase, modelFingerprint } from '../model/model-fingerprint.js';
import { loadModelFolder, saveModelFolder } from '../model/model-folder.js';
import { PEFT_CONFIG_FILE, isAdapterFolder } from '../model/peft-config.js';
import { readQwen2Config } from '../model/qwen2-config.js';
import type { SafetensorsDtype } from '../model/safetensors.js';
import { CHAT_TEMPLATE_JINJA, TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from '../model/tokenizer-json.js';
import { MODEL_SEARCH_FILE } from '../search-index/model-fusion.js';
import { shareFiles } from './add-embed-token.js';
import { type Command, UserError } from './command.js';
import { checkOutputFile, checkOutputFolder, checkReplacesOnly, samePath } from './output-path.js';
import { subcommandError } from './subcommand.js';

const help = `search-r3 export gguf — write a model (or a LoRA adapter) as GGUF for llama.cpp, Ollama, node-llama-cpp

usage:
  search-r3 export gguf --model <hf-model-dir> --out model.gguf [--type f32|f16|q8_0]
  search-r3 export gguf --model <hf-model-dir> --lora <peft-adapter-dir> --out adapter.gguf [--type f32|f16]

options:
  --model DIR   Hugging Face Qwen2/Qwen2.5 folder (config.json, tokenizer files, safetensors)
  --lora DIR    PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors); exports the
                adapter alone, for llama.cpp's --lora (the base model is exported separately)
  --out FILE    the GGUF file to write (written to a temp file, then renamed)
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
fusion) comes along; the base's other files (generation_config.json, licence, README) are copied, its
GGUF files and subfolders are not (they belong to the base's weights). With the default dtype the
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
    if (positionals[0] === 'merged') return exportMerged(values);
    if (positionals[0] !== 'gguf') throw subcommandError('export', positionals[0], ['gguf', 'merged']);
    if (values.dtype !== undefined)
      throw new UserError('--dtype is for export merged; export gguf takes --type f32|f16|q8_0');
    if (!values.model) throw new UserError('--model is required: the Hugging Face model folder to export');
    if (!values.out) throw new UserError('--out is required: the GGUF file to write');
    checkOutputFile(values.out, '--out');
    checkNotOtherFile(values.out);
    recoverSetAside(values.model);
    if (!existsSync(values.model)) throw new UserError(`--model ${values.model}: no such folder`);
    if (!statSync(values.model).isDirectory())
      throw new UserError(`--model ${values.model} is a file; name the model folder (config.json, weights, tokenizer)`);
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

/** The files of a model folder that a merged folder has of its own (written anew) or must not take from its base. */
const NOT_SHARED = new Set([
  'config.json',
  TOKENIZER_JSON,
  TOKENIZER_CONFIG_JSON,
  CHAT_TEMPLATE_JINJA,
  MODEL_SEARCH_FILE,
  PEFT_CONFIG_FILE,
  ADAPTER_BASE_FILE,
]);
const BASE_WEIGHTS = /\.(safetensors|safetensors\.index\.json|gguf)$/;

async function exportMerged(values: ExportValues): Promise<number> {
  if (values.type !== undefined)
    throw new UserError('--type is for export gguf; export merged takes --dtype f32|f16|bf16');
  const adapter = values.lora;
  if (!adapter)
    throw new UserError("--lora is required: the LoRA adapter folder to merge (such as a LoRA run's final/)");
  if (!values.out) throw new UserError('--out is required: the folder to write the merged model to');
  const out = values.out;
  if (!existsSync(adapter) || !statSync(adapter).isDirectory())
    throw new UserError(`--lora ${adapter}: no such folder`);
  if (!isAdapterFolder(adapter)) {
    const whole = existsSync(path.join(adapter, 'config.json')) ? ': it is a whole model folder already' : '';
    throw new UserError(`--lora ${adapter} holds no LoRA adapter (adapter_config.json without config.json)${whole}`);
  }
  const dtype = values.dtype === undefined ? undefined : DTYPES[values.dtype.toLowerCase()];
  if (values.dtype !== undefined && dtype === undefined)
    throw new UserError(`--dtype ${values.dtype}: choose f32, f16 or bf16`);
  if (values.model !== undefined && (!existsSync(values.model) || !statSync(values.model).isDirectory()))
    throw new UserError(`--model ${values.model}: no such folder`);
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
  await writeDirAtomically(out, async (tmp) => {
    const skip = (name: string): boolean =>
      NOT_SHARED.has(name) || BASE_WEIGHTS.test(name) || !statSync(path.join(root, name)).isFile();
    await shareFiles(root, tmp, skip, false);
    const fusion = path.join(adapter, MODEL_SEARCH_FILE);
    if (existsSync(fusion)) await fsp.copyFile(fusion, path.join(tmp, MODEL_SEARCH_FILE));
    await saveModelFolder(tmp, loaded, { dtype: stored });
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
