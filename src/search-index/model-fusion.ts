/**
 * The hybrid fusion a model is searched with, kept in its folder as search-r3.json:
 *   {"schema": "search-r3/model-search@1", "fusion": {"denseWeight": 0.3, "k": 30, "chosenOn": "..."}}
 * It is chosen on dev splits (fusion-choice.ts) after training and belongs with the weights it was chosen for,
 * yet it changes no vector: the file is not part of the model's fingerprint, so writing it keeps every index built
 * with the model usable. A folder without it is searched with plain RRF (k = 60).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { ModelFileError } from '../model/model-file-error.js';
import type { HybridFusion } from './rrf.js';

export const MODEL_SEARCH_FILE = 'search-r3.json';
const SCHEMA = 'search-r3/model-search@1';

export interface ModelFusion extends HybridFusion {
  /** Which dev splits chose it, in words (for reports, /health and the reader of the file). */
  chosenOn: string;
}

/** Checks a parsed search-r3.json; throws one sentence naming the file and the field. */
function checkFusion(parsed: unknown, file: string): ModelFusion {
  const root = parsed as { schema?: unknown; fusion?: Record<string, unknown> } | null;
  if (typeof root !== 'object' || root === null || root.schema !== SCHEMA)
    throw new ModelFileError(file, `is not a search-r3 model search file (schema '${SCHEMA}' expected).`);
  const f = root.fusion;
  if (typeof f !== 'object' || f === null) throw new ModelFileError(file, "has no 'fusion' object.");
  const { denseWeight, k, chosenOn } = f;
  if (typeof denseWeight !== 'number' || !(denseWeight >= 0 && denseWeight <= 1))
    throw new ModelFileError(file, "field 'fusion.denseWeight' must be a number in [0, 1].");
  if (typeof k !== 'number' || !(Number.isFinite(k) && k >= 0))
    throw new ModelFileError(file, "field 'fusion.k' must be a finite number ≥ 0.");
  if (typeof chosenOn !== 'string') throw new ModelFileError(file, "field 'fusion.chosenOn' must be a string.");
  return { denseWeight, k, chosenOn };
}

/** The fusion stored in model folder `dir`, or undefined when it has none (a damaged file is an error). */
export function readModelFusion(dir: string): ModelFusion | undefined {
  const file = path.join(dir, MODEL_SEARCH_FILE);
  if (!existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new ModelFileError(file, 'is damaged: not valid JSON; delete it to search with plain RRF (k = 60).');
  }
  return checkFusion(parsed, file);
}

/** Stores `fusion` in model folder `dir` (atomically), replacing any earlier one. */
export async function writeModelFusion(dir: string, fusion: ModelFusion): Promise<void> {
  const file = path.join(dir, MODEL_SEARCH_FILE);
  const stored = { denseWeight: fusion.denseWeight, k: fusion.k, chosenOn: fusion.chosenOn };
  checkFusion({ schema: SCHEMA, fusion: stored }, file);
  await writeTextFileAtomically(file, JSON.stringify({ schema: SCHEMA, fusion: stored }, null, 2) + '\n');
}
