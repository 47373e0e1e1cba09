/**
 * LoRA: low-rank adapters on chosen linear layers (W x + (alpha/r)·B·A·x), the base frozen; merge into
 * and unmerge from the base weights; save and load in PEFT's layout (adapter_config.json +
 * adapter_model.safetensors) so that adapters move between search-r3, PEFT and llama.cpp.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as T from '../tensor/index.js';
import type { Rng, Tensor } from '../tensor/index.js';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { ModelFileError } from './model-file-error.js';
import type { LoraAdapter, Qwen2Model } from './qwen2-model.js';
import { PEFT_CONFIG_FILE, readPeftLoraConfig, type ModulePattern, type PeftModuleChoice } from './peft-config.js';
import { checkFiniteWeight, loadSafetensors, saveSafetensors } from './safetensors.js';
import type { TensorData } from './tensor-data.js';
import { makeFolder } from '../io/make-folder.js';

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

const PEFT_PREFIX = 'base_model.model.';
const MLP_TARGETS = new Set(['gate_proj', 'up_proj', 'down_proj']);

/** Module paths (e.g. model.layers.3.self_attn.q_proj) of every targeted linear layer. */
export function loraModulePaths(model: Qwen2Model, targets: readonly string[]): string[] {
  for (const t of targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new Error(`LoRA target '${t}' is not a Qwen2 linear layer; choose from ${LORA_TARGETS.join(', ')}`);
    }
  }
  const paths: string[] = [];
  for (let l = 0; l < model.config.numHiddenLayers; l++) {
    for (const t of targets) paths.push(`model.layers.${l}.${MLP_TARGETS.has(t) ? 'mlp' : 'self_attn'}.${t}`);
  }
  return paths;
}

/** A module pattern as PEFT matches it, against the whole path (re.fullmatch). */
function wholePath(file: string, { key, pattern }: ModulePattern): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch {
    throw new ModelFileError(
      file,
      `"${key}" ${JSON.stringify(pattern)} is not a regular expression JavaScript reads; list the module ` +
        'names instead.',
    );
  }
}

/** Whether a module is named by names (its path, or what the path ends in after a dot) or a pattern. */
function namer(file: string, names: readonly string[] | ModulePattern): (modulePath: string) => boolean {
  if (!Array.isArray(names)) {
    const re = wholePath(file, names as ModulePattern);
    return (modulePath) => re.test(modulePath);
  }
  return (modulePath) => names.some((name) => modulePath === name || modulePath.endsWith(`.${name}`));
}

/**
 * Whether PEFT put an adapter on a module, by its path (model.layers.3.mlp.up_proj). As PEFT matches them,
 * layers_to_transform limits the names a path ends in, not a path given whole nor a pattern.
 */
function peftAdapts(file: string, choice: PeftModuleChoice): (modulePath: string) => boolean {
  const excluded = choice.exclude === null ? () => false : namer(file, choice.exclude);
  const targets = choice.targets === 'all-linear' ? LORA_TARGETS : choice.targets;
  const named = namer(file, targets);
  const { layers } = choice;
  return (modulePath) => {
    if (excluded(modulePath) || !named(modulePath)) return false;
    if (!Array.isArray(targets) || targets.includes(modulePath) || layers === null) return true;
    const layer = /^model\.layers\.(\d+)\./.exec(modulePath)?.[1];
    return layer !== undefined && layers.includes(Number(layer));
  };
}

/**
 * Attaches fresh adapters (A ~ U(−1/√in, 1/√in) as PEFT's Kaiming init, B = 0, so the model is unchanged
 * at first) and freezes every base parameter. Returns the trainable adapter parameters.
 */
export function attachLora(model: Qwen2Model, cfg: LoraConfig, rng: Rng): Tensor[] {
  if (!(cfg.rank > 0) || !Number.isInteger(cfg.rank))
    throw new Error(`LoRA rank must be a positive integer, got ${cfg.rank}`);
  for (const p of model.parameters()) p.requiresGrad = false;
  const trainable: Tensor[] = [];
  for (const mod of loraModulePaths(model, cfg.targets)) {
    const w = model.params.get(`${mod}.weight`)!;
    const [out, inp] = w.shape;
    const bound = 1 / Math.sqrt(inp);
    const a = T.rand([cfg.rank, inp], rng, -bound, bound, true);
    const b = T.zeros([out, cfg.rank], true);
    a.name = `${mod}.lora_A.weight`;
    b.name = `${mod}.lora_B.weight`;
    model.adapters.set(mod, { a, b, scale: cfg.alpha / cfg.rank, dropout: cfg.dropout, merged: false });
    trainable.push(a, b);
  }
  return trainable;
}

/** The adapters' parameters in a stable order (A then B per module). */
export function loraParameters(model: Qwen2Model): Tensor[] {
  return [...model.adapters.values()].flatMap((ad) => [ad.a, ad.b]);
}

function foldInto(model: Qwen2Model, mod: string, ad: LoraAdapter, sign: 1 | -1): void {
  const w = model.params.get(`${mod}.weight`)!;
  if (w.dtype !== 'f32') {
    const held = `${w.describe()}, held in ${w.dtype}`;
    throw new Error(`merging a LoRA adapter into ${held}, would round it; load the model with precision 'f32'`);
  }
  const ba = T.kernels().alloc(w.size);
  T.kernels().gemm({
    a: ad.b.buf,
    b: ad.a.buf,
    c: ba,
    batch: 1,
    m: w.shape[0],
    n: w.shape[1],
    k: ad.a.shape[0],
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    accumulate: false,
  });
  T.kernels().axpby(sign * ad.scale, ba, 1, w.buf);
}

/** Folds every adapter into its base weight; the forward pass then costs nothing extra. */
export function mergeLora(model: Qwen2Model): void {
  for (const [mod, ad] of model.adapters)
    if (!ad.merged) {
      foldInto(model, mod, ad, 1);
      ad.merged = true;
    }
}

/** Takes merged adapters back out of the base weights. */
export function unmergeLora(model: Qwen2Model): void {
  for (const [mod, ad] of model.adapters)
    if (ad.merged) {
      foldInto(model, mod, ad, -1);
      ad.merged = false;
    }
}

/** Writes adapter_config.json and adapter_model.safetensors in PEFT's layout. */
export async function saveLoraAdapter(dir: string, model: Qwen2Model, cfg: LoraConfig, baseModel = ''): Promise<void> {
  await makeFolder(dir);
  const peftConfig = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: cfg.rank,
    lora_alpha: cfg.alpha,
    lora_dropout: cfg.dropout,
    target_modules: cfg.targets,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    use_rslora: false,
    modules_to_save: null,
  };
  await writeTextFileAtomically(path.join(dir, 'adapter_config.json'), JSON.stringify(peftConfig, null, 2) + '\n');
  const tensors: [string, TensorData][] = [...model.adapters].flatMap(([mod, ad]): [string, TensorData][] => [
    [`${PEFT_PREFIX}${mod}.lora_A.weight`, { shape: [...ad.a.shape], data: ad.a.read() }],
    [`${PEFT_PREFIX}${mod}.lora_B.weight`, { shape: [...ad.b.shape], data: ad.b.read() }],
  ]);
  await saveSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
}

/**
 * Reads a PEFT LoRA adapter folder and attaches it to the model (base frozen), on the modules PEFT put it on
 * (target_modules, layers_to_transform, exclude_modules): the returned targets name them, model.adapters holds
 * them by path.
 */
export async function loadLoraAdapter(
  dir: string,
  model: Qwen2Model,
  opts: { trainable?: boolean } = {},
): Promise<LoraConfig> {
  const peft = await readPeftLoraConfig(dir);
  // a name, or a module's path (model.layers.0.self_attn.q_proj), whose last part is a linear layer's name
  const unknown = peft.targets?.find((t) => !(LORA_TARGETS as readonly string[]).includes(t.split('.').pop()!));
  if (unknown !== undefined)
    throw new ModelFileError(
      peft.file,
      `target module "${unknown}" is not a Qwen2 linear layer; the layers are ${LORA_TARGETS.join(', ')}.`,
    );
  const layerCount = model.config.numHiddenLayers;
  const beyond = peft.modules.layers?.find((l) => l >= layerCount);
  if (beyond !== undefined)
    throw new ModelFileError(
      peft.file,
      `"layers_to_transform" names layer ${beyond}, and the base model has ${layerCount} (0 to ${layerCount - 1}): ` +
        'the adapter was made for another model.',
    );
  const linear = loraModulePaths(model, LORA_TARGETS);
  const modules = linear.filter(peftAdapts(peft.file, peft.modules));
  if (modules.length === 0)
    throw new ModelFileError(peft.file, `its modules (target_modules, exclude_modules) leave no layer adapted.`);
  const cfg: LoraConfig = {
    rank: peft.rank,
    alpha: peft.alpha,
    dropout: peft.dropout,
    targets: LORA_TARGETS.filter((t) => modules.some((m) => m.endsWith(`.${t}`))),
  };
  const weightsFile = path.join(dir, 'adapter_model.safetensors');
  if (!existsSync(weightsFile))
    throw new ModelFileError(weightsFile, 'is missing; a LoRA adapter folder needs adapter_model.safetensors.');
  const weights = await loadSafetensors(weightsFile);
  const unused = new Set(weights.keys());
  for (const p of model.parameters()) p.requiresGrad = false;
  for (const mod of modules) {
    const get = (part: 'A' | 'B', shape: number[]): Tensor => {
      const name = `${PEFT_PREFIX}${mod}.lora_${part}.weight`;
      const t = weights.get(name);
      if (!t) throw new ModelFileError(weightsFile, `tensor "${name}" is missing.`);
      unused.delete(name);
      checkFiniteWeight({ name, shape: t.shape, data: t.data, file: weightsFile });
      if (t.shape.join() !== shape.join())
        throw new ModelFileError(
          weightsFile,
          `tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}].`,
        );
      return new T.Tensor(t.data, t.shape, opts.trainable ?? false, `${mod}.lora_${part}.weight`);
    };
    const [out, inp] = model.params.get(`${mod}.weight`)!.shape;
    model.adapters.set(mod, {
      a: get('A', [cfg.rank, inp]),
      b: get('B', [out, cfg.rank]),
      scale: peft.rslora ? cfg.alpha / Math.sqrt(cfg.rank) : cfg.alpha / cfg.rank,
      dropout: cfg.dropout,
      merged: false,
    });
  }
  const [extra] = unused;
  if (extra === undefined) return cfg;
  const onLinear = linear.some((m) => extra.startsWith(`${PEFT_PREFIX}${m}.`));
  throw new ModelFileError(
    weightsFile,
    onLinear
      ? `tensor "${extra}" is not on a module that ${PEFT_CONFIG_FILE}'s target_modules names; ` +
          `the adapter would be loaded without it.`
      : `tensor "${extra}" is on a module an adapter here cannot be on: only Qwen2's linear layers ` +
          `(${LORA_TARGETS.join(', ')}) take one.`,
  );
}
