/**
 * What of the datasets a recipe's training steps read, so that a machine without `../shared/data` (a GPU
 * machine lent for a few minutes, with a bounded upload) gets exactly those files and nothing it would
 * have to be trusted not to read. The list comes from the step configs themselves: a path a config names
 * is carried, never a hand-kept list that drifts from the profile.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RecipePaths, RecipeProfile } from './recipe-profiles.js';
import { beirFolderFile } from '../eval/beir.js';

/**
 * The files of a BEIR folder a training read opens: the corpus, the queries, and every split's qrels,
 * the test split's included, because a training split is filtered against the test queries' texts
 * (hold-out.ts) and silently is not when the test qrels are missing.
 */
function beirFolderFiles(folder: string): string[] {
  const files = (['corpus', 'queries'] as const).flatMap((f) => beirFolderFile(folder, f) ?? []);
  const qrels = path.join(folder, 'qrels');
  if (existsSync(qrels))
    for (const f of readdirSync(qrels).sort()) if (f.endsWith('.tsv')) files.push(path.join(qrels, f));
  return files;
}

/** Every string anywhere inside a config (paths are strings; other values are not paths). */
function* configStrings(v: unknown): Generator<string> {
  if (typeof v === 'string') yield v;
  else if (Array.isArray(v)) for (const x of v) yield* configStrings(x);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) yield* configStrings(x);
}

/**
 * The files under `p.data` that the steps lm, mine, stage1 and stage2 of `profile` read, relative to
 * `p.data`, sorted. A path a config names that does not exist is an error: the list would be short, and
 * the step would fail on the other machine, minutes into its lease, instead of here.
 */
export function trainingDataFiles(profile: RecipeProfile, p: RecipePaths): string[] {
  const data = path.resolve(p.data);
  const inData = (s: string): boolean => path.resolve(s).startsWith(data + path.sep);
  const files = new Set<string>();
  for (const cfg of [profile.lm(p), profile.mine(p), profile.stage1(p), profile.stage2(p)])
    for (const s of configStrings(cfg)) {
      if (!inData(s)) continue;
      if (!existsSync(s)) throw new Error(`${s} is named by the ${profile.name} profile but does not exist`);
      for (const f of statSync(s).isDirectory() ? beirFolderFiles(s) : [s]) files.add(path.relative(data, f));
    }
  return [...files].sort();
}
