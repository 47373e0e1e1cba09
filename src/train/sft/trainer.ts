/**
 * The stage-1 training loop: contrastive SFT of a Qwen2 model under the Search-R3 embedding protocol.
 *
 * Per optimiser step: `accumulation` contrastive batches (each with all its in-batch and hard
 * negatives; GradCache when batch.subBatch > 0), then one update (clipping, AdamW with warm-up + cosine).
 * The run folder, resume, checkpoints, metrics.jsonl, the loop and its NaN/Inf checks are every
 * trainer's (training-run.ts); stage 1's own are its data, its contrastive batches and loss, the dev
 * nDCG@10 every eval.every steps with the best model kept in best/, and report.html. A resumed run
 * rebuilds the same batches from (seed, epoch), so it continues exactly as if never interrupted; a
 * divergence names the step and the batch.
 */
import { Embedder, DEFAULT_TEMPLATES, type PromptTemplates } from '../../embed/index.js';
import path from 'node:path';
import * as T from '../../tensor/index.js';
import { writeTextFileAtomically } from '../../io/atomic-file.js';
import { beirSplitFiles, checkBeirSplit } from '../../eval/beir.js';
import { type DevSet, loadDevSet, scoreDevSet } from '../../eval/dev-eval.js';
import { ModelRetriever } from '../../eval/model-retriever.js';
import { BEST_STAMP, readBestStamp } from '../checkpoint.js';
import { checkReasoningRoom, type FineTuned, loadForFineTuning, saveFineTuned } from '../fine-tune.js';
import { formatDuration } from '../progress.js';
import { heldOutClause } from '../hold-out.js';
import { renderReport } from '../report.js';
import type { DataRead } from '../data-stamps.js';
import { RunFolderError } from '../run-folder-error.js';
import { ConfigError } from '../config-merge.js';
import { ModelFileError } from '../../model/model-file-error.js';
import {
  type RunOptions,
  RunFolder,
  checkRunFolderApart,
  type StepResult,
  type TrainingRun,
  adamWOptions,
} from '../training-run.js';
import { type BatchLoss, type EncodedBatch, type TrainModels, plainBackward } from './batch-loss.js';
import { type PlannedBatch, batchTexts, planEpoch } from './batches.js';
import { DEFAULT_SFT_CONFIG, type SftConfig } from './config.js';
import { checkSources, type DataStats, loadTrainingData, sourceFiles, whyNoExample } from './data.js';
import { gradCacheBackward } from './grad-cache.js';
import { SequenceEncoder } from './sequences.js';

export interface TrainOptions extends RunOptions {
  /** Called after each optimiser step, once its metrics record is written. */
  onStep?: (step: number, loss: number) => void;
}

export interface TrainSummary {
  steps: number;
  startStep: number;
  finalLoss: number;
  bestScore: number | null;
  bestStep: number | null;
  seconds: number;
  data: DataStats;
  truncatedTexts: number;
  output: string;
  /** The last step is done and final/ written (false: stopped at the session's deadline). */
  finished: boolean;
}

export async function trainSft(cfg: SftConfig, opts: TrainOptions = {}): Promise<TrainSummary> {
  const t0 = Date.now();
  checkRunFolderApart(cfg.output, { model: cfg.model });
  // every input there, before the model loads and the sources are read (minutes, for a large one)
  checkSources(cfg.data);
  if (cfg.eval) checkBeirSplit(cfg.eval.beir, cfg.eval.split);
  const folder = await RunFolder.open(cfg.output, opts, {
    run: { stage: 'sft', config: cfg, defaults: DEFAULT_SFT_CONFIG, folders: ['model'], data: sftDataReads(cfg) },
  });
  try {
    return await trainInFolder(folder, cfg, opts, t0);
  } finally {
    folder.close();
  }
}

/** The files stage 1 reads: each source's, and the dev split it evaluates on (scores and best/ follow it). */
function sftDataReads(cfg: SftConfig): DataRead[] {
  const reads = cfg.data.map((d, i) => ({ key: `data[${i}].path`, path: d.path, files: sourceFiles(d) }));
  if (cfg.eval)
    reads.push({
      key: 'eval.beir',
      path: cfg.eval.beir,
      files: Object.values(beirSplitFiles(cfg.eval.beir, cfg.eval.split)),
    });
  return reads;
}

/**
 * Refuses a batch.queries above the training examples there are: every batch would hold fewer queries, and so
 * fewer in-batch negatives, than the config says, without a word. A resumed run goes on, and says so.
 */
function checkBatchQueries(queries: number, examples: number, resumed: boolean, warn: (line: string) => void): void {
  if (queries <= examples) return;
  const has = `"batch.queries" is ${queries}, but the data has only ${examples} training examples`;
  if (resumed) return warn(`${has}: each batch takes at most those ${examples}`);
  throw new ConfigError(`${has}, so no batch could take ${queries}: set batch.queries to ${examples} or fewer`);
}

/** Stage 1 in its run folder, opened and locked. */
async function trainInFolder(folder: RunFolder, cfg: SftConfig, opts: TrainOptions, t0: number): Promise<TrainSummary> {
  const s = await loadForFineTuning(cfg.model, cfg.lora, cfg.seed, cfg.loss.kl > 0);
  const templates: PromptTemplates = { ...DEFAULT_TEMPLATES, ...cfg.templates };
  const maxLength = Math.min(cfg.maxLength, s.model.config.maxPositionEmbeddings);
  // the response L_SFT learns is a ChatML assistant turn, which ends with this token
  if (s.tokenizer.tokenToId('<|im_end|>') === undefined)
    throw new ModelFileError(
      cfg.model,
      'its tokenizer has no <|im_end|> token: stage 1 trains the Qwen2 (ChatML) chat format, whose turns end with ' +
        'it; start from a model whose tokenizer has <|im_start|> and <|im_end|>',
    );
  const encoder = new SequenceEncoder(s.tokenizer, templates, maxLength);
  if (cfg.reasoning) {
    const { maxTokens: budget } = cfg.reasoning;
    const room = { budget, after: 1 + encoder.tailLength, maxLength, configured: cfg.maxLength };
    checkReasoningRoom({ key: 'reasoning.maxTokens', ...room, tokenizer: s.tokenizer, templates });
  }
  const reasoning = cfg.reasoning ? { ...cfg.reasoning, seed: cfg.seed } : undefined;
  const { examples, stats } = await loadTrainingData(cfg.data, reasoning);
  if (examples.length === 0) {
    throw new RunFolderError(
      `no training examples in ${cfg.data.map((d) => d.path).join(', ')}: ${whyNoExample(stats)}`,
    );
  }
  const skipped =
    `${stats.withoutPositive} queries without a positive skipped, ` +
    `${stats.positiveIsQuery} whose only positive is the query itself skipped, ` +
    `${stats.emptyTexts} empty texts dropped${heldOutClause(stats.heldOut)}`;
  const analysed = cfg.reasoning ? `; ${stats.analyses} in the reasoning form, with an analysis` : '';
  folder.note(`data: ${stats.examples} examples (${skipped})${analysed}`);
  checkBatchQueries(cfg.batch.queries, examples.length, folder.start !== null, (l) => folder.warn(l));
  const { queries, hardNegatives, accumulation } = cfg.batch;
  const batchesPerEpoch = planEpoch(examples, cfg.seed, 0, queries, hardNegatives).length;
  if (cfg.steps === 0 && accumulation > batchesPerEpoch * cfg.epochs) {
    // one optimiser step would take more batches than the epochs asked for hold
    throw new RunFolderError(
      `"batch.accumulation" ${accumulation} is more than the ${batchesPerEpoch * cfg.epochs} batches of ` +
        `"epochs" ${cfg.epochs} (${batchesPerEpoch} a pass over the data); lower it, or set "steps"`,
    );
  }
  const totalSteps = cfg.steps > 0 ? cfg.steps : Math.ceil((batchesPerEpoch * cfg.epochs) / accumulation);
  // read before begin writes run-config.json: a dev set that does not load leaves the disk as it was
  const dev = cfg.eval
    ? await loadDevSet(cfg.eval.beir, cfg.eval.split, cfg.eval.maxQueries, cfg.eval.maxDocuments)
    : null;

  const o = cfg.optimizer;
  const optimizer = new T.AdamW(s.trainable, adamWOptions(o));
  const run = await folder.begin({
    params: s.trainable,
    optimizer,
    settings: o,
    totalSteps,
    seed: cfg.seed,
    checkpoint: cfg.checkpoint,
  });
  const state = run.state;
  if (state.step === 0) {
    const trainableParameters = T.countParameters(s.trainable);
    run.log({ type: 'data', step: 0, ...stats, batchesPerEpoch, totalSteps, trainableParameters });
  }
  const evaluate = dev ? devEvaluation(cfg, dev, s, encoder.maxLength, run, (l) => folder.warn(l)) : undefined;

  const models: TrainModels = { model: s.model, ref: s.ref };
  let plan: PlannedBatch[] = planEpoch(examples, cfg.seed, state.epoch, queries, hardNegatives);
  const nextBatch = (): { batch: PlannedBatch; epoch: number; index: number } => {
    if (state.batchIndex >= plan.length) {
      state.epoch++;
      state.batchIndex = 0;
      plan = planEpoch(examples, cfg.seed, state.epoch, queries, hardNegatives);
    }
    return { batch: plan[state.batchIndex], epoch: state.epoch, index: state.batchIndex++ };
  };
  const encode = (b: PlannedBatch): EncodedBatch => {
    const bt = batchTexts(examples, b);
    const queries = b.examples.map((e, i) => {
      const a = examples[e].analysis;
      return a && cfg.reasoning
        ? encoder.encodeReasoning(bt.queries[i], a, cfg.reasoning.maxTokens)
        : encoder.encode(bt.queries[i], 'query');
    });
    const documents = bt.documents.map((d) => encoder.encode(d, 'document'));
    return { seqs: [...queries, ...documents], numQueries: bt.queries.length, targets: bt.targets };
  };
  const backward = async (b: PlannedBatch): Promise<BatchLoss> =>
    cfg.batch.subBatch > 0
      ? gradCacheBackward(models, encode(b), cfg.loss, 1 / accumulation, cfg.batch.subBatch, run.rng)
      : plainBackward(models, encode(b), cfg.loss, 1 / accumulation, run.rng);

  let lastLoss = NaN,
    truncatedTexts = 0,
    tokensSinceStart = 0;
  const step = async (): Promise<StepResult> => {
    const sum: BatchLoss = { loss: 0, sft: 0, kl: 0, infonce: 0, triplet: 0, tokens: 0, truncated: 0 };
    const where: string[] = [];
    for (let a = 0; a < accumulation; a++) {
      const { batch, epoch, index } = nextBatch();
      const firstQuery = JSON.stringify(examples[batch.examples[0]].query.slice(0, 60));
      const at = `epoch ${epoch} batch ${index} (first query ${firstQuery})`;
      where.push(at);
      const r = await run.guard(at, () => backward(batch));
      // the batch's graph is garbage now: on a GPU its buffers must come back before the next batch's graph
      await T.releaseUnusedMemory();
      run.checkLoss(r.loss, at);
      for (const k of ['loss', 'sft', 'kl', 'infonce', 'triplet'] as const) sum[k] += r[k] / accumulation;
      sum.tokens += r.tokens;
      sum.truncated += r.truncated;
    }
    const { gradNorm, lr } = run.update(where.join('; '));
    truncatedTexts += sum.truncated;
    tokensSinceStart += sum.tokens;
    const tokensPerSec = run.rate(tokensSinceStart);
    lastLoss = sum.loss;
    const { loss, sft, kl, infonce, triplet, tokens, truncated } = sum;
    return {
      record: { loss, sft, kl, infonce, triplet, lr, gradNorm, tokens, truncated, tokensPerSec },
      progress: { loss, lr, tokensPerSec },
    };
  };
  await run.loop({ step, onStep: (n) => opts.onStep?.(n, lastLoss), evaluate });
  // a session stopped at its deadline leaves checkpoints only: final/ is what a finished run made
  if (run.finished) await saveFineTuned(path.join(cfg.output, 'final'), s);
  const seconds = (Date.now() - t0) / 1000;
  const title = `search-r3 stage 1: ${path.basename(cfg.output)}`;
  const notes = reportNotes(cfg, stats, totalSteps, run, seconds, truncatedTexts, encoder.maxLength);
  await writeTextFileAtomically(path.join(cfg.output, 'report.html'), renderReport(title, run.records, notes));
  return {
    steps: state.step,
    startStep: run.startStep,
    finalLoss: lastLoss,
    bestScore: state.bestScore,
    bestStep: state.bestStep,
    seconds,
    data: stats,
    truncatedTexts,
    output: cfg.output,
    finished: run.finished,
  };
}

/**
 * The dev evaluation of the run: nDCG@10 of the model being trained on the dev set `dev` (queries without
 * reasoning), logged; a new best score keeps the model in best/ and goes into the run's state.
 */
function devEvaluation(
  cfg: SftConfig,
  dev: DevSet,
  s: FineTuned,
  maxLength: number,
  run: TrainingRun,
  warn: (line: string) => void,
): { every: number; run(): Promise<void> } {
  const state = run.state;
  const bestDir = path.join(cfg.output, 'best');
  // A run stopped after an evaluation wrote best/ but before the next checkpoint resumes from a state that
  // does not know that model; it is kept as the best (its score is real), so best/ and the run agree.
  const stamp = readBestStamp(bestDir);
  if (stamp && stamp.step > state.step) {
    warn(
      `${bestDir} holds the model of step ${stamp.step} (dev nDCG@10 ${stamp.ndcg10.toFixed(4)}), evaluated ` +
        `after the checkpoint of step ${state.step} this run resumes from; it stays the best until the run beats it`,
    );
    state.bestScore = stamp.ndcg10;
    state.bestStep = stamp.step;
  }
  const evaluate = async (): Promise<void> => {
    const embedder = new Embedder(s.model, s.tokenizer, { templates: cfg.templates, maxLength });
    const r = await scoreDevSet(new ModelRetriever(embedder, 'dev'), dev);
    const { ndcg10, queries, documents, seconds } = r;
    run.log({ type: 'eval', step: state.step, ndcg10, queries, documents, seconds });
    const sizes = `${r.queries} queries, ${r.documents} documents, ${r.seconds.toFixed(1)} s`;
    run.note(`step ${state.step}: dev nDCG@10 ${r.ndcg10.toFixed(4)} (${sizes})`);
    if (state.bestScore === null || r.ndcg10 > state.bestScore) {
      state.bestScore = r.ndcg10;
      state.bestStep = state.step;
      const note = JSON.stringify({ step: state.step, ndcg10: r.ndcg10 }) + '\n';
      await saveFineTuned(bestDir, s, { [BEST_STAMP]: note });
    }
  };
  return { every: cfg.eval!.every, run: evaluate };
}

/** The lines report.html says about the run under its charts. */
function reportNotes(
  cfg: SftConfig,
  stats: DataStats,
  totalSteps: number,
  run: TrainingRun,
  seconds: number,
  truncatedTexts: number,
  maxLength: number,
): string[] {
  const b = cfg.batch,
    l = cfg.loss,
    state = run.state;
  const accumulated = b.accumulation > 1 ? ` × ${b.accumulation} accumulated` : '';
  const tuning = cfg.lora ? `LoRA rank ${cfg.lora.rank}` : 'full fine-tuning';
  return [
    `model ${cfg.model}; ${stats.examples} training examples; ${totalSteps} steps of ${b.queries} queries × ` +
      `(1 positive + ${b.hardNegatives} hard negatives)${accumulated}; ${tuning}.`,
    `losses: ${l.sft}·SFT + ${l.kl}·KL + ${l.infonce}·InfoNCE(τ=${l.temperature}) ` +
      `+ ${l.triplet}·Triplet(θ=${l.margin}).`,
    ...(cfg.reasoning
      ? [
          `reasoning form: ${stats.analyses} queries with an analysis of ≤ ${cfg.reasoning.concepts} key concepts ` +
            `and ${cfg.reasoning.related} related terms before the embed token (≤ ${cfg.reasoning.maxTokens} tokens).`,
        ]
      : []),
    state.bestScore !== null
      ? `best dev nDCG@10 ${state.bestScore.toFixed(4)} at step ${state.bestStep}.`
      : 'no dev evaluation.',
    `this session: ${formatDuration(seconds)} wall; ${truncatedTexts} training texts were cut to ${maxLength} tokens.`,
  ];
}
