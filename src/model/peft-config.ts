/**
 * adapter_config.json of a PEFT LoRA adapter, read and checked once for both loading an adapter onto a
 * model and exporting it to GGUF. Settings that change what the weights mean and that neither models
 * (per-module ranks or alphas, DoRA, another PEFT method) are refused rather than ignored.
 */
import path from 'node:path';
import { modelFolderHolds, readModelJson } from './json-file.js';
import { ModelFileError } from './model-file-error.js';

export interface PeftLoraConfig {
  file: string;
  rank: number;
  alpha: number;
  dropout: number;
  /** The adapted module names; null when the file gives a pattern (a string such as "all-linear"). */
  targets: string[] | null;
  /** rsLoRA: scale alpha / sqrt(r) instead of alpha / r. */
  rslora: boolean;
  /** base_model_name_or_path: the model the adapter was trained on; '' when the file names none. */
  baseModel: string;
  /** Which modules the adapter is on, as PEFT chose them when it made the adapter. */
  modules: PeftModuleChoice;
}

/**
 * PEFT's choice of the modules an adapter is on, by their paths in the model (model.layers.3.self_attn.q_proj):
 * exclude_modules first, then target_modules, then layers_to_transform.
 */
export interface PeftModuleChoice {
  /**
   * Names a module's path ends in (after a dot, or the whole path), a pattern the whole path matches, or
   * "all-linear": every linear layer but the output layer (lm_head).
   */
  targets: readonly string[] | ModulePattern | 'all-linear';
  /** layers_to_transform: only modules in these layers (model.layers.N); null for every layer. */
  layers: readonly number[] | null;
  /** exclude_modules, as targets; null when none is. */
  exclude: readonly string[] | ModulePattern | null;
}

/** A regular expression of adapter_config.json, which PEFT matches against a module's whole path (re.fullmatch). */
export interface ModulePattern {
  key: 'target_modules' | 'exclude_modules';
  pattern: string;
}

export const PEFT_CONFIG_FILE = 'adapter_config.json';

/**
 * Whether `dir` holds a LoRA adapter and not a whole model: adapter_config.json without config.json (a folder
 * with both loads as the model its config.json describes).
 */
export function isAdapterFolder(dir: string): boolean {
  return modelFolderHolds(dir, PEFT_CONFIG_FILE) && !modelFolderHolds(dir, 'config.json');
}

export async function readPeftLoraConfig(dir: string): Promise<PeftLoraConfig> {
  const file = path.join(dir, PEFT_CONFIG_FILE);
  const raw = await readModelJson(file, 'a LoRA adapter folder needs adapter_config.json (PEFT layout)');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ModelFileError(file, 'must be a JSON object.');
  const c = raw as Record<string, unknown>;
  if (c['peft_type'] !== undefined && c['peft_type'] !== 'LORA')
    throw new ModelFileError(file, `peft_type is ${JSON.stringify(c['peft_type'])}; only LORA adapters are supported.`);
  if (c['use_dora'] === true) throw new ModelFileError(file, 'DoRA adapters are not supported.');
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const p = c[key];
    if (p !== undefined && p !== null && (typeof p !== 'object' || Object.keys(p).length > 0))
      throw new ModelFileError(
        file,
        `"${key}" ${JSON.stringify(p)} gives some modules their own rank or alpha, which is not supported; ` +
          `one "r" and "lora_alpha" for every module is.`,
      );
  }
  const rank = c['r'],
    alpha = c['lora_alpha'];
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 1)
    throw new ModelFileError(file, `"r" must be a positive integer, got ${JSON.stringify(rank)}.`);
  if (typeof alpha !== 'number' || !(alpha > 0) || !Number.isFinite(alpha))
    throw new ModelFileError(file, `"lora_alpha" must be a positive number, got ${JSON.stringify(alpha)}.`);
  const dropout = c['lora_dropout'] ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
    throw new ModelFileError(file, `"lora_dropout" must be a number in [0, 1), got ${JSON.stringify(dropout)}.`);
  const t = c['target_modules'];
  let targets: string[] | null = null;
  if (Array.isArray(t) && t.every((x) => typeof x === 'string')) targets = t as string[];
  else if (typeof t !== 'string')
    throw new ModelFileError(file, `"target_modules" must be a list of module names, got ${JSON.stringify(t)}.`);
  const modules: PeftModuleChoice = {
    targets: targets ?? (t === 'all-linear' ? t : { key: 'target_modules', pattern: t as string }),
    layers: layersToTransform(file, c, targets !== null || t === 'all-linear'),
    exclude: excludeModules(file, c['exclude_modules']),
  };
  const bias = c['bias'] ?? 'none';
  if (bias !== 'none')
    throw new ModelFileError(
      file,
      `"bias" ${JSON.stringify(bias)} trains the base model's biases along with the adapter, which is not ` +
        'supported; only "none" (PEFT\'s default) is.',
    );
  const base = c['base_model_name_or_path'] ?? '';
  if (typeof base !== 'string')
    throw new ModelFileError(
      file,
      `"base_model_name_or_path" must be the path of the base model folder, got ${JSON.stringify(base)}.`,
    );
  const rslora = c['use_rslora'] === true;
  return { file, rank, alpha, dropout, targets, rslora, baseModel: base, modules };
}

/** layers_to_transform (one layer or a list; null or [] for every layer), on the layers PEFT finds by "layers". */
function layersToTransform(file: string, c: Record<string, unknown>, namedTargets: boolean): number[] | null {
  const pattern = c['layers_pattern'];
  const patterns = Array.isArray(pattern) ? pattern : pattern === undefined || pattern === null ? [] : [pattern];
  if (patterns.some((p) => p !== 'layers'))
    throw new ModelFileError(
      file,
      `"layers_pattern" ${JSON.stringify(pattern)} is not where a Qwen2 model keeps its layers; it is "layers" ` +
        '(model.layers.N), or null.',
    );
  const v = c['layers_to_transform'];
  const layers = typeof v === 'number' ? [v] : v;
  if (layers === undefined || layers === null || (Array.isArray(layers) && layers.length === 0)) return null;
  if (!Array.isArray(layers) || !layers.every((n) => Number.isInteger(n) && n >= 0))
    throw new ModelFileError(
      file,
      `"layers_to_transform" must be a layer number or a list of them, got ${JSON.stringify(v)}.`,
    );
  if (!namedTargets)
    throw new ModelFileError(
      file,
      '"layers_to_transform" with a "target_modules" pattern: PEFT refuses the two together; list the module names.',
    );
  return layers as number[];
}

/** exclude_modules: names, or a pattern of whole module paths; null (PEFT's default) or [] for none. */
function excludeModules(file: string, v: unknown): string[] | ModulePattern | null {
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return null;
  if (typeof v === 'string') return { key: 'exclude_modules', pattern: v };
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  throw new ModelFileError(
    file,
    `"exclude_modules" must be a list of module names or a pattern, got ${JSON.stringify(v)}.`,
  );
}
