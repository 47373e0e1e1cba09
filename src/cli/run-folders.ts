/**
 * The folders `search-r3 dashboard` and `serve --runs` show: each must exist and be a training run, a recipe
 * work folder or a folder with evaluation tables (or still be empty: a run that has not started shows as
 * waiting). RunWatch shows a folder named twice, by another path or as a stage of a recipe folder also given, once.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { UserError } from './command.js';
import type { RunSource } from '../serve/run-source.js';
import { RUN_FOLDER_ENTRIES } from '../train/training-run.js';
import { RunWatch } from '../train/run-watch.js';

/** What a training run writes, a recipe work folder's record, and the evaluation tables of a model's folder. */
const SHOWN = [...RUN_FOLDER_ENTRIES, 'recipe.json', 'evaluation.md'];

/** Why a folder is not a run to show, as the end of a sentence that begins with its name; null when it is one. */
function notARun(folder: string): string | null {
  const entries = readdirSync(folder);
  if (entries.length === 0 || entries.some((e) => SHOWN.includes(e))) return null;
  if (entries.includes('index.json')) return 'is a search index (index.json), not a training run';
  if (entries.includes('config.json'))
    return 'is a model folder (config.json) without evaluation.md, not a training run';
  return (
    'holds no run-config.json, metrics.jsonl or checkpoints/ of a training run, nor the recipe.json of a recipe ' +
    'or an evaluation.md'
  );
}

export function runWatch(folders: readonly string[]): RunSource {
  for (const f of folders) {
    if (!existsSync(f) || !statSync(f).isDirectory())
      throw new UserError(`${f} is not a folder; give a training run folder or a recipe work folder.`);
    const why = notARun(f);
    if (why)
      throw new UserError(
        `${f} ${why}; give the output folder of a search-r3 train run or a recipe work folder (recipe default --work).`,
      );
  }
  return new RunWatch(folders);
}
