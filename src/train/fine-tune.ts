/**
 * The model a fine-tuning stage trains, stage 1 and stage 2 alike: a model folder, with <|embed_token|>
 * added when its vocabulary lacks it, trained through LoRA adapters (the base frozen) or in every weight;
 * the starting model is the KL reference when the loss has a KL term; the result is saved as an adapter
 * folder that records its base (path and fingerprint, so that every command can load it as a model), or as a
 * whole model folder.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EMBED_TOKEN, encodePrompt, type PromptTemplates } from '../embed/index.js';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { attachLora, loraParameters, saveLoraAdapter, type LoraConfig, type LoraTarget } from '../model/lora.js';
import { writeDirAtomically } from '../io/atomic-file.js';
import { addSpecialTokens, loadModelFolder, saveModelFolder } from '../model/model-folder.js';
import { type AdapterBase, modelFingerprint, recordAdapterBase } from '../model/model-fingerprint.js';
import { Qwen2Model } from '../model/qwen2-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { ConfigError, type LoraSettings } from './config-merge.js';

export interface FineTuned {
  model: Qwen2Model;
  tokenizer: Tokenizer;
  /** The starting model, frozen (null when no KL term needs it). */
  ref: Qwen2Model | null;
  /** The tensors the optimiser updates: the adapters, or every weight. */
  trainable: Tensor[];
  lora: LoraConfig | null;
  /** The folder trained on (absolute) and its fingerprint: an adapter's base. */
  base: AdapterBase;
}

/**
 * Loads `folder` for fine-tuning. With LoRA the adapters are drawn from `seed` and the reference is the
 * same base weights seen without them; without, the reference is a copy taken before training changes
 * the weights.
 */
export async function loadForFineTuning(
  folder: string,
  lora: LoraSettings | null,
  seed: number,
  withReference: boolean,
): Promise<FineTuned> {
  const loaded = await loadModelFolder(folder, { trainable: lora === null });
  const base = { dir: path.resolve(folder), fingerprint: await modelFingerprint(folder) };
  const tokenizer = loaded.tokenizer;
  let model = loaded.model;
  if (tokenizer.tokenToId(EMBED_TOKEN) === undefined) {
    model = addSpecialTokens({ model, tokenizer }, [EMBED_TOKEN]).model;
  }
  if (lora) {
    const { rank, alpha, dropout } = lora;
    const config: LoraConfig = { rank, alpha, dropout, targets: lora.targets as LoraTarget[] };
    attachLora(model, config, new T.Rng(seed));
    const ref = withReference ? new Qwen2Model(model.config, model.params) : null;
    return { model, tokenizer, ref, trainable: loraParameters(model), lora: config, base };
  }
  const ref = withReference ? frozenCopy(model) : null;
  for (const p of model.parameters()) p.requiresGrad = true;
  return { model, tokenizer, ref, trainable: model.parameters(), lora: null, base };
}

function frozenCopy(model: Qwen2Model): Qwen2Model {
  const copy = (v: Tensor, name: string): Tensor => new T.Tensor(T.kernels().clone(v.buf), v.shape, false, name);
  return new Qwen2Model(model.config, new Map([...model.params].map(([k, v]) => [k, copy(v, k)])));
}

/**
 * Writes the fine-tuned model to `dir` atomically: the adapter and tokenizer, or the whole model folder, and
 * `notes` (file name → text) beside them.
 */
export async function saveFineTuned(dir: string, m: FineTuned, notes: Record<string, string> = {}): Promise<void> {
  await writeDirAtomically(dir, async (tmp) => {
    for (const [name, text] of Object.entries(notes)) await fsp.writeFile(path.join(tmp, name), text);
    if (m.lora) {
      await saveLoraAdapter(tmp, m.model, m.lora, m.base.dir);
      await recordAdapterBase(tmp, m.base.fingerprint);
      await m.tokenizer.save(tmp);
    } else {
      await saveModelFolder(tmp, { model: m.model, tokenizer: m.tokenizer });
    }
  });
}

/** A reasoning budget, as checkReasoningRoom judges it against the context. */
export interface ReasoningRoom {
  /** The config key of the budget ("rollout.maxReasoningTokens"), and its tokens of analysis. */
  key: string;
  budget: number;
  /** Tokens of the response after the analysis: the embed token and what follows it. */
  after: number;
  /** The context a sequence has: the config's maxLength (`configured`), or the model's when smaller. */
  maxLength: number;
  configured: number;
  tokenizer: Tokenizer;
  templates: PromptTemplates;
}

/**
 * Refuses a reasoning budget that leaves a reasoning query's prompt no room beside its analysis in maxLength,
 * before any data is read or encoded: the first such query would otherwise fail, after the run folder is written.
 */
export function checkReasoningRoom(r: ReasoningRoom): void {
  const needs = encodePrompt(r.tokenizer, '', 'query', r.templates, Number.MAX_SAFE_INTEGER, true).ids.length;
  const left = r.maxLength - r.budget - r.after;
  // at least one token of query text has to fit beside the template
  if (needs < left) return;
  const capped = r.maxLength < r.configured;
  const of = capped
    ? `the model's context of ${r.maxLength} tokens (maxLength ${r.configured} is cut to it)`
    : `maxLength ${r.maxLength}`;
  throw new ConfigError(
    `"${r.key}" ${r.budget} leaves ${Math.max(0, left)} tokens of ${of} to the query prompt, whose template alone ` +
      `needs ${needs} and the query some more: lower ${r.key}${capped ? '' : ', or raise maxLength'}`,
  );
}
