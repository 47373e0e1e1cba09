/**
 * The JSON shape of a ranked document, shared by `search-r3 search --json` and POST /v1/search, so a
 * script can move between the CLI and the API without renaming fields: snake_case, as OpenAI's API is.
 */
import type { SearchHit } from './search-index.js';

export interface SearchHitJson {
  rank: number;
  id: string;
  score: number;
  title: string;
  text: string;
  metadata: Record<string, unknown> | null;
  dense_score?: number;
  bm25_score?: number;
}

/** `rank` is 1-based. */
export function searchHitJson(h: SearchHit, rank: number): SearchHitJson {
  return {
    rank,
    id: h.id,
    score: h.score,
    title: h.title,
    text: h.text,
    metadata: h.metadata ?? null,
    ...(h.denseScore !== undefined ? { dense_score: h.denseScore } : {}),
    ...(h.bm25Score !== undefined ? { bm25_score: h.bm25Score } : {}),
  };
}

/** What a reasoned query's answer adds to its JSON: the analysis, and whether the embed token was forced. */
export interface ReasoningJson {
  reasoning?: string;
  forced?: boolean;
}

/**
 * `reasoning` and `forced` when the query was reasoned about, nothing otherwise: with reasoning off there
 * was no analysis, and an empty string or `false` would claim one took place.
 */
export function reasoningJson(mode: 'on' | 'off', r: { reasoning: string; forced: boolean }): ReasoningJson {
  return mode === 'on' ? { reasoning: r.reasoning, forced: r.forced } : {};
}
