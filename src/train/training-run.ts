/**
 * The run folder and the training loop that train lm, train sft and train rl share; each trainer brings
 * only its own model, data and loss.
 *
 * A run opens in two steps, so that nothing in its folder but its lock is written before --resume has read
 * and checked a checkpoint, and so that the trainer can load its model and data in between:
 *   RunFolder.open  takes the folder's lock (train.lock: one trainer per folder, else their checkpoints
 *                   and logs interleave), refuses a fresh run into a folder that has checkpoints (or an
 *                   output that is a file), and any run into another stage's folder; on --resume it reads
 *                   the newest intact checkpoint (RunFolderError when none is) and refuses settings other
 *                   than those the run started with (run-record.ts);
 *   folder.begin    puts that checkpoint into the trainer's weights and optimiser (or starts at step 0),
 *                   clears half-written checkpoints, records the run's settings (and what a resume
 *                   changed) in run-config.json and opens metrics.jsonl;
 *   folder.close    frees the lock, however the run ended (the folders open made for it are removed when
 *                   nothing else was written there: a model or data that fails to load leaves none).
 * TrainingRun.loop then runs the trainer's steps; after each, its record is logged, and evaluation and
 * checkpoints follow at their intervals and after the last step.
 *
 * No NaN or Inf reaches the optimiser: a loss is checked before its backward pass (checkLoss), an op that
 * produces NaN or Inf during a step (the tensor layer refuses to) is caught, and the gradient norm is
 * checked before every update (update). Each stops training with TrainingDiverged: one sentence naming the
 * step, its update not applied, the last checkpoint kept. A weight or optimizer moment that still turns NaN
 * or Inf (an unclipped update can overflow AdamW's second moment) stops training at the checkpoint that
 * would hold it, before it is written, so the checkpoint named is always one that resumes.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { isWithin, resolvedPath } from '../io/path-relation.js';
import { PidLock } from '../io/pid-lock.js';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import {
  type ExtraReader,
  type ResumePoint,
  type TrainerState,
  NonFiniteCheckpoint,
  applyCheckpoint,
  listCheckpoints,
  removeStaleTemporaries,
  saveCheckpoint,
  skippedCheckpointNotes,
  startingCheckpoint,
  unlistedFilesNote,
} from './checkpoint.js';
import type { OptimizerSettings } from './config-merge.js';
import { RunFolderError } from './run-folder-error.js';
import { MetricsLog } from './metrics-log.js';
import { type RunDescription, RunCheck } from './run-record.js';
import { ProgressBar, type ProgressFields } from './progress.js';
import type { MetricRecord } from './report.js';
import { fileInTheWaySaid, makeFolder, removeFoldersMadeSync } from '../io/make-folder.js';

/**
 * Exit code of a training session stopped at its deadline (--max-seconds) with a checkpoint, before its last
 * step (EX_TEMPFAIL): what the CLI returns and the recipe reads from its steps.
 */
export const SESSION_ENDED = 75;

/** Training stopped on a NaN or Inf; the message names the step and the checkpoint kept. */
export class TrainingDiverged extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDiverged';
  }
}

export interface RunOptions {
  /** Continue from the newest intact checkpoint; without it, a folder that has checkpoints is refused. */
  resume?: boolean;
  /** Progress line and notes on stderr (default true). */
  progress?: boolean;
  /** Damage found in the run folder and worked around; shown even without progress (default: stderr). */
  warn?: (line: string) => void;
  /** Called after each checkpoint is in place (tests use it to stop a run at a known point). */
  onCheckpoint?: (step: number, dir: string) => void;
  /**
   * Wall-clock end of this session (ms since the epoch): the loop stops with a checkpoint before a step
   * that would not end (with its evaluation and checkpoint) in time, so a machine lent for minutes is
   * left with a run that resumes. At least one step runs.
   */
  deadline?: number;
  /**
   * Stops the run early (a signal to the process, cli/train.ts): the loop ends after the step in
   * progress, with a checkpoint of it, so that --resume loses nothing; aborted before any step of this
   * session, it ends before one, writing nothing more.
   */
  stop?: AbortSignal;
}

/** What a run trains: its tensors and their optimiser, the optimiser's settings, the run's length. */
export interface RunPlan {
  /** The trained tensors, in the order their checkpoint saves them. */
  params: Tensor[];
  optimizer: T.Optimizer;
  settings: OptimizerSettings;
  totalSteps: number;
  /** A fresh run's generator (dropout, sampling) starts from seed + 1. */
  seed: number;
  checkpoint: { every: number; keep: number };
  /** Said after "resuming from <checkpoint>" (stage 2: what becomes of its environment). */
  resumeNote?: string;
}

/** How RunFolder.open reads a run folder. */
export interface OpenOptions<X> {
  /**
   * The run's stage and settings: checked against the folder's record, and recorded in it (run-config.json,
   * which a dashboard shows beside the curves). Without it nothing is checked or recorded.
   */
  run?: RunDescription;
  /** Reads a trainer's own files of a checkpoint (stage 2's environment). */
  readExtra?: ExtraReader<X>;
}

const stderrLine = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/**
 * Refuses a run folder that is, holds or lies in a folder the run reads (`reads`: the config key of each,
 * e.g. model): its checkpoints and final/ would be written among that folder's files, or over them (an
 * output that holds the model at its final/ would replace the model it starts from).
 */
export function checkRunFolderApart(output: string, reads: Readonly<Record<string, string>>): void {
  const out = resolvedPath(output);
  for (const [key, folder] of Object.entries(reads)) {
    if (folder === '') continue;
    const f = resolvedPath(folder);
    if (!isWithin(out, f) && !isWithin(f, out)) continue;
    const how = out === f ? 'is' : isWithin(f, out) ? 'holds' : 'lies in';
    throw new RunFolderError(
      `the output ${output} ${how} the ${key} folder ${folder}, so the run's files would be written among the ` +
        `${key}'s or over them; give the run a folder of its own.`,
    );
  }
}

/**
 * What a warm-up longer than the run does to the schedule: the learning rate never reaches optimizer.lr, nor
 * decays to minLr; null when the warm-up ends within the run.
 */
function longWarmupNote(o: OptimizerSettings, totalSteps: number): string | null {
  if (o.warmupSteps <= totalSteps) return null;
  const peak = (o.lr * totalSteps) / o.warmupSteps;
  return (
    `note: "optimizer.warmupSteps" ${o.warmupSteps} is more than the run's ${totalSteps} steps, so the learning ` +
    `rate rises only to ${peak.toExponential(2)}, short of "optimizer.lr" ${o.lr}, and never decays; set ` +
    `warmupSteps to ${totalSteps} or fewer for the schedule the config describes`
  );
}

/** The lock file of a run folder: the pid of the one trainer that uses it. */
export const RUN_LOCK_FILE = 'train.lock';

/**
 * What a run writes at its folder's top: the lock it takes first, its record, log and checkpoints, train lm's token
 * cache, the models it ends with, its report and an audit's result. A folder holding one of them is a run's.
 */
export const RUN_FOLDER_ENTRIES: readonly string[] = [
  RUN_LOCK_FILE,
  'run-config.json',
  'metrics.jsonl',
  'checkpoints',
  'tokens',
  'final',
  'best',
  'report.html',
  'audit.json',
];

/**
 * Refuses an existing output folder that holds entries of its own and none of a run's (a data or model folder
 * named by mistake): the run's files would be written among them, and over any of the same name (report.html,
 * metrics.jsonl). Hidden entries (.gitkeep, .DS_Store) are no one's work.
 */
function refuseForeignFolder(output: string): void {
  const entries = readdirSync(output).filter((e) => !e.startsWith('.'));
  if (entries.length === 0 || entries.some((e) => RUN_FOLDER_ENTRIES.includes(e))) return;
  const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? ` and ${entries.length - 3} more` : '');
  throw new RunFolderError(
    `the output ${output} already holds files that are not a training run's (${shown}); the run's would be ` +
      'written among them and over any of the same name: give the run a folder of its own, new or empty',
  );
}

/**
 * Refuses an output no run may write into: a file, one under a file, or a folder of others' files
 * (refuseForeignFolder). Checked by open, and by a command that puts a run's files into its output by other means
 * first (rlenv audit --from copies a checkpoint there), so that a refusal leaves the folder as it was.
 */
export function checkRunOutput(output: string): void {
  const file = fileInTheWaySaid(output);
  if (file !== undefined) throw new RunFolderError(`the output ${output} ${file}; name a folder for the run`);
  if (existsSync(output)) refuseForeignFolder(output);
}

/**
 * A run folder whose starting point is known (a checkpoint on --resume, else none), not yet trained in,
 * and locked for this process until `close`.
 */
export class RunFolder<X = never> {
  private constructor(
    readonly output: string,
    readonly start: ResumePoint<X> | null,
    private readonly opts: RunOptions,
    private readonly record: RunCheck | null,
    private readonly lock: PidLock,
    /** The first folder open made for the lock (output or one above it); undefined when output existed. */
    private readonly made: string | undefined,
  ) {}

  static async open<X = never>(output: string, opts: RunOptions, how: OpenOptions<X> = {}): Promise<RunFolder<X>> {
    checkRunOutput(output);
    const made = await makeFolder(output);
    const lock = lockRunFolder(output);
    try {
      // the stage first: a folder of another stage is named as such, not as one that needs --resume
      const record = how.run ? await RunCheck.read(output, how.run) : null;
      const start = await startingCheckpoint(output, opts.resume ?? false, how.readExtra);
      if (start) await record?.checkResume();
      return new RunFolder(output, start, opts, record, lock, made);
    } catch (e) {
      freeRunFolder(output, lock, made);
      throw e;
    }
  }

  /** Frees the folder for the next trainer; call it however the run ended. */
  close(): void {
    freeRunFolder(this.output, this.lock, this.made);
  }

  /** A note on stderr, when progress is on. */
  note(msg: string): void {
    if (this.opts.progress ?? true) process.stderr.write(`${msg}\n`);
  }

  warn(line: string): void {
    (this.opts.warn ?? stderrLine)(line);
  }

  /**
   * Starts training in the folder: the checkpoint resumed from, if any, goes into `plan`'s tensors and
   * optimiser (all or nothing: RunFolderError when it does not fit them); metrics.jsonl keeps what it
   * logged up to that checkpoint.
   */
  async begin(plan: RunPlan): Promise<TrainingRun> {
    let state = freshState(plan.seed);
    if (this.start) {
      const ck = applyCheckpoint(this.start.contents, plan.params);
      plan.optimizer.loadState(ck.optimizer);
      state = ck.state;
      for (const line of skippedCheckpointNotes(this.start)) this.warn(line);
      const from = `resuming from ${this.start.contents.dir} (step ${state.step} of ${plan.totalSteps})`;
      this.note(`${from}${plan.resumeNote ?? ''}`);
      const unlisted = unlistedFilesNote(this.start.contents);
      if (unlisted) this.note(unlisted);
      for (const line of this.record?.resumeNotes() ?? []) this.note(line);
    }
    if (!this.start && this.opts.resume)
      this.note(`${this.output} has no checkpoint yet (the run stopped before its first): training starts at step 0`);
    // said rather than refused: the defaults' warm-up (10 or 100 steps) is longer than a short trial run
    const warmup = longWarmupNote(plan.settings, plan.totalSteps);
    if (warmup) this.note(warmup);
    const checkpoints = path.join(this.output, 'checkpoints');
    await removeStaleTemporaries(checkpoints);
    await this.record?.write(writeTextFileAtomically, this.start ? state.step : null);
    const metrics = await MetricsLog.open(path.join(this.output, 'metrics.jsonl'), this.start ? state.step : null);
    if (metrics.note) this.warn(metrics.note);
    return new TrainingRun(plan, state, metrics.log, checkpoints, this.opts);
  }
}

/** Takes the run folder's lock, or says which live process trains in it. */
function lockRunFolder(output: string): PidLock {
  const file = path.join(output, RUN_LOCK_FILE);
  return PidLock.acquire(
    file,
    (pid, otherThread) => new RunFolderError(runFolderInUse(output, file, pid, otherThread)),
  );
}

/**
 * Why the lock `file` of run folder `output` was not taken: `pid` holds it (this process: another trainer here,
 * in another of its threads when `otherThread`).
 */
function runFolderInUse(output: string, file: string, pid: number | undefined, otherThread: boolean): string {
  const clash = "two trainers in one run folder would overwrite each other's checkpoints and log";
  if (pid === undefined) return `${file}: could not take the run folder's lock; other processes keep taking it`;
  const finish = 'let that one finish (or close its run folder) first';
  if (pid === process.pid) {
    const where = otherThread ? 'in another thread of this process' : 'in this process';
    return `${output} is in use by another trainer ${where}; ${clash}: ${finish}`;
  }
  return (
    `${output} is in use by another trainer (pid ${pid}, in ${file}); ${clash}: wait for it to finish or stop it ` +
    `(kill -TERM ${pid}), then run this again (delete ${file} only if pid ${pid} is not a search-r3 trainer)`
  );
}

/**
 * Frees the lock of a run folder; the folders open made for it (output, up to `made`) are removed while they
 * are empty, so that a start that failed (a model, config or data that did not load) leaves none behind.
 */
function freeRunFolder(output: string, lock: PidLock, made: string | undefined): void {
  lock.release();
  removeFoldersMadeSync(output, made);
}

function freshState(seed: number): TrainerState {
  return { step: 0, epoch: 0, batchIndex: 0, rng: new T.Rng(seed + 1).state(), bestScore: null, bestStep: null };
}

/** One optimiser step's outcome, as a trainer reports it to the loop. */
export interface StepResult {
  /** The step's "train" record after its type, step and epoch; the loop adds stepSeconds last. */
  record: Record<string, unknown>;
  progress: ProgressFields;
  /** Records logged after the step's own (stage 2's audit of the step). */
  more?: MetricRecord[];
}

export interface LoopSpec {
  /** One optimiser step: the trainer's batches and losses (through checkLoss) and updates (through update). */
  step(): StepResult | Promise<StepResult>;
  /** The last step to run (default: the run's last); a run stopped early resumes from its checkpoint. */
  stopAt?: number;
  /** Called after each step is logged. */
  onStep?(step: number, record: MetricRecord): void;
  /** Evaluation: before the first step of a fresh run, every `every` steps, and after the run's last step. */
  evaluate?: { every: number; run(): void | Promise<void> };
  /** Writes the trainer's own files into each checkpoint (stage 2: its environment). */
  checkpointFiles?: (dir: string) => Promise<void>;
}

/** A run in progress: its state (step, data position, generator), metrics log, progress line and updates. */
export class TrainingRun {
  /** The generator of dropout (and sampling): its state goes into every checkpoint. */
  readonly rng: T.Rng;
  readonly startStep: number;
  private readonly schedule: T.Schedule;
  private bar: ProgressBar;
  private loopStart = Date.now();
  /** Wall times of the latest steps, evaluation and checkpoint, to tell whether one more fits the deadline. */
  private recentStepMs: number[] = [];
  private lastEvalMs = 0;
  private lastCheckpointMs: number | null = null;
  private checkpointedStep = -1;

  constructor(
    private readonly plan: RunPlan,
    readonly state: TrainerState,
    private readonly metrics: MetricsLog,
    private readonly checkpoints: string,
    private readonly opts: RunOptions,
  ) {
    this.rng = new T.Rng(state.rng);
    this.startStep = state.step;
    const o = plan.settings;
    this.schedule = T.warmupCosine(o.lr, o.warmupSteps, plan.totalSteps, o.minLr);
    this.bar = this.progressBar();
  }

  get totalSteps(): number {
    return this.plan.totalSteps;
  }

  /** The run has done its last step (a run stopped at a deadline or stopAt has not). */
  get finished(): boolean {
    return this.state.step >= this.plan.totalSteps;
  }

  /** Every record of metrics.jsonl: those kept from before a resume, then this session's. */
  get records(): readonly MetricRecord[] {
    return this.metrics.records;
  }

  log(r: MetricRecord): void {
    this.metrics.append(r);
  }

  /** A note on stderr that does not break the progress line. */
  note(msg: string): void {
    this.bar.note(msg);
  }

  /** `units` (tokens) per second since the loop began. */
  rate(units: number): number {
    return units / Math.max((Date.now() - this.loopStart) / 1000, 1e-3);
  }

  /** The loss, when it is finite; else training stops before its backward pass. */
  checkLoss(value: number, where?: string): number {
    if (!Number.isFinite(value)) throw this.diverged(where, `the loss is ${value}`);
    return value;
  }

  /**
   * Runs `work` (a forward and backward pass, or a promise of one); an op's NaN or Inf stops training as a NaN
   * loss does.
   */
  guard<R>(where: string | undefined, work: () => R): R {
    try {
      const r = work();
      if (r instanceof Promise) return r.catch((e: unknown) => Promise.reject(this.asDivergence(e, where))) as R;
      return r;
    } catch (e) {
      throw this.asDivergence(e, where);
    }
  }

  /**
   * The optimiser update of the gradients accumulated since the last one: clipped to the global norm
   * maxGradNorm (0: not clipped), applied at the schedule's learning rate for this step, then zeroed. A
   * NaN or Inf gradient stops training before the optimiser sees it.
   */
  update(where?: string): { gradNorm: number; lr: number } {
    const maxNorm = this.plan.settings.maxGradNorm;
    const gradNorm = this.guard(where, () => T.clipGradNorm(this.plan.params, maxNorm > 0 ? maxNorm : Infinity));
    const lr = this.schedule(this.state.step);
    this.plan.optimizer.step(lr);
    this.plan.optimizer.zeroGrad();
    return { gradNorm, lr };
  }

  /** Writes the checkpoint of the current step (`files`: the trainer's own files in it). */
  async checkpoint(files?: (dir: string) => Promise<void>): Promise<void> {
    this.state.rng = this.rng.state();
    const { params, optimizer, checkpoint } = this.plan;
    const t0 = Date.now();
    let dir: string;
    try {
      dir = await saveCheckpoint(this.checkpoints, params, optimizer.state(), this.state, checkpoint.keep, files);
    } catch (e) {
      if (!(e instanceof NonFiniteCheckpoint)) throw e;
      // a moment can overflow while the loss and gradient stay finite (unclipped, at a huge learning rate)
      const unclipped = this.plan.settings.maxGradNorm > 0 ? '' : ' (optimizer.maxGradNorm is 0: nothing was clipped)';
      throw this.diverged(undefined, `after its update ${e.message}${unclipped}`, {
        step: this.state.step,
        consequence: 'so its checkpoint was not written',
      });
    }
    this.lastCheckpointMs = Date.now() - t0;
    this.checkpointedStep = this.state.step;
    this.opts.onCheckpoint?.(this.state.step, dir);
  }

  /** Whether the next step, its evaluation when one is due and a checkpoint still end before the deadline. */
  private nextStepFits(evaluateEvery: number | undefined): boolean {
    const deadline = this.opts.deadline;
    if (deadline === undefined) return true;
    const step = Math.max(...this.recentStepMs);
    const next = this.state.step + 1;
    const evaluation = evaluateEvery !== undefined && (next % evaluateEvery === 0 || next === this.plan.totalSteps);
    const reserve = 1.5 * step + (evaluation ? this.lastEvalMs : 0) + (this.lastCheckpointMs ?? 2 * step);
    return Date.now() + reserve <= deadline;
  }

  /**
   * Runs steps until `spec.stopAt` (the run's last step by default), until the next step would pass the
   * session's deadline, or until the run is asked to stop (each after a checkpoint), then ends the
   * progress line.
   */
  async loop(spec: LoopSpec): Promise<void> {
    const state = this.state,
      total = this.plan.totalSteps;
    const stopAt = Math.min(total, spec.stopAt ?? total);
    const stopping = (): boolean => this.opts.stop?.aborted === true;
    if (state.step === 0 && spec.evaluate && !stopping()) await spec.evaluate.run();
    // the ETA and the rates count training steps only, not the evaluation before the first one
    this.bar = this.progressBar();
    this.loopStart = Date.now();
    while (state.step < stopAt) {
      // a step is synchronous work: a signal's handler runs only when the loop lets the event loop turn
      if (this.opts.stop) await new Promise((resolve) => setImmediate(resolve));
      if (stopping()) {
        // a session that ran no step has nothing to keep
        if (state.step > this.startStep && this.checkpointedStep !== state.step)
          await this.checkpoint(spec.checkpointFiles);
        const reason: unknown = this.opts.stop?.reason;
        const why = typeof reason === 'string' ? ` (${reason})` : '';
        // a fresh run stopped before its first step has nothing to continue: the CLI's last line says so too
        const next = state.step > 0 ? 'continue with --resume' : 'before its first; run it again';
        this.note(`stopping at step ${state.step} of ${total} as asked${why}, ${next}`);
        break;
      }
      if (this.recentStepMs.length > 0 && !this.nextStepFits(spec.evaluate?.every)) {
        if (this.checkpointedStep !== state.step) await this.checkpoint(spec.checkpointFiles);
        this.note(
          `stopping at step ${state.step} of ${total}: the next step would not end before the session's deadline; ` +
            'continue with --resume',
        );
        break;
      }
      const started = Date.now();
      let result: StepResult;
      try {
        result = await spec.step();
      } catch (e) {
        throw this.asDivergence(e, undefined);
      }
      state.step++;
      const stepSeconds = (Date.now() - started) / 1000;
      this.recentStepMs = [...this.recentStepMs.slice(-2), stepSeconds * 1000];
      await T.releaseUnusedMemory();
      const record: MetricRecord = {
        type: 'train',
        step: state.step,
        epoch: state.epoch,
        ...result.record,
        stepSeconds,
      };
      this.log(record);
      for (const r of result.more ?? []) this.log(r);
      this.bar.update(state.step, result.progress);
      spec.onStep?.(state.step, record);
      const due = (every: number): boolean => state.step % every === 0;
      if (spec.evaluate && (due(spec.evaluate.every) || state.step === total)) {
        const t0 = Date.now();
        await spec.evaluate.run();
        this.lastEvalMs = Date.now() - t0;
      }
      // a session that ends here (its deadline) leaves a checkpoint to resume from
      const lastOfSession = state.step < stopAt && !this.nextStepFits(spec.evaluate?.every);
      if (due(this.plan.checkpoint.every) || state.step === stopAt || lastOfSession)
        await this.checkpoint(spec.checkpointFiles);
    }
    this.bar.done();
  }

  private progressBar(): ProgressBar {
    return new ProgressBar(this.plan.totalSteps, this.state.step, process.stderr, 5000, this.opts.progress ?? true);
  }

  /** TrainingDiverged for an op's NaN or Inf; any other error as it is. */
  private asDivergence(e: unknown, where: string | undefined): unknown {
    return e instanceof T.TensorError && /NaN|Inf/.test(e.message) ? this.diverged(where, e.message) : e;
  }

  /**
   * Divergence at `at.step` (default: the step being taken, whose update is not applied), naming the
   * newest checkpoint: every checkpoint written holds only finite numbers, so it can be resumed.
   */
  private diverged(
    where: string | undefined,
    why: string,
    at = { step: this.state.step + 1, consequence: 'so its update was not applied' },
  ): TrainingDiverged {
    const all = listCheckpoints(this.checkpoints);
    const last = all[all.length - 1];
    // finite is not sane: weights grown huge by the steps before (max |w| 1e29) overflow again at any rate
    const kept = last
      ? `the last checkpoint with finite weights is ${last.dir} (resume from it with a lower learning rate: ` +
        'edit optimizer.lr, then --resume; if it stops again at its first step, its weights had grown too ' +
        'large already: start afresh, with a new output folder and a lower optimizer.lr)'
      : 'no checkpoint had been written yet (train again with a lower optimizer.lr)';
    const stepAt = `step ${at.step}${where ? `, ${where}` : ''}`;
    return new TrainingDiverged(`training stopped at ${stepAt}: ${why}, ${at.consequence}; ${kept}`);
  }
}

/** AdamW's settings in an optimizer section. */
export function adamWOptions(o: OptimizerSettings): T.AdamWOptions {
  return { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay };
}

/**
 * The order of n items in one pass over them: a Fisher–Yates shuffle seeded by `epochSeed`, the same on
 * every run. Each trainer mixes its seed and the epoch into epochSeed in its own way and keeps that way:
 * another mixing would visit the data in another order, changing every result, and a resumed run would
 * no longer continue the order its checkpoint was saved in.
 */
export function epochOrder(n: number, epochSeed: number): number[] {
  return new T.Rng(epochSeed).shuffle(Array.from({ length: n }, (_, i) => i));
}
