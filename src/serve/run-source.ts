/**
 * What the run dashboard (/runs, routes/runs.ts) reads: training runs and their metrics, as a source
 * the server is given. The server does not read run folders itself (that is the training layer's
 * format); `search-r3 serve --runs` and `search-r3 dashboard` pass train/run-watch.ts's RunWatch.
 */
export interface RunSummary {
  /** Stable while the server runs; names the run in /v1/runs/{id}. */
  id: string;
  /** The run's folder as given on the command line, with the stage for a recipe's runs. */
  name: string;
  /** lm, sft or rl when the run says (its config or records), else null. */
  stage: string | null;
}

export interface RunEvaluation {
  /** Where the table comes from (a recipe's evaluation). */
  title: string;
  /** The tables as the recipe wrote them (Markdown). */
  markdown: string;
}

export interface RunList {
  runs: RunSummary[];
  evaluations: RunEvaluation[];
  /** One sentence per problem found (a folder that vanished, a file that cannot be read). */
  problems: string[];
}

export interface RunUpdate {
  id: string;
  /** The metrics records from byte `from` of metrics.jsonl on, in order. */
  records: Record<string, unknown>[];
  /** Where the next read starts (bytes, after the last complete line read). */
  next: number;
  /** Identifies the metrics.jsonl read: when it changes (a resumed run rewrites the file), read from 0. */
  file: string;
  /** The file changed since `from` was given: `records` start again from its beginning. */
  reset: boolean;
  /** More complete lines wait beyond `next` (a large file is read in parts). */
  more: boolean;
  /** Lines in this part that are not a metrics record (a damaged file). */
  damagedLines: number;
  /** Bytes after the last newline: a line still being written, or one cut short by a crash. */
  incompleteBytes: number;
  /** The run's resolved config, or null when the folder has none. */
  config: unknown;
  /** Why the config or the metrics cannot be shown (one sentence), or null. */
  problem: string | null;
}

export interface RunSource {
  list(): RunList;
  /** The run's records from byte `from` of the file `file` (as a previous update named it). */
  read(id: string, from: number, file: string | null): RunUpdate | undefined;
}
