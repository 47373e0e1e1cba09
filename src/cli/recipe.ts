import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { subcommandError } from './subcommand.js';
import { positiveNumber } from './args.js';
import { SESSION_ENDED } from './train-session.js';
import * as T from '../tensor/index.js';
import { DEVICE_OPTION, deviceError, deviceHelp, parseDevice } from './device-option.js';
import { DEFAULT_DATA_DIR, DEFAULT_MODEL_DIR } from './package-paths.js';
import { RECIPE_EVALUATE_HELP, runRecipeEvaluate } from './recipe-evaluate.js';
import {
  RecipeInterrupted,
  RecipeSessionEnded,
  runRecipe,
  STEP_NAMES,
  type StepName,
} from '../recipe/default-recipe.js';
import { PROFILES, recipePaths, type RecipeProfileName } from '../recipe/recipe-profiles.js';
import { checkWorkFolder } from '../recipe/recipe-folders.js';
import { makeFolder, removeFoldersMadeSync } from '../io/make-folder.js';
import { PARENT_PID_VARIABLE } from './parent-watch.js';
import { awaitEarlierStep, clearStep, lockWorkFolder, recordStep, RUNNING_STEP_FILE } from './recipe-guard.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const HELP = `search-r3 recipe — how the default model is made

usage: search-r3 recipe default [--work <dir>] [--data <dir>] [--out <dir>] [--profile full|gpu|tiny] [--quiet]
         [--device auto|cpu|webgpu] [--session-seconds <n>] [--until <step>]
       search-r3 recipe evaluate --stage1 <dir> --stage2 <dir> --out <dir> [...]   (below)

recipe default (also: npm run train:default) trains search-r3's default model from random weights,
on this machine, in these steps:
  corpus     search-r3 corpus build: the pretraining text (documents of ../shared/data + Debian text);
             gpu profile: also search-r3 corpus pairs, stage 1's term → definition and heading → section
             pairs from the same Debian packages
  tokenizer  search-r3 tokenizer train: a byte-level BPE vocabulary (8,192 tokens)
  lm         search-r3 train lm: causal-LM pretraining (d 256, 6 layers, 1,600 × 4,096 tokens)
  mine       search-r3 mine: BM25 hard negatives for the SciFact train queries
  stage1     search-r3 train sft: contrastive SFT with <|embed_token|> (SciFact train, Climate-FEVER,
             pseudo-queries from SciFact documents)
  stage2     search-r3 train rl: GRPO with a retrieval reward in the RL environment (SciFact train)
  package    F16 model folders: <out> (stage 2) and <work>/models/stage1
  demo-vectors  search-r3 demo --write-vectors: <out>/demo-index/vectors.safetensors, the model's vectors
             of the SciFact abstracts the demo indexes, so that the demo's first run encodes none
  evaluate   search-r3 recipe evaluate: BM25, stage 1, stage 2 reasoning off/on, hybrid on SciFact
             test, NFCorpus test, XQuAD-en and XQuAD de/zh/ar → en, with paired p-values
  card       <out>/README.md: architecture, data and licences, commands, wall times, evaluation

Every step is resumable: run the same command again after a crash or Ctrl-C; finished steps are kept
and training continues from its newest checkpoint. A step runs again only when a step it reads made a
different output, or when its output is missing and a step that runs reads it (deleting the corpus or a
run folder after use costs nothing; the corpus, tokenizer and mined file made again alike redo nothing
after them). --out must be new, empty or a model folder, apart from --work; the recipe removes only what
<work>/recipe.json records as its own. SIGINT (Ctrl-C), SIGTERM or SIGHUP goes on to the step that runs
(training stops after its step in progress, with a checkpoint); the recipe waits for it, then exits with
code 128 + the signal's number. A recipe killed outright (SIGKILL) leaves its step to stop by itself as on
SIGTERM, and the next run waits for it; one recipe runs in a work folder at a time (<work>/recipe.lock).
Each step's config is in <work>/configs/, and <work>/recipe.json records the commands and wall times.
A step that ran out of memory continues with its memory settings edited there, which every later run
keeps (batch.subBatch of stage1, lm's batchSize and accumulation at the same product, stage2's
environment.maxTableBytes); any other edit of a config is refused, naming the keys.
The full profile takes a few hours on 2 cores.

options:
  --work <dir>      run folder (default: ./work/default-recipe, or ./work/default-recipe-tiny)
  --data <dir>      the datasets (default: ../shared/data beside this package)
  --out <dir>       the model folder to write (default: models/search-r3-default in this package;
                    with --profile tiny: <work>/model, so a toy model never replaces the shipped one)
  --profile <name>  full (the shipped model), gpu (the larger v2 model for a GPU machine lent in short
                    sessions: docs/default-model-v2.md) or tiny (the same steps at toy sizes, in seconds)
  --session-seconds <n>  stop within n seconds of wall time: a training step stops at a checkpoint
                    (train --max-seconds), no step starts later, and the recipe exits with code 75;
                    the same command continues where it stopped
  --until <step>    run the steps up to this one and stop (corpus and tokenizer here, training on a GPU
                    machine)
  --quiet           no progress output from the steps
${deviceHelp(20)}
                    (passed to the steps that compute: lm, mine, stage1, stage2, demo-vectors, evaluate)
  -h, --help        this help`;

/** The recipe's commands that run search-r3's engine, and so take --device. */
const COMPUTING = ['train', 'mine', 'demo', 'recipe'];

/** The signals that stop the recipe: Ctrl-C, kill, and a closed terminal. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs the recipe's steps as child processes (this Node, this CLI), one at a time. A signal to the recipe
 * goes on to the running step: spawn forwards none, so a killed recipe left its step training on, and a
 * rerun started a second trainer beside it. The step stops at its checkpoint, and the recipe after it.
 * SIGKILL cannot be passed on: the step is given the recipe's pid and stops by itself once the recipe is gone
 * (parent-watch.ts), and `record` names it meanwhile, so that the next run waits for it (recipe-guard.ts).
 */
export class StepRunner {
  private child: ChildProcess | null = null;
  private stopped: NodeJS.Signals | null = null;
  private readonly onSignal = (signal: NodeJS.Signals): void => this.stop(signal);

  constructor(
    private readonly quiet: boolean,
    private readonly device: string | undefined,
    private readonly log: (line: string) => void,
    private readonly record: string,
  ) {
    for (const s of STOP_SIGNALS) process.on(s, this.onSignal);
  }

  /** Gives the signals back to Node. */
  close(): void {
    for (const s of STOP_SIGNALS) process.off(s, this.onSignal);
  }

  /** Runs `search-r3 <argv>`: its exit code, or RecipeInterrupted when the recipe was asked to stop. */
  run(argv: string[]): Promise<number> {
    if (this.stopped !== null) return Promise.reject(this.interrupted(this.stopped, 'before', argv));
    const main = path.join(here, 'main.js');
    const args = [
      ...argv,
      ...(this.quiet ? ['--quiet'] : []),
      ...(this.device !== undefined && COMPUTING.includes(argv[0]) ? ['--device', this.device] : []),
    ];
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [main, ...args], {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, [PARENT_PID_VARIABLE]: String(process.pid) },
      });
      this.child = child;
      let unrecorded: unknown = null;
      try {
        if (child.pid !== undefined) recordStep(this.record, child.pid, `search-r3 ${argv.slice(0, 2).join(' ')}`);
      } catch (e) {
        // a step that no record names would be unseen by a rerun after a kill, which would start it a second time
        // beside it; spawned this instant, it has done nothing yet (and writes only through temporary files)
        unrecorded = e;
        child.kill('SIGKILL');
      }
      child.on('error', (e) => {
        this.child = null;
        clearStep(this.record);
        reject(e);
      });
      child.on('exit', (code, signal) => {
        this.child = null;
        clearStep(this.record);
        if (unrecorded !== null) reject(unrecorded);
        // a step that finished although asked to stop is done; the next one does not start
        else if (code !== 0 && this.stopped !== null) reject(this.interrupted(this.stopped, 'during', argv));
        else resolve(code ?? (signal ? 128 + osConstants.signals[signal] : 1));
      });
    });
  }

  private stop(signal: NodeJS.Signals): void {
    const first = this.stopped === null;
    this.stopped ??= signal;
    const child = this.child;
    if (child === null) {
      // between steps, or in one the recipe runs itself (its files are written atomically)
      this.log(`${signal}: stopped; finished steps are kept, run the same command again to continue`);
      process.exit(128 + osConstants.signals[signal]);
    }
    if (first) this.log(`${signal}: passed on to the running step; the recipe stops when it has`);
    child.kill(signal);
  }

  private interrupted(signal: NodeJS.Signals, when: 'before' | 'during', argv: string[]): RecipeInterrupted {
    return new RecipeInterrupted(
      `stopped by ${signal} ${when} search-r3 ${argv.slice(0, 2).join(' ')}; finished steps are kept, and ` +
        'training from its last checkpoint: run the same command again to continue',
      signal,
    );
  }
}

async function runDefault(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      work: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'string' },
      quiet: { type: 'boolean' },
      'session-seconds': { type: 'string' },
      until: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      ...DEVICE_OPTION,
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  // each step that computes takes the device and says which it got; a WebGPU that is not there is said now,
  // not after the corpus and tokenizer steps
  if (parseDevice(values.device) === 'webgpu') {
    try {
      T.checkWebgpuAvailable();
    } catch (e) {
      throw deviceError('webgpu', e, values.device);
    }
  }
  const profileName = (values.profile ?? 'full') as RecipeProfileName;
  if (!(profileName in PROFILES))
    throw new UserError(`--profile must be ${Object.keys(PROFILES).join(', ')} (got '${values.profile}').`);
  const session = values['session-seconds'];
  const sessionSeconds = positiveNumber(session, 'session-seconds', 'a number of seconds');
  const sessionDeadline = sessionSeconds !== undefined ? Date.now() + sessionSeconds * 1000 : undefined;
  const until = values.until as StepName | undefined;
  if (until !== undefined && !STEP_NAMES.includes(until))
    throw new UserError(`--until must name a step: ${STEP_NAMES.join(', ')} (got '${values.until}').`);
  const data = path.resolve(values.data ?? DEFAULT_DATA_DIR);
  if (!existsSync(path.join(data, 'scifact/corpus.jsonl'))) {
    throw new UserError(
      `${data} does not hold the datasets (scifact/corpus.jsonl is missing); pass --data <folder with ` +
        `scifact, nfcorpus, xquad, climate-fever, ...>.`,
    );
  }
  const work = path.resolve(
    values.work ?? (profileName === 'full' ? 'work/default-recipe' : `work/default-recipe-${profileName}`),
  );
  // a toy model never replaces the shipped one unless asked to
  const out = path.resolve(values.out ?? (profileName === 'full' ? DEFAULT_MODEL_DIR : path.join(work, 'model')));
  const log = (line: string): void => {
    process.stderr.write(`[recipe ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  };
  const paths = recipePaths(work, data);
  checkWorkFolder(paths);
  const made = await makeFolder(work);
  // one recipe per work folder, for its whole run; a killed one's lock is stale and taken over
  const lock = lockWorkFolder(work);
  const record = path.join(work, RUNNING_STEP_FILE);
  const steps = new StepRunner(values.quiet ?? false, values.device, log, record);
  try {
    await awaitEarlierStep(record, log);
    await runRecipe({
      profile: PROFILES[profileName],
      paths,
      out,
      runCommand: (a) => steps.run(a),
      log,
      ...(sessionDeadline !== undefined ? { sessionDeadline } : {}),
      ...(until !== undefined ? { until } : {}),
    });
  } catch (e) {
    if (e instanceof RecipeInterrupted) {
      log(e.message);
      return 128 + osConstants.signals[e.signal];
    }
    if (!(e instanceof RecipeSessionEnded)) throw e;
    log(e.message);
    console.log(`session ended (--session-seconds ${session}); record in ${path.join(work, 'recipe.json')}`);
    return SESSION_ENDED;
  } finally {
    steps.close();
    lock.release();
    // a recipe refused before its first step (its folders checked) leaves no empty work folder behind
    removeFoldersMadeSync(work, made);
  }
  const state = path.join(work, 'recipe.json');
  if (until !== undefined && until !== 'card')
    console.log(`steps up to ${until} done (--until); record in ${state}; the same command without --until continues`);
  else console.log(`default model written to ${out} (steps: ${STEP_NAMES.join(' → ')}); record in ${state}`);
  return 0;
}

export const recipeCommand: Command = {
  help: `${HELP}\n\n${RECIPE_EVALUATE_HELP}`,
  subcommands: ['default', 'evaluate'],
  async run(argv: string[]): Promise<number> {
    const [sub, ...rest] = argv;
    if (sub === 'default') return runDefault(rest);
    if (sub === 'evaluate') return runRecipeEvaluate(rest);
    throw subcommandError('recipe', sub, recipeCommand.subcommands!);
  },
};
