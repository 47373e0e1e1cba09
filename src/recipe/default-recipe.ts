/**
 * The default-model recipe: pretraining corpus → BPE tokenizer → causal-LM pretraining → hard-negative
 * mining → stage 1 (contrastive SFT) → stage 2 (GRPO in the RL environment) → packaging (F16 model
 * folders) → evaluation → model card.
 *
 * Each training step is the `search-r3` command a user could run by hand (its config is written to
 * <work>/configs/ first), run as a child process so every stage starts with a clean heap. A step is
 * done when its output exists; a killed step is resumed from its newest checkpoint. <work>/recipe.json
 * records what ran, with the wall time of every step (time spent before a kill included).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeDirAtomically, writeTextFileAtomically } from '../io/atomic-file.js';
import { sha256File } from '../io/checksums.js';
import { loadModelFolder, saveModelFolder } from '../model/model-folder.js';
import { qwen2ConfigToJSON } from '../model/qwen2-config.js';
import { MODEL_SEARCH_FILE, writeModelFusion } from '../search-index/model-fusion.js';
import { modelFingerprint } from '../model/model-fingerprint.js';
import { DEMO_VECTORS_FILE, type SeedVectorsInfo, seedVectorsInfo } from '../search-index/seed-vectors.js';
import { listCheckpoints } from '../train/checkpoint.js';
import { SESSION_ENDED } from '../train/training-run.js';
import { readPairsManifest } from '../train/sft/debian-pairs.js';
import { formatDuration } from '../train/progress.js';
import { RECIPE_EVALUATION_SCHEMA, type RecipeEvaluation } from './evaluate.js';
import { recipeCharts } from './recipe-charts.js';
import { checkProfileRules, devSampleNotHeldOut } from './recipe-check.js';
import { checkRecipeFolders, checkWorkFolder } from './recipe-folders.js';
import { SCIFACT_DEV, type RecipePaths, type RecipeProfile, trainShards } from './recipe-profiles.js';
import { stepsThatMayRun } from './step-plan.js';
import { makeFolder } from '../io/make-folder.js';
import { RecipeError } from './recipe-error.js';
import { type ConfigRecord, configRecord, memorySettingsSaid, stepConfig } from './step-config.js';
import { isJsonObject } from '../io/json-object.js';

export interface StepRecord {
  /** Wall seconds over every attempt (an attempt's time is saved while it runs). */
  seconds: number;
  done: boolean;
  finishedAt?: string;
  /** The command, for steps that run one. */
  command?: string;
  /** When this recipe first started the step: its output is the recipe's to replace. */
  startedAt?: string;
  /**
   * SHA-256 of what identifies the step's output (a corpus's manifest, a tokenizer's files, the mined file), for
   * steps whose output can be made again alike: made again the same, it leaves what read it current.
   */
  identity?: string;
  /**
   * The package step's: the fingerprint of the model folder it wrote, so that another model found at --out
   * (the shipped one, when a run's record comes back from a GPU machine) is not taken for this run's.
   */
  fingerprint?: string;
  /** For a step run from a config in <work>/configs/: the text the recipe wrote there, and the edits it keeps. */
  config?: ConfigRecord;
}

export interface RecipeState {
  profile: string;
  startedAt: string;
  steps: Record<string, StepRecord>;
}

export interface RecipeOptions {
  profile: RecipeProfile;
  paths: RecipePaths;
  /** The shipped model folder (stage 2, F16). */
  out: string;
  /**
   * Runs `search-r3 <argv>` and resolves to its exit code; rejects with RecipeInterrupted when the recipe
   * was asked to stop (the step's time is saved, and nothing after it runs).
   */
  runCommand: (argv: string[]) => Promise<number>;
  log: (line: string) => void;
  /** Seconds between saves of a running step's time (default 30). */
  heartbeatSeconds?: number;
  /**
   * Wall-clock end of this session (ms since the epoch): a training step gets the time left as its
   * --max-seconds and stops with a checkpoint; no step starts after it. The recipe then ends with
   * RecipeSessionEnded, and the same command continues in the next session.
   */
  sessionDeadline?: number;
  /** Run the steps up to this one, then stop (e.g. corpus and tokenizer on one machine, training on another). */
  until?: StepName;
}

/** The session's time is used up: finished steps and checkpoints are kept, and the next run continues. */
export class RecipeSessionEnded extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeSessionEnded';
  }
}

/**
 * The recipe was asked to stop (a signal): the step that ran stopped at its checkpoint, finished steps are
 * kept, and the same command continues.
 */
export class RecipeInterrupted extends Error {
  constructor(
    message: string,
    readonly signal: NodeJS.Signals,
  ) {
    super(message);
    this.name = 'RecipeInterrupted';
  }
}

interface Step {
  name: StepName;
  title: string;
  /** The steps whose outputs this one reads: it runs again when one of them made a different output. */
  needs: StepName[];
  isDone: (s: RecipeState) => boolean | Promise<boolean>;
  run: () => Promise<string | undefined>;
}

export const STEP_NAMES = [
  'corpus',
  'tokenizer',
  'lm',
  'mine',
  'stage1',
  'stage2',
  'package',
  'demo-vectors',
  'evaluate',
  'card',
] as const;
export type StepName = (typeof STEP_NAMES)[number];

/** What each step writes in the work folder (removed when an earlier step was redone). */
const OUTPUTS: Partial<Record<StepName, (p: RecipePaths) => string>> = {
  corpus: (p) => p.corpus,
  tokenizer: (p) => p.tokenizer,
  lm: (p) => p.lm,
  mine: (p) => p.mined,
  stage1: (p) => p.stage1,
  stage2: (p) => p.stage2,
  evaluate: (p) => p.evaluation,
};

/** The steps that write the model folder (--out): what the recipe delivers, made whenever it is not done. */
const DELIVERS: readonly StepName[] = ['package', 'demo-vectors', 'card'];

/** The files that identify a step's output, for the steps that can make it again alike (identity). */
const IDENTIFIED_BY: Partial<Record<StepName, (p: RecipePaths, profile: RecipeProfile) => string[]>> = {
  // the manifest holds every shard's SHA-256
  corpus: (p, profile) => [path.join(p.corpus, 'manifest.json'), ...(profile.pairsArgs ? [p.pairs] : [])],
  tokenizer: (p) =>
    (existsSync(p.tokenizer) ? readdirSync(p.tokenizer).sort() : []).map((f) => path.join(p.tokenizer, f)),
  mine: (p) => [p.mined],
};

async function outputIdentity(step: StepName, p: RecipePaths, profile: RecipeProfile): Promise<string | undefined> {
  const files = IDENTIFIED_BY[step]?.(p, profile);
  if (!files || files.length === 0 || !files.every((f) => existsSync(f) && statSync(f).isFile())) return undefined;
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${await sha256File(f)}  ${path.basename(f)}\n`);
  return hash.digest('hex');
}

/** The steps that read `name`'s output, directly or through other steps, in order. */
function readersOf(name: StepName, steps: readonly Step[]): StepName[] {
  const stale = new Set<StepName>([name]);
  for (const s of steps) if (s.needs.some((n) => stale.has(n))) stale.add(s.name);
  stale.delete(name);
  return [...stale];
}

/** The recipe's record shows it started or found the step, so its output is the recipe's to replace. */
const recordedAsOwn = (r: StepRecord | undefined): boolean =>
  r !== undefined && (r.startedAt !== undefined || r.finishedAt !== undefined || r.seconds > 0 || r.done);

const hasFile = (...p: string[]): boolean => existsSync(path.join(...p));

/** What the model folder's demo vectors hold; undefined without a readable file. */
async function demoVectors(modelDir: string): Promise<SeedVectorsInfo | undefined> {
  const file = path.join(modelDir, DEMO_VECTORS_FILE);
  return existsSync(file) ? seedVectorsInfo(file).catch(() => undefined) : undefined;
}

/** Whether the model folder's demo vectors were made by the model now in it (a damaged file was not). */
async function demoVectorsCurrent(modelDir: string): Promise<boolean> {
  return (await demoVectors(modelDir))?.model === (await modelFingerprint(modelDir));
}

/** The card's row for the demo vectors the model folder ships, if it does. */
async function demoVectorsRow(modelDir: string): Promise<string> {
  const info = await demoVectors(modelDir);
  if (!info) return '';
  const mib = (await fsp.stat(path.join(modelDir, DEMO_VECTORS_FILE))).size / 2 ** 20;
  return (
    `\n| demo vectors | ${DEMO_VECTORS_FILE}: this model's vectors of ${info.documents.toLocaleString('en')} of the ` +
    `SciFact abstracts \`search-r3 demo\` indexes (F32, ${mib.toFixed(1)} MiB), so that its first run encodes ` +
    'none of them |'
  );
}

/** The packaged stage-1 model (evaluated beside the shipped stage-2 one, at the same context). */
export const stage1ModelDir = (p: RecipePaths): string => path.join(p.work, 'models/stage1');

export async function runRecipe(o: RecipeOptions): Promise<RecipeState> {
  const { paths: p, profile } = o;
  // a config a trainer would refuse, or one that trains on an evaluated set, stops the run before any step
  checkProfileRules(profile, p);
  checkWorkFolder(p);
  const stateFile = path.join(p.work, 'recipe.json');
  const state = readState(stateFile, profile.name);
  // saves run one after another, each writing the state as it is then: a heartbeat still in flight can
  // never land after (and over) a later save
  let saving: Promise<void> = Promise.resolve();
  const save = (): Promise<void> =>
    (saving = saving.then(() => writeTextFileAtomically(stateFile, JSON.stringify(state, null, 2) + '\n')));

  /** Runs a step's command; `advice` is added to its refusal when it fails (what the recipe lets one change). */
  const command = async (argv: string[], advice = ''): Promise<string> => {
    const shown = `search-r3 ${argv.map((a) => (/^[\w./:,=@-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}`;
    o.log(`$ ${shown}`);
    const code = await o.runCommand(argv);
    if (code === SESSION_ENDED && argv.includes('--max-seconds'))
      throw new RecipeSessionEnded(
        `"${shown}" stopped at the session's time limit with a checkpoint; run the recipe again to continue`,
      );
    if (code !== 0)
      throw new RecipeError(
        `"${shown}" exited with code ${code}; fix the cause and run the recipe again (finished steps are ` +
          `kept, training resumes from its last checkpoint)${advice}`,
      );
    return shown;
  };
  /** Writes a step's config: the profile's, with the memory settings edited in the file before (step-config.ts). */
  const writeConfig = async (name: StepName, cfg: Record<string, unknown>): Promise<string> => {
    const file = path.join(p.configs, `${name}.json`);
    const rec = (state.steps[name] ??= { seconds: 0, done: false });
    const c = stepConfig(file, name, cfg, configRecord(rec.config));
    for (const line of c.notes) o.log(line);
    await writeTextFileAtomically(file, c.text);
    rec.config = c.record;
    await save();
    return file;
  };
  /** `train <stage>`, resuming when the run folder has a checkpoint, within the session's time when it has one. */
  const train = async (
    stage: string,
    name: StepName,
    cfg: Record<string, unknown>,
    output: string,
  ): Promise<string> => {
    const file = await writeConfig(name, cfg);
    const resume = existsSync(output) && listCheckpoints(path.join(output, 'checkpoints')).length > 0;
    const left = o.sessionDeadline !== undefined ? Math.floor((o.sessionDeadline - Date.now()) / 1000) : null;
    const limit = left !== null ? ['--max-seconds', String(Math.max(1, left))] : [];
    const memory = memorySettingsSaid(name, cfg);
    const advice = memory ? `; its memory settings (${memory}) may be edited in ${file}: the recipe keeps them` : '';
    return command(['train', stage, '--config', file, ...(resume ? ['--resume'] : []), ...limit], advice);
  };

  const steps: Step[] = [
    {
      name: 'corpus',
      needs: [],
      title: profile.pairsArgs
        ? 'pretraining text corpus, and stage-1 pairs from its Debian packages'
        : 'pretraining text corpus',
      isDone: () => hasFile(p.corpus, 'manifest.json') && (!profile.pairsArgs || existsSync(p.pairs)),
      run: async () => {
        const shown: string[] = [];
        if (!hasFile(p.corpus, 'manifest.json')) {
          await fsp.rm(p.corpus, { recursive: true, force: true });
          shown.push(await command(['corpus', 'build', '--data', p.data, '--out', p.corpus, ...profile.corpusArgs]));
        }
        if (profile.pairsArgs && !existsSync(p.pairs))
          shown.push(await command(['corpus', 'pairs', '--out', p.pairs, ...profile.pairsArgs]));
        return shown.join(' && ');
      },
    },
    {
      name: 'tokenizer',
      needs: ['corpus'],
      title: 'byte-level BPE tokenizer',
      isDone: () => hasFile(p.tokenizer, 'tokenizer_config.json'),
      run: () => {
        const shards = trainShards(p.corpus, profile.tokenizerShards);
        return command([
          'tokenizer',
          'train',
          ...shards.flatMap((f) => ['--input', f]),
          '--vocab-size',
          String(profile.vocabSize),
          '--out',
          p.tokenizer,
        ]);
      },
    },
    {
      name: 'lm',
      needs: ['corpus', 'tokenizer'],
      title: 'causal-LM pretraining',
      isDone: () => hasFile(p.lm, 'final', 'config.json'),
      run: () => train('lm', 'lm', profile.lm(p), p.lm),
    },
    {
      name: 'mine',
      needs: ['lm'],
      title: 'BM25 hard negatives for SciFact train',
      isDone: () => existsSync(p.mined),
      // mine makes the folder of its --out
      run: async () =>
        command([
          'mine',
          '--config',
          await writeConfig('mine', profile.mine(p)),
          '--out',
          p.mined,
          ...profile.mineArgs,
        ]),
    },
    {
      name: 'stage1',
      needs: profile.pairsArgs ? ['lm', 'mine', 'corpus'] : ['lm', 'mine'],
      title: 'stage 1: contrastive SFT',
      isDone: () => hasFile(p.stage1, 'final', 'config.json'),
      run: () => train('sft', 'stage1', profile.stage1(p), p.stage1),
    },
    {
      name: 'stage2',
      needs: ['stage1'],
      title: 'stage 2: GRPO in the RL environment',
      isDone: () => hasFile(p.stage2, 'final', 'config.json'),
      run: () => train('rl', 'stage2', profile.stage2(p), p.stage2),
    },
    {
      name: 'package',
      needs: ['stage1', 'stage2'],
      title: 'F16 model folders',
      isDone: async (s) =>
        s.steps.package?.done === true &&
        hasFile(o.out, 'config.json') &&
        s.steps.package.fingerprint === (await modelFingerprint(o.out)),
      run: async () => {
        await packageModel(path.join(p.stage1, 'final'), stage1ModelDir(p), profile.context, p.configs);
        await packageModel(path.join(p.stage2, 'final'), o.out, profile.context, p.configs);
        state.steps.package.fingerprint = await modelFingerprint(o.out);
        return undefined;
      },
    },
    {
      name: 'demo-vectors',
      needs: ['package'],
      title: "the demo's SciFact abstracts encoded, shipped with the model",
      isDone: async (s) => s.steps['demo-vectors']?.done === true && (await demoVectorsCurrent(o.out)),
      run: () => command(['demo', '--model', o.out, '--write-vectors', ...profile.demoVectorsArgs]),
    },
    {
      name: 'evaluate',
      needs: ['package'],
      title: 'evaluation (SciFact, NFCorpus, XQuAD)',
      isDone: (s) => s.steps.evaluate?.done === true && hasFile(p.evaluation, 'evaluation.json'),
      run: () =>
        command([
          'recipe',
          'evaluate',
          '--stage1',
          stage1ModelDir(p),
          '--stage2',
          o.out,
          '--out',
          p.evaluation,
          '--data',
          p.data,
          ...profile.evaluateArgs,
        ]),
    },
    {
      name: 'card',
      needs: ['corpus', 'package', 'demo-vectors', 'evaluate'],
      title: 'model card',
      isDone: (s) => s.steps.card?.done === true && hasFile(o.out, 'README.md'),
      run: async () => {
        await writeModelCard(o.out, p, profile, state);
        return undefined;
      },
    },
  ];

  const started = Date.now();
  const range = steps.slice(0, o.until === undefined ? steps.length : STEP_NAMES.indexOf(o.until) + 1);
  const done = new Map<StepName, boolean>();
  for (const step of range) done.set(step.name, await step.isDone(state));
  checkRecipeFolders(
    o.out,
    p,
    range.flatMap((s) => {
      const output = OUTPUTS[s.name]?.(p);
      if (!output) return [];
      return [{ step: s.name, output, done: done.get(s.name)!, recorded: recordedAsOwn(state.steps[s.name]) }];
    }),
  );
  // made once every folder is known to be fine: a refused recipe leaves none behind
  await makeFolder(p.configs);
  // what the steps found done made is recorded as the recipe's, identity included, before any step runs
  for (const step of range) {
    const rec = (state.steps[step.name] ??= { seconds: 0, done: false });
    if (!done.get(step.name)) continue;
    rec.done = true;
    rec.finishedAt ??= new Date().toISOString();
    rec.identity ??= await outputIdentity(step.name, p, profile);
  }
  await save();
  // the steps that ran in this run and made an output unlike the one before: what reads it is stale
  const changed = new Set<StepName>();
  for (const [i, step] of range.entries()) {
    const rec = state.steps[step.name]!;
    const output = OUTPUTS[step.name]?.(p);
    const ahead = range.slice(i).map((s) => ({
      name: s.name,
      needs: s.needs,
      done: done.get(s.name)!,
      target: DELIVERS.includes(s.name) || s.name === o.until,
    }));
    if (!stepsThatMayRun(ahead, changed).has(step.name)) {
      if (done.get(step.name)) {
        const took = rec.seconds > 0 ? ` in ${formatDuration(rec.seconds)}` : '';
        o.log(`✓ ${step.name} (${step.title}): done${took}`);
      } else {
        o.log(`– ${step.name} (${step.title}): its output is gone and no step left reads it, so it is not made again`);
      }
      continue;
    }
    if (o.sessionDeadline !== undefined && Date.now() >= o.sessionDeadline) {
      await save();
      throw new RecipeSessionEnded(
        `the session's time is used up before step ${step.name}; run the recipe again to continue`,
      );
    }
    rec.done = false;
    rec.startedAt ??= new Date().toISOString();
    await save();
    o.log(`▶ ${step.name}: ${step.title}`);
    // time already spent counts when the step continues its own output (a killed run resuming); a step
    // whose output is gone starts again from scratch, and so does its clock
    const t0 = Date.now(),
      base = output && !existsSync(output) ? 0 : rec.seconds;
    const beat = setInterval(
      () => {
        rec.seconds = base + (Date.now() - t0) / 1000;
        void save();
      },
      (o.heartbeatSeconds ?? 30) * 1000,
    );
    try {
      const shown = await step.run();
      if (shown) rec.command = shown;
    } finally {
      clearInterval(beat);
      rec.seconds = base + (Date.now() - t0) / 1000;
      await save();
    }
    const identity = await outputIdentity(step.name, p, profile);
    if (identity === undefined || identity !== rec.identity) {
      changed.add(step.name);
      // what reads this output is stale now, whether or not this run gets to it (--until, a session's end, a
      // kill): its output goes and its record says not done, so that the next run makes it again
      for (const d of readersOf(step.name, steps)) {
        // a step the record has never seen has made nothing of the recipe's to go stale
        const r = state.steps[d];
        if (r === undefined) continue;
        const out = OUTPUTS[d]?.(p);
        if (out && existsSync(out)) {
          o.log(`  ${d}: ${step.name} made anew, so ${out} is stale: removed`);
          await fsp.rm(out, { recursive: true, force: true });
        }
        r.seconds = 0;
        r.done = false;
        delete r.command;
        delete r.fingerprint;
        delete r.identity;
        done.set(d, false);
      }
      await save();
    } else o.log(`  ${step.name}: made again alike, so what reads it stays current`);
    rec.identity = identity;
    rec.done = true;
    rec.finishedAt = new Date().toISOString();
    done.set(step.name, true);
    await save();
    o.log(`✓ ${step.name} in ${formatDuration(rec.seconds)}`);
  }
  const total = Object.values(state.steps).reduce((a, r) => a + r.seconds, 0);
  const run = `${formatDuration((Date.now() - started) / 1000)} in this run`;
  if (o.until !== undefined && o.until !== STEP_NAMES[STEP_NAMES.length - 1])
    o.log(`recipe stopped after step ${o.until} (--until): ${formatDuration(total)} of step time in all (${run})`);
  else o.log(`recipe finished: ${formatDuration(total)} of step time in all (${run}); model in ${o.out}`);
  return state;
}

function readState(file: string, profile: string): RecipeState {
  if (!existsSync(file)) return { profile, startedAt: new Date().toISOString(), steps: {} };
  const again =
    'delete it to start the record again (finished training steps are still found; an output only the record ' +
    "marks as the recipe's, such as evaluation/, is then in the way: move it away too)";
  let s: RecipeState;
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as RecipeState;
  } catch (e) {
    throw new RecipeError(`${file} is not valid JSON (${(e as Error).message}); ${again}`);
  }
  if (!isJsonObject(s) || typeof s.profile !== 'string' || !isJsonObject(s.steps))
    throw new RecipeError(`${file} is not a recipe record (it needs "profile" and "steps"); ${again}`);
  if (s.profile !== profile)
    throw new RecipeError(
      `${path.dirname(file)} holds a "${s.profile}" recipe run; use another --work folder for the "${profile}" profile`,
    );
  // each step's record as the recipe writes it: one edited into another shape would fail every rerun
  for (const [name, r] of Object.entries(s.steps as Record<string, unknown>)) {
    const ok =
      isJsonObject(r) &&
      typeof r.seconds === 'number' &&
      Number.isFinite(r.seconds) &&
      typeof r.done === 'boolean' &&
      ['finishedAt', 'command', 'startedAt', 'identity', 'fingerprint'].every(
        (k) => r[k] === undefined || typeof r[k] === 'string',
      ) &&
      (r.config === undefined || isJsonObject(r.config));
    if (!ok)
      throw new RecipeError(`${file}: steps.${name} is not a step's record ({"seconds", "done", ...}); ${again}`);
  }
  return s;
}

/**
 * A trained model folder as shipped: F16 weights, and a context (max_position_embeddings) of the
 * longest sequence the model was trained on, so that nothing embeds text at positions it never saw.
 * The recipe's configs go with it (configs/): the record of what it was trained on, which recipe evaluate
 * reads to confirm that the dev sample it chooses the fusion on was held out.
 */
export async function packageModel(from: string, to: string, context: number, configs: string): Promise<void> {
  const m = await loadModelFolder(from);
  m.model.config.maxPositionEmbeddings = Math.min(m.model.config.maxPositionEmbeddings, context);
  await writeDirAtomically(to, async (tmp) => {
    await saveModelFolder(tmp, m, { dtype: 'F16' });
    await copyConfigs(configs, tmp);
  });
}

/** The recipe's step configs (*.json of `configs`) into `<dir>/configs/`. */
async function copyConfigs(configs: string, dir: string): Promise<void> {
  await makeFolder(path.join(dir, 'configs'));
  for (const f of readdirSync(configs))
    if (f.endsWith('.json')) await fsp.copyFile(path.join(configs, f), path.join(dir, 'configs', f));
}

interface ManifestSource {
  name: string;
  licence: string;
  attribution: string;
  documents: number;
  bytes: number;
}
interface CorpusManifest {
  sources: ManifestSource[];
  totals: { trainDocuments: number; trainBytes: number };
  train?: Array<{ file: string; documents: number; bytes: number }>;
}

/** The corpus step's manifest.json (sources, licences, totals), which the model card lists. */
function readCorpusManifest(file: string): CorpusManifest {
  const redo = `rebuild it with search-r3 corpus build into ${path.dirname(file)}, or restore it`;
  let m: Partial<CorpusManifest> | null;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Partial<CorpusManifest> | null;
  } catch (e) {
    throw new RecipeError(`${file} cannot be read (${(e as Error).message}); ${redo}`);
  }
  const sourceOk = (s: Partial<ManifestSource> | null): boolean =>
    typeof s?.name === 'string' && typeof s.documents === 'number';
  if (!Array.isArray(m?.sources) || !m.sources.every(sourceOk) || typeof m.totals?.trainDocuments !== 'number') {
    throw new RecipeError(`${file} is not a corpus manifest (no "sources" and "totals"); ${redo}`);
  }
  return m as CorpusManifest;
}

/** Licence and attribution of each dataset stage 1 may read, by its folder under the data folder. */
const FINE_TUNING_DATA: Array<{ folder: RegExp; licence: string; attribution: string }> = [
  {
    folder: /^scifact(\/|$)/,
    licence: 'CC BY-NC 2.0 (non-commercial)',
    attribution: 'SciFact, Wadden et al. 2020, AllenAI (train queries; documents for pseudo-queries)',
  },
  {
    folder: /^climate-fever(\/|$)/,
    licence: 'repository states none; evidence sentences are English Wikipedia text (CC BY-SA)',
    attribution: 'CLIMATE-FEVER, Diggelmann et al. 2020 (claims and their evidence)',
  },
  {
    folder: /^drcd(\/|$)/,
    licence: 'CC BY-SA 3.0',
    attribution: 'DRCD, Delta Research Center (dev questions; paragraphs for pseudo-queries; no test question)',
  },
  {
    folder: /^arcd(\/|$)/,
    licence: 'Arabic Wikipedia text (CC BY-SA); dataset repository MIT',
    attribution: 'ARCD, Mozannar et al. 2019 (train questions; paragraphs for pseudo-queries; no test question)',
  },
];

/**
 * One row per stage-1 data source: its examples (from the run's data record) and the licence of the dataset
 * it reads. The mined file is SciFact train with hard negatives from SciFact's corpus. A pairs file with a
 * manifest beside it (corpus pairs) gets a row per package it was made from, with that package's licence.
 */
export function fineTuningRows(p: RecipePaths, profile: RecipeProfile): string[] {
  const sources = (profile.stage1(p).data ?? []) as Array<{ type: string; path: string; queries?: string }>;
  let counts: number[] = [];
  const metrics = path.join(p.stage1, 'metrics.jsonl');
  if (existsSync(metrics)) {
    for (const line of readFileSync(metrics, 'utf8').split('\n', 20)) {
      try {
        const rec = JSON.parse(line) as { type?: string; perSource?: Array<{ examples: number }> };
        if (rec.type === 'data' && rec.perSource) {
          counts = rec.perSource.map((x) => x.examples);
          break;
        }
      } catch {
        // a damaged line leaves the counts out; the sources and licences are still known
      }
    }
  }
  return sources.flatMap((src, i) => {
    const n = counts[i] !== undefined ? counts[i].toLocaleString('en') : '—';
    const pairs = src.type === 'jsonl' ? readPairsManifest(src.path) : null;
    if (pairs) {
      const rel = path.relative(p.work, src.path).split(path.sep).join('/');
      const kinds = { term: 'term → definition', heading: 'heading → section' } as const;
      return [
        `| jsonl: ${rel} (\`search-r3 corpus pairs\`, seed ${pairs.seed}) | ${n} | per package, below | ` +
          "Debian text packages (the corpus's own) |",
        ...pairs.sources.map(
          (s) => `| ↳ ${s.name}: ${kinds[s.kind]} | ${s.kept.toLocaleString('en')} | ${s.licence} | ${s.attribution} |`,
        ),
      ];
    }
    const rel =
      src.path === p.mined
        ? 'scifact/train (BM25-mined hard negatives)'
        : path.relative(p.data, src.path).split(path.sep).join('/');
    const known = FINE_TUNING_DATA.find((d) => d.folder.test(rel));
    const what = `${src.type}${src.queries ? ` (${src.queries})` : ''}: ${rel}`;
    return [`| ${what} | ${n} | ${known?.licence ?? 'see the dataset'} | ${known?.attribution ?? rel} |`];
  });
}

/**
 * When pretraining read only some of the corpus's train shards (a profile whose text must travel to another
 * machine), what it read: the shards are a seeded shuffle of every source, so each source is there in
 * proportion.
 */
function shardsRead(m: CorpusManifest, lm: Record<string, unknown>): string {
  const listed = ((lm.data as { train?: string[] } | undefined)?.train ?? []).map((f) => path.basename(f));
  const all = m.train ?? [];
  const read = all.filter((t) => listed.includes(t.file));
  if (all.length === 0 || read.length === all.length) return '';
  const docs = read.reduce((a, t) => a + t.documents, 0),
    bytes = read.reduce((a, t) => a + t.bytes, 0);
  return (
    `; pretraining read ${read.length} of its ${all.length} train shards (a seeded shuffle of every source): ` +
    `${docs.toLocaleString('en')} documents, ${(bytes / 1e6).toFixed(1)} MB`
  );
}

/**
 * The fusion the evaluation chose on dev sets, stored with the model for hybrid search. An evaluation without one
 * leaves no search-r3.json, so a stale one cannot outlive it; so does one of an earlier schema, whose fusion is
 * none (@1) or may have been chosen on queries the model trained on (@2).
 */
async function storeFusion(out: string, evaluationJson: string): Promise<void> {
  const e = existsSync(evaluationJson)
    ? (JSON.parse(readFileSync(evaluationJson, 'utf8')) as Partial<RecipeEvaluation>)
    : undefined;
  const fusion = e?.schema === RECIPE_EVALUATION_SCHEMA ? e.fusion : undefined;
  if (fusion) await writeModelFusion(out, fusion);
  else await fsp.rm(path.join(out, MODEL_SEARCH_FILE), { force: true });
}

/** README.md (the model card), with the evaluation and the recipe record copied beside it. */
export async function writeModelCard(
  out: string,
  p: RecipePaths,
  profile: RecipeProfile,
  state: RecipeState,
): Promise<void> {
  // through the model folder's loader, so a damaged config.json is one sentence naming it
  const model = (await loadModelFolder(out)).model;
  const config = qwen2ConfigToJSON(model.config) as Record<string, number | string | boolean>;
  const manifest = readCorpusManifest(path.join(p.corpus, 'manifest.json'));
  const evalMd = existsSync(path.join(p.evaluation, 'evaluation.md'))
    ? readFileSync(path.join(p.evaluation, 'evaluation.md'), 'utf8')
    : '(not evaluated)\n';
  for (const f of ['evaluation.md', 'evaluation.json'])
    if (existsSync(path.join(p.evaluation, f))) await fsp.copyFile(path.join(p.evaluation, f), path.join(out, f));
  await storeFusion(out, path.join(p.evaluation, 'evaluation.json'));
  // the configs first: what the card says about the dev sample is what they record
  await copyConfigs(p.configs, out);
  const devSample =
    devSampleNotHeldOut(out) === null
      ? `, nor the SciFact train queries the evaluation chooses the hybrid's fusion on (a seeded sample of ` +
        `${SCIFACT_DEV.sample.n}, held out of mining, stage 1 and stage 2)`
      : "; SciFact train's queries are trained on without holding out the evaluation's dev sample of them, " +
        "so the hybrid's fusion is chosen on NFCorpus dev alone";
  const params = model.parameters().reduce((a, t) => a + t.size, 0);
  const sourceRow = (s: (typeof manifest.sources)[number]): string =>
    `| ${s.name} | ${s.documents.toLocaleString('en')} | ${s.licence} | ${s.attribution} |`;
  const row = (name: string): string => {
    const r = state.steps[name];
    const command = r?.command ? `\`${r.command.replace(/\|/g, '\\|')}\`` : '(in-process)';
    return `| ${name} | ${command} | ${r ? formatDuration(r.seconds) : '—'} |`;
  };
  const total = Object.values(state.steps).reduce((a, r) => a + r.seconds, 0);
  const charts = recipeCharts(p);
  const reasoning = profile.stage1(p).reasoning as { fraction?: number } | undefined;
  const stage1Reasoning =
    reasoning?.fraction !== undefined
      ? `; a share of ${reasoning.fraction} of its queries learns a short analysis (key concepts from the query ` +
        "found in its positive, and the positive's top terms) before the embed token"
      : '';
  await makeFolder(path.join(out, 'charts'));
  for (const c of charts) await writeTextFileAtomically(path.join(out, 'charts', c.file), c.svg);
  const card = `---
license: other
license_name: non-commercial (trained on SciFact, CC BY-NC 2.0)
library_name: search-r3
pipeline_tag: feature-extraction
tags: [search-r3, qwen2, embeddings, retrieval]
---
# search-r3-default

The default model of [search-r3](../../README.md): a ${(params / 1e6).toFixed(2)} M-parameter Qwen2-architecture
decoder that analyses a query, then emits \`<|embed_token|>\`; the final hidden state at that token is the
${config.hidden_size}-dimensional search embedding (cosine similarity). Trained from random weights on this
machine by search-r3 itself, with \`npm run train:default\` (profile \`${profile.name}\`).
It is a small demonstration model, not a production retriever: read the evaluation below.

## Architecture
| | |
| --- | --- |
| layers × width | ${config.num_hidden_layers} × ${config.hidden_size} (MLP ${config.intermediate_size}, SwiGLU) |
| attention | ${config.num_attention_heads} query heads, ${config.num_key_value_heads} key/value heads, \
RoPE θ ${config.rope_theta} |
| vocabulary | ${config.vocab_size} (byte-level BPE trained on the corpus below, Qwen2.5 chat template) |
| context | ${config.max_position_embeddings} tokens (the longest sequence it was trained on; longer texts are cut) |
| embeddings | tied input/output |
| weights | model.safetensors, F16 |${await demoVectorsRow(out)}

## How it was made
| step | command | wall time |
| --- | --- | --- |
${STEP_NAMES.map(row).join('\n')}
| **total** | | **${formatDuration(total)}** |

Configs: \`configs/\` beside this card (copies of the recipe's). Stage 1 trains on the sources listed
under *Data and licences* (pseudo-queries: a title asks for its body, or one sentence for the rest of its
document)${stage1Reasoning}. Stage 2 runs GRPO on SciFact train queries with a retrieval reward in the RL
environment. No test query of any dataset is trained on${devSample}. The SciFact and XQuAD *documents* are
in the pretraining text (documents only).${profile.sizeNote ? `\n\n${profile.sizeNote}` : ''}

${charts.map((c) => `![${c.title}](charts/${c.file})`).join('\n')}

## Data and licences
Pretraining text: ${manifest.totals.trainDocuments.toLocaleString('en')} documents, \
${(manifest.totals.trainBytes / 1e6).toFixed(1)} MB${shardsRead(manifest, profile.lm(p))}.

| source | documents | licence | attribution |
| --- | ---: | --- | --- |
${manifest.sources.map(sourceRow).join('\n')}

Fine-tuning (stage 1, then stage 2 on SciFact train):

| stage-1 source | examples | licence | attribution |
| --- | ---: | --- | --- |
${fineTuningRows(p, profile).join('\n')}

**Because SciFact is licensed for non-commercial use only, this model is for non-commercial use.** The
search-r3 code is MIT; retrain without SciFact (\`corpus build --only\`, other stage-1 data) for a model
without that restriction.

## Evaluation
${evalMd}`;
  await writeTextFileAtomically(path.join(out, 'README.md'), card);
  await writeTextFileAtomically(path.join(out, 'recipe.json'), JSON.stringify(state, null, 2) + '\n');
}
