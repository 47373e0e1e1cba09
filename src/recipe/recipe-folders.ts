/**
 * The recipe's folders checked before any step runs. The package step replaces --out whole, and a step that is
 * redone removes its output in the work folder, so neither may reach what the recipe did not make: --out is
 * a model folder (or new) apart from the work and data folders, and an output the record does not know as the
 * recipe's is refused, not removed.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileInTheWaySaid } from '../io/make-folder.js';
import { isWithin, resolvedPath } from '../io/path-relation.js';
import type { RecipePaths } from './recipe-profiles.js';

export class RecipeFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeFolderError';
  }
}

export interface StepOutput {
  step: string;
  /** The file or folder the step writes in the work folder. */
  output: string;
  done: boolean;
  /** The recipe's record shows it started or found this step: its output is the recipe's. */
  recorded: boolean;
}

export function checkWorkFolder(p: RecipePaths): void {
  const file = fileInTheWaySaid(p.work);
  if (file !== undefined) throw new RecipeFolderError(`--work ${p.work} ${file}; name a folder for the recipe's work`);
}

export function checkRecipeFolders(out: string, p: RecipePaths, outputs: readonly StepOutput[]): void {
  const o = resolvedPath(out),
    work = resolvedPath(p.work);
  const own = 'the package step replaces --out whole, so give the model a folder of its own';
  if (isWithin(work, o))
    throw new RecipeFolderError(`--out ${out} ${o === work ? 'is' : 'holds'} --work ${p.work}; ${own}`);
  if (isWithin(o, resolvedPath(p.data)) || isWithin(resolvedPath(p.data), o))
    throw new RecipeFolderError(`--out ${out} and the data folder ${p.data} overlap; ${own}`);
  for (const f of [...outputs.map((x) => x.output), p.configs, path.join(p.work, 'models')]) {
    if (isWithin(o, resolvedPath(f))) throw new RecipeFolderError(`--out ${out} lies in the recipe's ${f}; ${own}`);
  }
  // checked before the first step: the package step, hours later, is the first to make --out
  const file = fileInTheWaySaid(out);
  if (file !== undefined) throw new RecipeFolderError(`--out ${out} ${file}; name a folder for the model`);
  if (existsSync(out)) {
    if (readdirSync(out).length > 0 && !existsSync(path.join(out, 'config.json')))
      throw new RecipeFolderError(
        `--out ${out} holds files but no model (no config.json), and the package step would replace them all; ` +
          'name a new folder, or a model folder to replace',
      );
  }
  for (const x of outputs) {
    if (x.done || x.recorded || !existsSync(x.output)) continue;
    throw new RecipeFolderError(
      `${x.output} is in the way of step ${x.step}: it is not done, and ${path.join(p.work, 'recipe.json')} does ` +
        "not record it as the recipe's, so the recipe will not remove it; move it away (or delete it, if it " +
        'is what an earlier run of the recipe left)',
    );
  }
}
