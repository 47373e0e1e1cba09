/**
 * What scripts/v2-lease.sh asks of the recipe's code, one sub-command a question: the script then never
 * spells the code's API in strings that no compiler checks.
 *
 * usage (node dist/scripts/lease-queries.js …):
 *   measured                           true when GPU_BUDGET is measured, not assumed
 *   shards <work> <data> <profile>     the shards pretraining reads, relative to work
 *   data-files <work> <data> <profile> the dataset files the training steps read, relative to data
 *   f16 <from> <to>                    a model folder written again in F16
 */
import path from 'node:path';
import {
  PROFILES,
  type RecipeProfile,
  type RecipeProfileName,
  gpuSizing,
  recipePaths,
} from '../src/recipe/recipe-profiles.js';
import { trainingDataFiles } from '../src/recipe/training-data-files.js';
import { loadModelFolder, saveModelFolder } from '../src/model/model-folder.js';
import { parseLmConfig } from '../src/train/lm/config.js';

function profileOf(name: string): RecipeProfile {
  if (!(name in PROFILES)) throw new Error(`no recipe profile '${name}' (${Object.keys(PROFILES).join(', ')})`);
  return PROFILES[name as RecipeProfileName];
}

async function main(args: string[]): Promise<string> {
  const [what, ...rest] = args;
  if (what === 'measured') return String(gpuSizing().measured);
  if (what === 'shards' || what === 'data-files') {
    const [work, data, profile] = rest;
    const p = recipePaths(work, data);
    if (what === 'data-files') return trainingDataFiles(profileOf(profile), p).join('\n');
    const lm = parseLmConfig(profileOf(profile).lm(p), p.configs);
    return lm.data.train.map((f) => path.relative(p.work, f)).join('\n');
  }
  if (what === 'f16') {
    const [from, to] = rest;
    await saveModelFolder(to, await loadModelFolder(from), { dtype: 'F16' });
    return '';
  }
  throw new Error('usage: lease-queries.js measured | shards|data-files <work> <data> <profile> | f16 <from> <to>');
}

main(process.argv.slice(2)).then(
  (out) => {
    if (out !== '') console.log(out);
  },
  (e: unknown) => {
    console.error(`lease-queries: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
