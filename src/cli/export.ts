import { parseArgs } from 'node:util';
import path from 'node:path';
import { existsSync, statSync } from 'node:fs';
import {
  GGUF_SOURCE_MODEL_KEY,
  exportQwen2GgufFromFolder,
  exportQwen2LoraGgufFromFolder,
  type GgufFileType,
  str,
} from '../model/gguf.js';
import { modelFingerprint } from '../model/model-fingerprint.js';
import { readQwen2Config } from '../model/qwen2-config.js';
import { type Command, UserError } from './command.js';
import { checkOutputFile, checkReplacesOnly } from './output-path.js';

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

const types: Record<string, GgufFileType> = { f32: 'F32', f16: 'F16', q8_0: 'Q8_0' };

export const exportCommand: Command = {
  help,
  subcommands: ['gguf'],
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        lora: { type: 'string' },
        out: { type: 'string' },
        type: { type: 'string' },
      },
    });
    if (positionals[0] !== 'gguf')
      throw new UserError(`export needs a format: 'search-r3 export gguf ...' (see search-r3 export --help)`);
    if (!values.model) throw new UserError('--model is required: the Hugging Face model folder to export');
    if (!values.out) throw new UserError('--out is required: the GGUF file to write');
    checkOutputFile(values.out, '--out');
    checkNotOtherFile(values.out);
    if (!existsSync(values.model)) throw new UserError(`--model ${values.model}: no such folder`);
    if (!statSync(values.model).isDirectory())
      throw new UserError(`--model ${values.model} is a file; name the model folder (config.json, weights, tokenizer)`);
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

/** An existing --out may only be a GGUF file (exported again). */
function checkNotOtherFile(out: string): void {
  const why = (head: Buffer): string | null => (head.toString('latin1', 0, 4) === 'GGUF' ? null : '');
  checkReplacesOnly(out, '--out', { command: 'export', kind: 'a GGUF file', why });
}
