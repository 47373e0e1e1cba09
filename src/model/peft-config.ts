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
  /**
   * The setting by which some layers of the target modules have no adapter (layers_to_transform,
   * exclude_modules), as the file gives it; null when every one has. GGUF adapters are per tensor and take
   * such an adapter; loading it onto a model does not.
   */
  someLayers: string | null;
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
  return { file, rank, alpha, dropout, targets, rslora, baseModel: base, someLayers: someLayersSetting(c) };
}

/** PeftLoraConfig.someLayers of a parsed adapter_config.json (PEFT writes null, or [], for none). */
function someLayersSetting(c: Record<string, unknown>): string | null {
  for (const key of ['layers_to_transform', 'exclude_modules']) {
    const v = c[key];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) return `"${key}" ${JSON.stringify(v)}`;
  }
  return null;
}
