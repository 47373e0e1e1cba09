/**
 * Stage 2: GRPO with a retrieval reward (search-r3 train rl). Each step takes B training queries and
 * samples G responses for each (rollouts); each response's embedding ranks the environment's corpus and
 * earns DCG@k (or nDCG@k / 1/rank) of the query's positives, minus the format and length penalties;
 * advantages are normalised within each group; μ inner epochs of the clipped surrogate over the sampled
 * tokens with β·KL(π‖π_ref) (π_ref the starting model: LoRA adapters off, or a frozen copy), plus an
 * optional InfoNCE term on each response's embedding against the environment's candidates (the
 * table's vectors are constants: the gradient reaches the policy through the response embedding).
 * Each optimiser update advances the environment's policy version.
 *
 * The run folder, resume, checkpoints, metrics.jsonl, the loop and its NaN/Inf checks are every
 * trainer's (training-run.ts); stage 2's own are its queries, rollouts, environment, rewards and loss. A
 * checkpoint also holds the environment (table, row versions, drift means, and the graph's edits since it
 * was last rebuilt from the table, which happens at every scheduled checkpoint), so resume continues with
 * the same weights, optimiser, data position, sampling and environment: the resumed run is bit-identical
 * to the uninterrupted one, wherever it stopped.
 */
import {
  Embedder,
  DEFAULT_TEMPLATES,
  type PromptTemplates,
  assistantEndTokens,
  embedTokenId,
  encodePrompt,
  UNCOUNTED_CUT,
} from '../../embed/index.js';
import path from 'node:path';
import * as T from '../../tensor/index.js';
import type { Tensor } from '../../tensor/index.js';
import {
  RetrievalEnvironment,
  type DocumentEncoder,
  type EnvironmentOptions,
  type EnvironmentSnapshot,
  type StepOutcome,
  type StepQuery,
  type StepStats,
} from '../../rlenv/environment.js';
import { responseReward, type RankingRewardKind, type RewardSettings } from '../../rlenv/reward.js';
import type { RefreshMode } from '../../rlenv/refresh-policy.js';
import { TableTooLargeError, checkTableSize, defaultTableLimit } from '../../rlenv/embedding-table.js';
import type { AuditStep } from '../../rlenv/audit.js';
import { excludeScaledCosines } from '../excluded-logits.js';
import { checkReasoningRoom, loadForFineTuning, saveFineTuned } from '../fine-tune.js';
import { heldOutClause, trainingSplitFiles } from '../hold-out.js';
import type { MetricRecord } from '../report.js';
import { RunFolderError } from '../run-folder-error.js';
import type { RunDescription } from '../run-record.js';
import { ConfigError } from '../config-merge.js';
import {
  type RunOptions,
  RunFolder,
  checkRunFolderApart,
  type StepResult,
  adamWOptions,
  epochOrder,
} from '../training-run.js';
import { DEFAULT_RL_CONFIG, type RlConfig } from './config.js';
import { loadRlData, noTrainingQuery, type RlData, type RlQuery } from './data.js';
import { checkBeirSplit } from '../../eval/beir.js';
import { loadEnvironment, saveEnvironment } from './environment-checkpoint.js';
import { groupAdvantages, grpoLoss, responseMeanWeights } from './grpo.js';
import { forwardRollouts, sampleRollouts, unitRows, type Rollout } from './rollout.js';

export interface RlTrainOptions extends RunOptions {
  /** Also score every step's responses in an exact-mode environment (search-r3 rlenv audit). */
  audit?: boolean;
  /** Override cfg.steps (the audit runs a few steps of a training config). */
  steps?: number;
  onStep?: (step: number, record: Record<string, unknown>) => void;
}

export interface RlSummary {
  steps: number;
  startStep: number;
  seconds: number;
  data: RlData['stats'];
  output: string;
  audit: AuditStep[];
  /** Seconds to build the environment (encode the corpus, build the graph), or to restore it on resume. */
  setupSeconds: number;
  /** Whether the environment came from the checkpoint rather than from encoding the corpus. */
  environmentRestored: boolean;
  lastRewardMean: number;
  /** The last step is done and final/ written (false: stopped at the session's deadline). */
  finished: boolean;
}

/**
 * Query order of one pass over the training queries. Stage 2 mixes seed and epoch in its own way (not
 * pretraining's): changing it would change which queries every stage-2 run, and every resumed one, trains on.
 */
function queryOrder(n: number, seed: number, epoch: number): number[] {
  return epochOrder(n, seed * 7919 + epoch * 104729 + 17);
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((s, v) => s + v, 0) / xs.length : 0);
const std = (xs: readonly number[]): number => {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
};

/**
 * −log Σ_{p ∈ positives} softmax(cos(e, D)/τ) = logsumexp(all) − logsumexp(positives): InfoNCE of one response
 * embedding `emb` [1, d] against `m` constant unit document rows `docs`.
 */
export function responseInfoNce(
  emb: Tensor,
  docs: Float32Array,
  m: number,
  isPositive: boolean[],
  temperature: number,
): Tensor {
  const d = emb.shape[1];
  const logits = T.scale(T.matmul(T.l2normalize(emb), new T.Tensor(docs, [m, d]), { transB: true }), 1 / temperature);
  const positives = excludeScaledCosines(logits, (i) => !isPositive[i], temperature);
  return T.sub(T.logsumexp(logits, -1), T.logsumexp(positives, -1));
}

/**
 * The mean InfoNCE of the responses' embeddings `emb` [responses, d], each against its query's positives
 * and the environment's candidates for it (the table's rows: constants).
 */
function candidatesInfoNce(
  emb: Tensor,
  rollouts: readonly Rollout[],
  batch: readonly RlQuery[],
  outcome: StepOutcome,
  env: RetrievalEnvironment,
  group: number,
  temperature: number,
): Tensor {
  const dim = emb.shape[1];
  const terms = rollouts.map((x, i) => {
    const pos = batch[x.query].positives.map((p) => p.row);
    const rows = [...pos, ...outcome.candidates[x.query][i % group].filter((c) => !pos.includes(c))];
    const docs = new Float32Array(rows.length * dim);
    rows.forEach((row, j) => docs.set(env.table.row(row), j * dim));
    const isPositive = rows.map((_, j) => j < pos.length);
    return responseInfoNce(T.slice(emb, 0, i, i + 1), docs, rows.length, isPositive, temperature);
  });
  return T.scale(
    T.sum(
      T.concat(
        terms.map((t) => T.reshape(t, [1])),
        0,
      ),
    ),
    1 / terms.length,
  );
}

/**
 * Refuses a fresh run whose steps would take fewer queries than "rollout.queries" says (there are only
 * `queries` to train on): each step would be a smaller one than the config asks for, without a word. A run
 * resumed from a checkpoint goes on with each step taking all `queries`, and says so: refusing it would strand
 * the checkpoints it has.
 */
function checkRolloutQueries(cfg: RlConfig, queries: number, resumed: boolean, warn: (line: string) => void): void {
  const b = cfg.rollout.queries;
  if (b <= queries) return;
  const cut = cfg.data.maxQueries > 0 && queries === cfg.data.maxQueries;
  const of = cut ? `"data.maxQueries" ${cfg.data.maxQueries} keeps` : `${cfg.data.beir} split ${cfg.data.split} has`;
  if (resumed) {
    warn(`"rollout.queries" is ${b}, but ${of} only ${queries} training queries: each step takes those ${queries}`);
    return;
  }
  throw new ConfigError(
    `"rollout.queries" is ${b}, but ${of} only ${queries} training queries, so no step could take ${b}: ` +
      `set rollout.queries to ${queries} or fewer${cut ? ', or raise data.maxQueries' : ''}`,
  );
}

/** The environment's settings of the config, in refresh `mode` (the audit's twin runs in exact mode). */
function environmentOptions(cfg: RlConfig, mode: RefreshMode): EnvironmentOptions & { maxTableBytes: number } {
  const e = cfg.environment;
  return {
    refresh: {
      mode,
      budget: e.budget,
      candidates: e.candidates,
      neighbours: e.neighbours,
      rolling: e.rolling,
      fullEvery: e.fullEvery,
    },
    graph: { connectivity: e.connectivity, expansionAdd: e.expansionAdd, expansionSearch: e.expansionSearch },
    maxTableBytes: e.maxTableBytes > 0 ? e.maxTableBytes : defaultTableLimit(),
    reward: { kind: cfg.reward.kind as RankingRewardKind, k: cfg.reward.k },
    returnCandidates: cfg.loss.infonce > 0 ? e.returnCandidates : 0,
    driftCorrection: mode === 'local' && e.driftCorrection,
  };
}

const REENCODED =
  '; it holds no environment (an older checkpoint), so the corpus is re-encoded ' + 'with the resumed policy';

/** What defines a stage-2 run (run-record.ts); `audit`: an audit's, whose environment section may differ. */
export function rlRunDescription(cfg: RlConfig, audit: boolean): RunDescription {
  return {
    stage: 'rl',
    config: cfg,
    defaults: DEFAULT_RL_CONFIG,
    folders: ['model'],
    data: [{ key: 'data.beir', path: cfg.data.beir, files: trainingSplitFiles(cfg.data.beir, cfg.data.split) }],
    // an audit continuing a run measures its config's environment from the run's checkpoint
    mayChange: audit ? ['environment'] : [],
  };
}

export async function trainRl(cfg: RlConfig, opts: RlTrainOptions = {}): Promise<RlSummary> {
  const t0 = Date.now();
  // the environment a checkpoint holds is read and checked with it, before anything is written
  checkRunFolderApart(cfg.output, { model: cfg.model });
  // the split there, before the model loads
  checkBeirSplit(cfg.data.beir, cfg.data.split);
  const folder = await RunFolder.open(cfg.output, opts, {
    run: rlRunDescription(cfg, opts.audit ?? false),
    readExtra: loadEnvironment,
  });
  try {
    return await trainInFolder(folder, cfg, opts, t0);
  } finally {
    folder.close();
  }
}

/** Stage 2 in its run folder, opened and locked. */
async function trainInFolder(
  folder: RunFolder<EnvironmentSnapshot | null>,
  cfg: RlConfig,
  opts: RlTrainOptions,
  t0: number,
): Promise<RlSummary> {
  const totalSteps = opts.steps ?? cfg.steps;
  const pol = await loadForFineTuning(cfg.model, cfg.lora, cfg.seed, cfg.loss.beta > 0);
  const templates: PromptTemplates = { ...DEFAULT_TEMPLATES, ...cfg.templates };
  const maxLength = Math.min(cfg.maxLength, pol.model.config.maxPositionEmbeddings);
  const data = await loadRlData(cfg.data);
  const st = data.stats;
  if (data.queries.length === 0) {
    throw new RunFolderError(`${cfg.data.beir}: ${noTrainingQuery(st, cfg.data.split)}`);
  }
  const skipped =
    `${st.skippedNoPositiveInCorpus} skipped: no positive in the corpus; ` +
    `${st.positivesNotInCorpus} judged documents missing${heldOutClause(st.heldOut)}`;
  folder.note(`data: ${st.queries} queries (${skipped}), ${st.documents} documents`);
  const resumed = folder.start?.contents ?? null;
  checkRolloutQueries(cfg, st.queries, resumed !== null, (l) => folder.warn(l));

  const o = cfg.optimizer;
  const optimizer = new T.AdamW(pol.trainable, adamWOptions(o));
  const saved = resumed?.extra ? { snapshot: resumed.extra, dir: resumed.dir } : null;
  // made before the run folder: a context too small for the prompt templates, or a corpus too large for the
  // environment's table, is refused with nothing written
  const embedder = new Embedder(pol.model, pol.tokenizer, { templates, maxLength });
  // a query prompt leaves room for the whole analysis and a forced token inside maxLength
  const promptBudget = maxLength - cfg.rollout.maxReasoningTokens - 1;
  checkReasoningRoom({
    key: 'rollout.maxReasoningTokens',
    budget: cfg.rollout.maxReasoningTokens,
    after: 1,
    maxLength,
    configured: cfg.maxLength,
    tokenizer: pol.tokenizer,
    templates,
  });
  const dim = pol.model.config.hiddenSize;
  const options = environmentOptions(cfg, cfg.environment.mode as RefreshMode);
  checkTableSize(data.docTexts.length, dim, options.maxTableBytes);
  const run = await folder.begin({
    params: pol.trainable,
    optimizer,
    settings: o,
    totalSteps,
    seed: cfg.seed,
    checkpoint: cfg.checkpoint,
    resumeNote: resumed && !saved ? REENCODED : undefined,
  });
  const state = run.state;

  // the environment: the corpus encoded by the current policy (documents embedded directly)
  const encode = (rows: readonly number[]): Float32Array[] => {
    return embedder.embedDocuments(rows.map((row) => data.docTexts[row])).vectors;
  };
  const ts = Date.now();
  const encoded = (done: number, total: number): void => {
    if (done === total || done % 2048 === 0) folder.note(`environment: ${done}/${total} documents encoded`);
  };
  const env = saved
    ? restoreEnvironment(saved.snapshot, data.docTexts.length, dim, encode, options, saved.dir)
    : RetrievalEnvironment.create(data.docTexts.length, dim, encode, options, encoded);
  // the audit's exact twin re-encodes the whole corpus every step
  const exact = opts.audit ? env.twin(environmentOptions(cfg, 'exact')) : null;
  const setupSeconds = (Date.now() - ts) / 1000;
  if (state.step === 0) {
    const trainableParameters = T.countParameters(pol.trainable);
    run.log({ type: 'data', step: 0, ...st, totalSteps, trainableParameters, environmentSetupSeconds: setupSeconds });
  }

  const embedId = embedTokenId(pol.tokenizer);
  const ends = [...assistantEndTokens(pol.tokenizer).keys()];
  const reward: RewardSettings = {
    kind: cfg.reward.kind as RankingRewardKind,
    k: cfg.reward.k,
    formatPenalty: cfg.reward.formatPenalty,
    lengthPenalty: cfg.reward.lengthPenalty,
  };
  const r = cfg.rollout,
    B = r.queries,
    G = r.group,
    epochs = cfg.loss.innerEpochs;
  let order = queryOrder(data.queries.length, cfg.seed, state.epoch);
  const nextBatch = (): RlQuery[] => {
    const out: RlQuery[] = [];
    while (out.length < Math.min(B, data.queries.length)) {
      if (state.batchIndex >= order.length) {
        state.epoch++;
        state.batchIndex = 0;
        order = queryOrder(data.queries.length, cfg.seed, state.epoch);
      }
      out.push(data.queries[order[state.batchIndex++]]);
    }
    return out;
  };

  const audit: AuditStep[] = [];
  let lastRewardMean = NaN,
    generated = 0;
  const step = async (): Promise<StepResult> => {
    const stepStart = Date.now();
    const batch = nextBatch();
    // 1. rollouts (sampling is seeded per step: a resumed run samples what the uninterrupted run would)
    const prompts = batch.map(
      (q) => encodePrompt(pol.tokenizer, q.text, 'query', templates, promptBudget, true, UNCOUNTED_CUT).ids,
    );
    const rollouts = sampleRollouts(pol.model, prompts, embedId, ends, {
      group: G,
      temperature: r.temperature,
      topP: r.topP,
      topK: r.topK,
      maxReasoningTokens: r.maxReasoningTokens,
      seed: cfg.seed * 1_000_003 + state.step,
    });
    const rolloutSeconds = (Date.now() - stepStart) / 1000;
    const lengths = rollouts.map((x) => x.to - x.from);
    generated += lengths.reduce((s, l) => s + l, 0);
    // 2. π_old and π_ref log-probabilities, and the response embeddings, before any update
    const old = T.noGrad(() => forwardRollouts(pol.model, rollouts, r.temperature));
    const oldLogp = Float32Array.from(old.logp.read());
    const ref = pol.ref;
    const refLogp = ref
      ? T.noGrad(() => forwardRollouts(ref, rollouts, r.temperature))
          .logp.read()
          .slice()
      : null;
    const embeddings = unitRows(old.emb);
    // 3. the environment: local refresh, then rewards over the whole corpus
    const queries: StepQuery[] = batch.map((q, i) => ({
      positives: q.positives,
      responses: embeddings.slice(i * G, (i + 1) * G),
    }));
    const outcome = env.step(queries);
    const more: MetricRecord[] = [];
    if (exact) {
      const a = auditStep(state.step + 1, outcome, exact.step(queries));
      audit.push(a);
      more.push({ type: 'audit', ...a });
    }
    const ranking = outcome.rewards.flat();
    const rewards = rollouts.map((x, i) => {
      return responseReward(ranking[i], !x.emitted, x.reasoningTokens, r.maxReasoningTokens, reward);
    });
    const adv = groupAdvantages(rewards, G);
    const tokenAdv = Float32Array.from(rollouts.flatMap((x, i) => new Array<number>(x.to - x.from).fill(adv[i])));
    const weights = responseMeanWeights(lengths);
    // 4. μ inner epochs of the clipped objective (+ KL, + InfoNCE); each update advances the policy version
    const upd = Date.now();
    let loss = 0,
      surrogate = 0,
      kl = 0,
      clipFraction = 0,
      infonce = 0,
      gradNorm = 0,
      lr = 0;
    /** One inner update; false when there is nothing to train on (no sampled token, no InfoNCE term). */
    const innerUpdate = (where: string | undefined): boolean => {
      const cur = forwardRollouts(pol.model, rollouts, r.temperature, run.rng);
      let total: Tensor | null = null;
      if (oldLogp.length > 0) {
        const { clipEps, beta } = cfg.loss;
        const g = grpoLoss({ logp: cur.logp, oldLogp, refLogp, advantages: tokenAdv, weights, clipEps, beta });
        total = g.loss;
        surrogate += g.surrogate / epochs;
        kl += g.kl / epochs;
        clipFraction += g.clipFraction / epochs;
      }
      if (cfg.loss.infonce > 0) {
        const nce = candidatesInfoNce(cur.emb, rollouts, batch, outcome, env, G, cfg.loss.temperature);
        infonce += nce.item() / epochs;
        const w = T.scale(nce, cfg.loss.infonce);
        total = total ? T.add(total, w) : w;
      }
      if (!total) return false;
      loss += run.checkLoss(total.item(), where) / epochs;
      total.backward();
      ({ gradNorm, lr } = run.update(where));
      env.advance();
      exact?.advance();
      return true;
    };
    for (let epoch = 0; epoch < epochs; epoch++) {
      const where = epochs > 1 ? `update ${epoch + 1} of ${epochs}` : undefined;
      if (!run.guard(where, () => innerUpdate(where))) break;
      // the update's graph is garbage now: on a GPU its buffers must come back before the next update's graph
      await T.releaseUnusedMemory();
    }
    const updateSeconds = (Date.now() - upd) / 1000;
    lastRewardMean = mean(rewards);
    const formatSuccess = mean(rollouts.map((x) => (x.emitted ? 1 : 0)));
    const record = {
      loss,
      surrogate,
      kl,
      clipFraction,
      infonce,
      lr,
      gradNorm,
      rewardMean: lastRewardMean,
      rewardStd: std(rewards),
      rankingRewardMean: mean(ranking),
      zeroAdvantageGroups: batch.filter((_, i) => adv.slice(i * G, (i + 1) * G).every((a) => a === 0)).length,
      formatSuccess,
      forced: rollouts.filter((x) => !x.emitted).length,
      reasoningTokens: mean(rollouts.map((x) => x.reasoningTokens)),
      env: envRecord(outcome.stats),
      rolloutSeconds,
      updateSeconds,
    };
    const extra = `reward ${lastRewardMean.toFixed(3)} fmt ${formatSuccess.toFixed(2)} enc ${outcome.stats.encodes}`;
    return { record, progress: { loss, lr, tokensPerSec: run.rate(generated), extra }, more };
  };
  // the graph is built afresh from the table at the scheduled checkpoints (every checkpoint.every steps), and by
  // the environment itself after a full refresh or once its edits reach a table's worth: a checkpoint off that
  // schedule (a signal, a deadline, a session's last step) saves the graph's edits since the last build instead,
  // so a run resumed from it grows the graph the uninterrupted run grows
  const checkpointFiles = (dir: string): Promise<void> => {
    if (state.step % cfg.checkpoint.every === 0) env.rebuildGraph();
    return saveEnvironment(dir, env.snapshot());
  };
  await run.loop({ step, onStep: opts.onStep, checkpointFiles });
  // a session stopped at its deadline leaves checkpoints only: final/ is what a finished run made
  if (run.finished) await saveFineTuned(path.join(cfg.output, 'final'), pol);
  return {
    finished: run.finished,
    steps: state.step,
    startStep: run.startStep,
    seconds: (Date.now() - t0) / 1000,
    data: st,
    output: cfg.output,
    audit,
    setupSeconds,
    environmentRestored: saved !== null,
    lastRewardMean,
  };
}

/** What the audit compares at one step: the local environment's work and rewards against the exact twin's. */
function auditStep(step: number, local: StepOutcome, exact: StepOutcome): AuditStep {
  return {
    step,
    localEncodes: local.stats.encodes,
    exactEncodes: exact.stats.encodes,
    localSeconds: local.stats.seconds,
    exactSeconds: exact.stats.seconds,
    localStaleness: local.stats.meanStaleness,
    localRewards: local.rewards.flat(),
    exactRewards: exact.rewards.flat(),
  };
}

function restoreEnvironment(
  snap: EnvironmentSnapshot,
  rows: number,
  dim: number,
  encode: DocumentEncoder,
  o: EnvironmentOptions,
  dir: string,
): RetrievalEnvironment {
  try {
    return RetrievalEnvironment.restore(snap, rows, dim, encode, o);
  } catch (e) {
    if (e instanceof TableTooLargeError) throw e;
    throw new RunFolderError(`${dir}: ${(e as Error).message}; resume with the config the run was started with`);
  }
}

function envRecord(s: StepStats): Record<string, unknown> {
  return {
    version: s.version,
    encodes: s.encodes,
    ...s.counts,
    meanStaleness: s.meanStaleness,
    staleRows: s.staleRows,
    seconds: s.seconds,
    encodeSeconds: s.encodeSeconds,
    graphSeconds: s.graphSeconds,
  };
}
