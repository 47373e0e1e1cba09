/**
 * Training runs as a dashboard reads them while they train: a run folder (metrics.jsonl, run-config.json),
 * or a recipe's work folder (recipe.json), whose stages lm, stage1 and stage2 are runs and whose
 * evaluation/evaluation.md holds the evaluation tables. metrics.jsonl is read from where the last read
 * stopped, by whole lines, so a reader polling a run that is writing sees each record once; damaged
 * lines are counted and skipped as every other reader of the file does (metrics-log.ts). What it returns
 * is the shape of serve/run-source.ts's RunSource (the CLI hands a RunWatch to the server as one).
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { resolvedPath } from '../io/path-relation.js';
import { parseMetrics } from './metrics-log.js';

/** The run's stage and resolved config, beside metrics.jsonl; training never reads it back. */
export const RUN_CONFIG_FILE = 'run-config.json';

/** The most bytes of metrics.jsonl one read returns (a long run's file is read in parts). */
export const METRICS_READ_LIMIT = 4 << 20;

/** A recipe work folder's training stages: sub-folder, the stage it trains, the config the recipe wrote. */
const RECIPE_STAGES: readonly (readonly [string, string])[] = [
  ['lm', 'lm'],
  ['stage1', 'sft'],
  ['stage2', 'rl'],
];

interface WatchedRun {
  id: string;
  name: string;
  folder: string;
  /** The stage a recipe folder says, before the run's own run-config.json exists. */
  stage: string | null;
  /** A recipe's config for the stage (configs/<sub>.json), used when the run folder has none. */
  recipeConfig: string | null;
}

/** The byte at `position` of the open file. */
function byteAt(fd: number, position: number): number {
  const b = Buffer.alloc(1);
  return readSync(fd, b, 0, 1, position) === 1 ? b[0]! : -1;
}

function readJson(file: string): { value: unknown; problem: string | null } {
  try {
    return { value: JSON.parse(readFileSync(file, 'utf8')), problem: null };
  } catch (e) {
    const why = e instanceof SyntaxError ? 'is not valid JSON' : 'cannot be read';
    return { value: null, problem: `${path.basename(file)} ${why} (${(e as Error).message})` };
  }
}

export class RunWatch {
  private readonly byFolder = new Map<string, WatchedRun>();
  private readonly names = new Set<string>();

  /** `folders`: run folders and recipe work folders, as the user named them. */
  constructor(private readonly folders: readonly string[]) {}

  /** The runs (a recipe's stages appear as they start), its evaluation tables, and what cannot be read. */
  list() {
    const { runs, evaluationFiles, problems } = this.scan();
    const evaluations: { title: string; markdown: string }[] = [];
    for (const { title, file, label } of evaluationFiles) {
      try {
        evaluations.push({ title, markdown: readFileSync(file, 'utf8') });
      } catch (e) {
        const why =
          (e as NodeJS.ErrnoException).code === 'EISDIR' ? 'is not a file' : `cannot be read (${(e as Error).message})`;
        problems.push(`${label}: ${path.basename(file)} ${why}, so its evaluation is not shown.`);
      }
    }
    return { runs: runs.map((r) => ({ id: r.id, name: r.name, stage: this.stageOf(r) })), evaluations, problems };
  }

  /** The runs in the folders as they are now (each gets its id when first seen) and the evaluation tables. */
  private scan() {
    const runs: WatchedRun[] = [];
    const evaluationFiles: { title: string; file: string; label: string }[] = [];
    const problems: string[] = [];
    // a run pushed once: one folder by two paths (a symbolic link, ./run and run/), or a run folder that is also
    // a stage of a recipe folder given beside it, is one run
    const add = (run: WatchedRun): void => {
      if (!runs.includes(run)) runs.push(run);
    };
    const scanned = new Set<string>();
    for (const given of this.folders) {
      const folder = resolvedPath(given);
      if (scanned.has(folder)) continue;
      scanned.add(folder);
      const label = path.basename(folder);
      if (!existsSync(folder)) {
        problems.push(`the run folder '${label}' does not exist.`);
        continue;
      }
      if (existsSync(path.join(folder, 'recipe.json'))) {
        for (const [sub, stage] of RECIPE_STAGES) {
          if (!existsSync(path.join(folder, sub))) continue;
          const recipeConfig = path.join(folder, 'configs', `${sub}.json`);
          add(this.watch(path.join(folder, sub), `${label}/${sub}`, stage, recipeConfig));
        }
        const md = path.join(folder, 'evaluation', 'evaluation.md');
        if (existsSync(md)) evaluationFiles.push({ title: `${label}: recipe evaluation`, file: md, label });
        // a model folder the recipe wrote holds its recipe.json too, and its evaluation at the top
        const own = path.join(folder, 'evaluation.md');
        if (existsSync(own)) evaluationFiles.push({ title: `${label}: evaluation`, file: own, label });
      } else {
        add(this.watch(folder, label, null, null));
        const md = path.join(folder, 'evaluation.md');
        if (existsSync(md)) evaluationFiles.push({ title: `${label}: evaluation`, file: md, label });
      }
    }
    return { runs, evaluationFiles, problems };
  }

  /**
   * Records of run `id` from byte `from` of its metrics.jsonl on; `file` is the identity an earlier read
   * returned (null at first): when the file was replaced since, reading starts again at its beginning.
   */
  read(id: string, from: number, file: string | null) {
    const find = (): WatchedRun | undefined => [...this.byFolder.values()].find((r) => r.id === id);
    // ids are given as folders are first seen: a page opened at a run's address may come before any list
    if (!find()) this.scan();
    const run = find();
    if (!run) return undefined;
    const { config, problem: configProblem } = this.config(run);
    const empty = {
      id,
      records: [],
      next: 0,
      file: '',
      reset: false,
      more: false,
      damagedLines: 0,
      incompleteBytes: 0,
    };
    const metrics = path.join(run.folder, 'metrics.jsonl');
    if (!existsSync(metrics)) {
      const problem = `${run.name} has no metrics.jsonl yet (the run has not logged a step).`;
      return { ...empty, config, problem: configProblem ?? problem };
    }
    let fd: number;
    try {
      fd = openSync(metrics, 'r');
    } catch (e) {
      return { ...empty, config, problem: `${run.name}/metrics.jsonl cannot be read (${(e as Error).message}).` };
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) return { ...empty, config, problem: `${run.name}/metrics.jsonl is not a file.` };
      const identity = `${st.dev}:${st.ino}`;
      const reset = (file !== null && file !== identity) || from > st.size || from < 0;
      const start = reset ? 0 : from;
      const length = Math.min(st.size - start, METRICS_READ_LIMIT);
      const buf = Buffer.alloc(length);
      const got = length > 0 ? readSync(fd, buf, 0, length, start) : 0;
      const bytes = buf.subarray(0, got);
      // only a line too long for one read (skipped below as one damaged line) leaves `next` inside a line: a
      // read from there goes on after the line's end, not counting the rest of it as damaged again
      let begin = 0;
      if (start > 0 && byteAt(fd, start - 1) !== 0x0a) {
        const newline = bytes.indexOf(0x0a);
        begin = newline >= 0 ? newline + 1 : got === METRICS_READ_LIMIT ? got : 0;
      }
      let end = Math.max(begin, bytes.lastIndexOf(0x0a) + 1);
      let damaged = 0;
      // a single line longer than a whole read is no record: skip it as damaged rather than wait forever
      if (end === 0 && got === METRICS_READ_LIMIT) {
        end = got;
        damaged = 1;
      }
      const parsed = damaged
        ? { records: [], damagedLines: 0 }
        : parseMetrics(bytes.subarray(begin, end).toString('utf8'));
      const next = start + end;
      const more = got === METRICS_READ_LIMIT && next < st.size;
      return {
        id,
        records: parsed.records,
        next,
        file: identity,
        reset: reset && file !== null,
        more,
        damagedLines: parsed.damagedLines + damaged,
        incompleteBytes: more ? 0 : st.size - next,
        config,
        problem: configProblem,
      };
    } catch (e) {
      // one run's unreadable log is that run's problem; the other runs are still shown
      return { ...empty, config, problem: `${run.name}/metrics.jsonl cannot be read (${(e as Error).message}).` };
    } finally {
      closeSync(fd);
    }
  }

  private watch(folder: string, name: string, stage: string | null, recipeConfig: string | null): WatchedRun {
    const known = this.byFolder.get(folder);
    if (known) return known;
    let unique = name;
    for (let n = 2; this.names.has(unique); n++) unique = `${name} (${n})`;
    this.names.add(unique);
    const run = { id: `run${this.byFolder.size + 1}`, name: unique, folder, stage, recipeConfig };
    this.byFolder.set(folder, run);
    return run;
  }

  private stageOf(run: WatchedRun): string | null {
    const file = path.join(run.folder, RUN_CONFIG_FILE);
    if (!existsSync(file)) return run.stage;
    const { value } = readJson(file);
    const stage = (value as { stage?: unknown } | null)?.stage;
    return typeof stage === 'string' ? stage : run.stage;
  }

  /** The run's config: its run-config.json, else the recipe's config of its stage, else none. */
  private config(run: WatchedRun): { config: unknown; problem: string | null } {
    const own = path.join(run.folder, RUN_CONFIG_FILE);
    if (existsSync(own)) {
      const { value, problem } = readJson(own);
      const inner = (value as { config?: unknown } | null)?.config;
      return { config: inner ?? value, problem: problem && `${run.name}: ${problem}; the config is not shown.` };
    }
    if (run.recipeConfig && existsSync(run.recipeConfig)) {
      const { value, problem } = readJson(run.recipeConfig);
      return { config: value, problem: problem && `${run.name}: the recipe's ${problem}; the config is not shown.` };
    }
    return { config: null, problem: null };
  }
}
