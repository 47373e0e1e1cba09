/**
 * --engine, --gguf, --gpu and --as-source-model, shared by index, search, serve and eval: which engine
 * runs the model folder, and the one-sentence answers when an index and an engine do not belong together.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { LLAMA_GPUS, type LlamaCppFacts, type LlamaGpu } from '../embed/index.js';
import type { EmbedderOptions } from '../embed/index.js';
import { isAdapterFolder } from '../model/peft-config.js';
import { type EmbeddingBackend, LocalBackend } from '../search-index/embedding-backend.js';
import { type EngineIdentity, LlamaCppBackend } from '../search-index/llama-cpp-backend.js';
import type { IndexManifest } from '../search-index/manifest.js';
import { WorkerBackend } from '../serve/model-worker.js';
import { UserError } from './command.js';
import { optionHelp } from './option-help.js';

export const ENGINE_OPTIONS = {
  engine: { type: 'string' },
  gguf: { type: 'string' },
  gpu: { type: 'string' },
  'as-source-model': { type: 'boolean' },
} as const;

const ENGINE_FLAGS: readonly [string, string][] = [
  [
    '--engine search-r3|llama.cpp',
    "search-r3's own engine (default), or llama.cpp (node-llama-cpp, on a GPU where " +
      'there is one) running a GGUF that search-r3 export gguf wrote from the model folder',
  ],
  ['--gguf <file>', 'the GGUF for --engine llama.cpp (default: the only *.gguf in the model folder)'],
  ['--gpu auto|off|cuda|vulkan|metal', 'where llama.cpp runs (default auto: the first GPU it finds, else the CPU)'],
  [
    '--as-source-model',
    "llama.cpp's vectors count as the model folder's (the GGUF records the folder it came from), " +
      'so an index built by one engine may be searched and extended by the other',
  ],
];

/**
 * The engine options' help lines, descriptions starting at `column` as the command's other options do;
 * --as-source-model only where there is an index to share.
 */
export function engineHelp(column: number, withIndex = true): string {
  return optionHelp(
    ENGINE_FLAGS.filter(([flag]) => withIndex || flag !== '--as-source-model'),
    column,
  );
}

/** The engine a command runs its model folder on. */
export type EngineChoice =
  { kind: 'search-r3' } | { kind: 'llama.cpp'; gguf: string | undefined; gpu: LlamaGpu; identity: EngineIdentity };

interface EngineValues {
  engine?: string;
  gguf?: string;
  gpu?: string;
  'as-source-model'?: boolean;
  device?: string;
}

export function parseEngine(v: EngineValues): EngineChoice {
  const kind = v.engine ?? 'search-r3';
  if (kind !== 'search-r3' && kind !== 'llama.cpp') {
    throw new UserError(`--engine must be search-r3 or llama.cpp (got '${kind}').`);
  }
  if (kind === 'search-r3') {
    const stray = (['gguf', 'gpu', 'as-source-model'] as const).find((k) => v[k] !== undefined);
    if (stray) throw new UserError(`--${stray} goes with --engine llama.cpp.`);
    return { kind };
  }
  if (v.device !== undefined) {
    throw new UserError("--device chooses where search-r3's engine runs; llama.cpp chooses with --gpu.");
  }
  const gpu = (v.gpu ?? 'auto') as LlamaGpu;
  if (!LLAMA_GPUS.includes(gpu)) throw new UserError(`--gpu must be one of ${LLAMA_GPUS.join(', ')} (got '${v.gpu}').`);
  return { kind, gguf: v.gguf, gpu, identity: v['as-source-model'] ? 'source' : 'gguf' };
}

/** --gguf, or the only GGUF in the model folder. */
export function findGguf(modelDir: string, given: string | undefined): string {
  if (isAdapterFolder(modelDir)) {
    const merged = `search-r3 export merged --lora ${modelDir} --out <merged>`;
    throw new UserError(
      `${modelDir} is a LoRA adapter folder, and llama.cpp runs a whole model's GGUF: write the merged model ` +
        `with '${merged}', its GGUF with 'search-r3 export gguf --model <merged>', and give that folder.`,
    );
  }
  if (given !== undefined) return given;
  const found = existsSync(modelDir)
    ? readdirSync(modelDir)
        .filter((f) => f.endsWith('.gguf'))
        .sort()
    : [];
  if (found.length === 1) return path.join(modelDir, found[0]);
  const out = path.join(modelDir, 'model-f16.gguf');
  if (found.length === 0) {
    const write = `search-r3 export gguf --model ${modelDir} --out ${out}`;
    throw new UserError(`${modelDir} holds no GGUF for --engine llama.cpp; write one with ${write}, or pass --gguf.`);
  }
  throw new UserError(`${modelDir} holds several GGUF files (${found.join(', ')}); pick one with --gguf.`);
}

/** The model folder on the chosen engine, as an EmbeddingBackend. */
export function openEngineBackend(
  modelDir: string,
  choice: EngineChoice,
  opts: EmbedderOptions = {},
): Promise<EmbeddingBackend> {
  if (choice.kind === 'search-r3') return LocalBackend.fromModelDir(modelDir, opts);
  const { gpu, identity } = choice,
    { templates, maxLength } = opts;
  return LlamaCppBackend.open({ gguf: findGguf(modelDir, choice.gguf), modelDir, gpu, identity, templates, maxLength });
}

/** The llama.cpp facts of a backend that runs on llama.cpp (in this thread or a server's worker), else null. */
function llamaCppFacts(b: EmbeddingBackend): LlamaCppFacts | null {
  if (b instanceof LlamaCppBackend) return b.engine.describe();
  if (b instanceof WorkerBackend) return b.info.llamaCpp ?? null;
  return null;
}

/**
 * Why this engine's vectors may not join the index, when the reason is the engine (one sentence with what
 * to do), or null: other mismatches are the index's own to explain.
 */
export function engineMismatch(m: IndexManifest, backend: EmbeddingBackend): string | null {
  if (m.model.id === backend.modelId) return null;
  const llama = llamaCppFacts(backend);
  if (llama && llama.sourceModel === m.model.id) {
    return (
      `the index was built by search-r3's engine from the model folder that ${llama.gguf} was exported from; ` +
      `llama.cpp's ${llama.fileType} vectors of it differ slightly from those (see docs/real-models.md), ` +
      'so add --as-source-model to use them together, or drop --engine llama.cpp.'
    );
  }
  if (!llama && m.model.id.startsWith('gguf-')) {
    return (
      `the index was built with --engine llama.cpp from a GGUF (${m.model.id}); ` +
      'use --engine llama.cpp with that GGUF, or build the index again.'
    );
  }
  return null;
}
