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
 * A checkpoint also holds the environment (table, row versions, drift means); the graph is rebuilt from
 * the table at every checkpoint, so resume continues with the same weights, optimiser, data position,
 * sampling and environment: the resumed run is bit-identical to the uninterrupted one.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

import * as T from '../../tensor/index.js';
import type { Tensor } from '../../tensor/index.js';
import { attachLora, loraParameters, saveLoraAdapter, type LoraConfig, type LoraTarget } from '../../model/lora.js';
import { addSpecialTokens, loadModelFolder, saveModelFolder } from '../../model/model-folder.js';
import { Qwen2Model } from '../../model/qwen2-model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { Embedder } from '../../embed/embedder.js';
import {
  DEFAULT_TEMPLATES, EMBED_TOKEN, type PromptTemplates, assistantEndTokens, embedTokenId, encodePrompt,
} from '../../embed/prompts.js';
import { RetrievalEnvironment, type DocumentEncoder, type EnvironmentOptions, type EnvironmentSnapshot, type StepQuery, type StepStats } from '../../rlenv/environment.js';
import { responseReward, type RankingRewardKind, type RewardSettings } from '../../rlenv/reward.js';
import type { RefreshMode } from '../../rlenv/refresh-policy.js';
import { TableTooLargeError, defaultTableLimit } from '../../rlenv/embedding-table.js';
import type { AuditStep } from '../../rlenv/audit.js';
import {
  applyCheckpoint, removeStaleTemporaries, saveCheckpoint, skippedCheckpointNotes, startingCheckpoint,
  type TrainerState,
} from '../checkpoint.js';
import { writeDirAtomically } from '../../model/atomic-file.js';
import { loadEnvironment, saveEnvironment } from './environment-checkpoint.js';
import { MetricsLog } from '../metrics-log.js';
import type { MetricRecord } from '../report.js';
import { ProgressBar } from '../progress.js';
import { groupAdvantages, grpoLoss, responseMeanWeights } from './grpo.js';
import { loadRlData, type RlData, type RlQuery } from './data.js';
import type { RlConfig } from './config.js';
import { forwardRollouts, sampleRollouts, unitRows, type Rollout } from './rollout.js';
import { RunFolderError } from '../run-folder-error.js';

export interface RlTrainOptions {
  resume?: boolean;
  progress?: boolean;
  /** Also score every step's responses in an exact-mode environment (search-r3 rlenv audit). */
  audit?: boolean;
  /** Override cfg.steps (the audit runs a few steps of a training config). */
  steps?: number;
  onStep?: (step: number, record: Record<string, unknown>) => void;
  /** Damage found in the run folder and worked around; shown even without progress (default: stderr). */
  warn?: (line: string) => void;
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
}

interface Policy {
  model: Qwen2Model;
  tokenizer: Tokenizer;
  ref: Qwen2Model | null;
  trainable: Tensor[];
  lora: LoraConfig | null;
}

async function setupPolicy(cfg: RlConfig): Promise<Policy> {
  const loaded = await loadModelFolder(cfg.model, { trainable: cfg.lora === null });
  let model = loaded.model;
  const tokenizer = loaded.tokenizer;
  if (tokenizer.tokenToId(EMBED_TOKEN) === undefined) model = addSpecialTokens({ model, tokenizer }, [EMBED_TOKEN]).model;
  const needRef = cfg.loss.beta > 0;
  if (cfg.lora) {
    const lora: LoraConfig = { rank: cfg.lora.rank, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targets: cfg.lora.targets as LoraTarget[] };
    attachLora(model, lora, new T.Rng(cfg.seed));
    // the reference is the same base weights with no adapter attached
    return { model, tokenizer, ref: needRef ? new Qwen2Model(model.config, model.params) : null, trainable: loraParameters(model), lora };
  }
  const ref = needRef ? new Qwen2Model(model.config, new Map([...model.params].map(([k, v]) => [k, new T.Tensor(Float32Array.from(v.data), v.shape, false, k)]))) : null;
  for (const p of model.parameters()) p.requiresGrad = true;
  return { model, tokenizer, ref, trainable: model.parameters(), lora: null };
}

/** Query order of one pass over the training queries (seeded Fisher–Yates). */
function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rng = new T.Rng(seed * 7919 + epoch * 104729 + 17);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = rng.int(i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  return order;
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((s, v) => s + v, 0) / xs.length : 0);
const std = (xs: readonly number[]): number => { const m = mean(xs); return Math.sqrt(mean(xs.map((x) => (x - m) ** 2))); };

/** −log Σ_{p ∈ positives} softmax(cos(e, D)/τ): InfoNCE of one response embedding against constant documents. */
function responseInfoNce(emb: Tensor, docs: Float32Array, m: number, isPositive: boolean[], temperature: number): Tensor {
  const d = emb.shape[1];
  const logits = T.scale(T.matmul(T.l2normalize(emb), new T.Tensor(docs, [m, d]), { transB: true }), 1 / temperature);
  const mask = Float32Array.from(isPositive, (p) => (p ? 0 : -1e4));
  return T.neg(T.logsumexp(T.add(T.logSoftmax(logits), new T.Tensor(mask, [1, m])), -1));
}

export async function trainRl(cfg: RlConfig, opts: RlTrainOptions = {}): Promise<RlSummary> {
  const t0 = Date.now();
  const totalSteps = opts.steps ?? cfg.steps;
  const ckptRoot = path.join(cfg.output, 'checkpoints');
  // read and checked (the environment too) before anything in the run folder is written
  const start = await startingCheckpoint(cfg.output, opts.resume ?? false, loadEnvironment);
  await fsp.mkdir(cfg.output, { recursive: true });
  const progressOn = opts.progress ?? true;
  const note = (msg: string): void => { if (progressOn) process.stderr.write(`${msg}\n`); };
  const warn = opts.warn ?? ((line: string): void => { process.stderr.write(`${line}\n`); });

  const pol = await setupPolicy(cfg);
  const templates: PromptTemplates = { ...DEFAULT_TEMPLATES, ...cfg.templates };
  const maxLength = Math.min(cfg.maxLength, pol.model.config.maxPositionEmbeddings);
  const data = await loadRlData(cfg.data.beir, cfg.data.split, cfg.data.maxQueries, cfg.data.maxDocuments);
  if (data.queries.length === 0) throw new RunFolderError(`${cfg.data.beir} (${cfg.data.split}): no query has a positive in the corpus (${data.stats.skippedNoPositiveInCorpus} skipped)`);
  note(`data: ${data.stats.queries} queries (${data.stats.skippedNoPositiveInCorpus} skipped: no positive in the corpus; ${data.stats.positivesNotInCorpus} judged documents missing), ${data.stats.documents} documents`);

  const o = cfg.optimizer;
  const opt = new T.AdamW(pol.trainable, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
  const schedule = T.warmupCosine(o.lr, o.warmupSteps, totalSteps, o.minLr);
  let state: TrainerState = { step: 0, epoch: 0, batchIndex: 0, rng: new T.Rng(cfg.seed + 1).state(), bestScore: null, bestStep: null };
  // the environment the resumed checkpoint holds, with that checkpoint's folder (for messages)
  let saved: { snapshot: EnvironmentSnapshot; dir: string } | null = null;
  if (start) {
    const { dir, extra } = start.contents;
    const ck = applyCheckpoint(start.contents, pol.trainable);
    opt.loadState(ck.optimizer);
    state = ck.state;
    saved = extra && { snapshot: extra, dir };
    for (const line of skippedCheckpointNotes(start)) warn(line);
    const reencoded = '; it holds no environment (an older checkpoint), so the corpus is re-encoded '
      + 'with the resumed policy';
    note(`resuming from ${dir} (step ${state.step} of ${totalSteps})${saved ? '' : reencoded}`);
  }
  await removeStaleTemporaries(ckptRoot);
  const metrics = await MetricsLog.open(path.join(cfg.output, 'metrics.jsonl'), start ? state.step : null);
  if (metrics.note) warn(metrics.note);
  const log = (r: MetricRecord): void => metrics.log.append(r);

  // the environment: the corpus encoded by the current policy (documents embedded directly)
  const embedder = new Embedder(pol.model, pol.tokenizer, { templates, maxLength });
  const encode = (rows: readonly number[]): Float32Array[] => embedder.embedDocuments(rows.map((r) => data.docTexts[r])).vectors;
  const e = cfg.environment;
  const envOptions = (mode: RefreshMode): EnvironmentOptions => ({
    refresh: { mode, budget: e.budget, candidates: e.candidates, neighbours: e.neighbours, rolling: e.rolling, fullEvery: e.fullEvery },
    graph: { connectivity: e.connectivity, expansionAdd: e.expansionAdd, expansionSearch: e.expansionSearch },
    maxTableBytes: e.maxTableBytes > 0 ? e.maxTableBytes : defaultTableLimit(),
    reward: { kind: cfg.reward.kind as RankingRewardKind, k: cfg.reward.k },
    returnCandidates: cfg.loss.infonce > 0 ? e.returnCandidates : 0,
    driftCorrection: mode === 'local' && e.driftCorrection,
  });
  const ts = Date.now();
  const dim = pol.model.config.hiddenSize;
  const bar0 = (what: string) => (done: number, total: number): void => { if (progressOn && (done === total || done % 2048 === 0)) process.stderr.write(`${what}: ${done}/${total} documents encoded\n`); };
  const env = saved
    ? restoreEnvironment(saved.snapshot, data.docTexts.length, dim, encode, envOptions(e.mode as RefreshMode), saved.dir)
    : RetrievalEnvironment.create(data.docTexts.length, dim, encode, envOptions(e.mode as RefreshMode), bar0('environment'));
  // the audit's exact twin re-encodes the whole corpus every step
  const exact = opts.audit ? env.twin(envOptions('exact')) : null;
  const setupSeconds = (Date.now() - ts) / 1000;
  if (state.step === 0) log({ type: 'data', step: 0, ...data.stats, totalSteps, trainableParameters: T.countParameters(pol.trainable), environmentSetupSeconds: setupSeconds });

  const embedId = embedTokenId(pol.tokenizer);
  const ends = [...assistantEndTokens(pol.tokenizer).keys()];
  const reward: RewardSettings = { kind: cfg.reward.kind as RankingRewardKind, k: cfg.reward.k, formatPenalty: cfg.reward.formatPenalty, lengthPenalty: cfg.reward.lengthPenalty };
  const r = cfg.rollout, B = r.queries, G = r.group;
  const rng = new T.Rng(state.rng);
  let order = epochOrder(data.queries.length, cfg.seed, state.epoch);
  const nextBatch = (): RlQuery[] => {
    const out: RlQuery[] = [];
    while (out.length < Math.min(B, data.queries.length)) {
      if (state.batchIndex >= order.length) { state.epoch++; state.batchIndex = 0; order = epochOrder(data.queries.length, cfg.seed, state.epoch); }
      out.push(data.queries[order[state.batchIndex++]]);
    }
    return out;
  };

  const audit: AuditStep[] = [];
  const bar = new ProgressBar(totalSteps, state.step, process.stderr, 5000, progressOn);
  const startStep = state.step;
  let lastRewardMean = NaN, generated = 0;
  const runStart = Date.now();
  while (state.step < totalSteps) {
    const stepStart = Date.now();
    const batch = nextBatch();
    // 1. rollouts (sampling is seeded per step: a resumed run samples what the uninterrupted run would)
    // the prompt leaves room for the whole analysis and a forced token inside the model's context
    const promptBudget = maxLength - r.maxReasoningTokens - 1;
    const prompts = batch.map((q) => encodePrompt(pol.tokenizer, q.text, 'query', templates, promptBudget, true).ids);
    const rollouts = sampleRollouts(pol.model, prompts, embedId, ends, { group: G, temperature: r.temperature, topP: r.topP, topK: r.topK, maxReasoningTokens: r.maxReasoningTokens, seed: cfg.seed * 1_000_003 + state.step });
    const rolloutSeconds = (Date.now() - stepStart) / 1000;
    const lengths = rollouts.map((x) => x.to - x.from);
    generated += lengths.reduce((s, l) => s + l, 0);
    // 2. π_old and π_ref log-probabilities, and the response embeddings, before any update
    const old = T.noGrad(() => forwardRollouts(pol.model, rollouts, r.temperature));
    const oldLogp = Float32Array.from(old.logp.data);
    const refLogp = pol.ref ? Float32Array.from(T.noGrad(() => forwardRollouts(pol.ref!, rollouts, r.temperature)).logp.data) : null;
    const embeddings = unitRows(old.emb);
    // 3. the environment: local refresh, then rewards over the whole corpus
    const queries: StepQuery[] = batch.map((q, i) => ({ positives: q.positives, responses: embeddings.slice(i * G, (i + 1) * G) }));
    const outcome = env.step(queries);
    let auditRecord: MetricRecord | null = null;
    if (exact) {
      const ex = exact.step(queries);
      const a: AuditStep = {
        step: state.step + 1, localEncodes: outcome.stats.encodes, exactEncodes: ex.stats.encodes,
        localSeconds: outcome.stats.seconds, exactSeconds: ex.stats.seconds, localStaleness: outcome.stats.meanStaleness,
        localRewards: outcome.rewards.flat(), exactRewards: ex.rewards.flat(),
      };
      audit.push(a);
      auditRecord = { type: 'audit', ...a };
    }
    const ranking = outcome.rewards.flat();
    const rewards = rollouts.map((x, i) => responseReward(ranking[i], !x.emitted, x.reasoningTokens, r.maxReasoningTokens, reward));
    const adv = groupAdvantages(rewards, G);
    const tokenAdv = Float32Array.from(rollouts.flatMap((x, i) => new Array<number>(x.to - x.from).fill(adv[i])));
    const weights = responseMeanWeights(lengths);
    // 4. μ inner epochs of the clipped objective (+ KL, + InfoNCE); each update advances the policy version
    const upd = Date.now();
    let loss = 0, surrogate = 0, kl = 0, clipFraction = 0, infonce = 0, gradNorm = 0, lr = 0;
    for (let epoch = 0; epoch < cfg.loss.innerEpochs; epoch++) {
      const cur = forwardRollouts(pol.model, rollouts, r.temperature, rng);
      let total: Tensor | null = null;
      if (oldLogp.length > 0) {
        const g = grpoLoss({ logp: cur.logp, oldLogp, refLogp, advantages: tokenAdv, weights, clipEps: cfg.loss.clipEps, beta: cfg.loss.beta });
        total = g.loss;
        surrogate += g.surrogate / cfg.loss.innerEpochs; kl += g.kl / cfg.loss.innerEpochs; clipFraction += g.clipFraction / cfg.loss.innerEpochs;
      }
      if (cfg.loss.infonce > 0) {
        const terms: Tensor[] = [];
        rollouts.forEach((x, i) => {
          const q = batch[x.query];
          const pos = q.positives.map((p) => p.row);
          const rows = [...pos, ...outcome.candidates[x.query][i % G].filter((c) => !pos.includes(c))];
          const docs = new Float32Array(rows.length * dim);
          rows.forEach((row, j) => docs.set(env.table.row(row), j * dim));
          terms.push(responseInfoNce(T.slice(cur.emb, 0, i, i + 1), docs, rows.length, rows.map((_, j) => j < pos.length), cfg.loss.temperature));
        });
        const nce = T.scale(T.sum(T.concat(terms.map((t) => T.reshape(t, [1])), 0)), 1 / terms.length);
        infonce += nce.item() / cfg.loss.innerEpochs;
        const w = T.scale(nce, cfg.loss.infonce);
        total = total ? T.add(total, w) : w;
      }
      if (!total) break;
      loss += total.item() / cfg.loss.innerEpochs;
      total.backward();
      gradNorm = T.clipGradNorm(pol.trainable, o.maxGradNorm > 0 ? o.maxGradNorm : Infinity);
      lr = schedule(state.step);
      opt.step(lr);
      opt.zeroGrad();
      env.advance();
      exact?.advance();
    }
    const updateSeconds = (Date.now() - upd) / 1000;
    state.step++;
    lastRewardMean = mean(rewards);
    const record = {
      type: 'train', step: state.step, epoch: state.epoch, loss, surrogate, kl, clipFraction, infonce, lr, gradNorm,
      rewardMean: lastRewardMean, rewardStd: std(rewards), rankingRewardMean: mean(ranking),
      zeroAdvantageGroups: batch.filter((_, i) => adv.slice(i * G, (i + 1) * G).every((a) => a === 0)).length,
      formatSuccess: mean(rollouts.map((x) => (x.emitted ? 1 : 0))), forced: rollouts.filter((x) => !x.emitted).length,
      reasoningTokens: mean(rollouts.map((x) => x.reasoningTokens)),
      env: envRecord(outcome.stats),
      rolloutSeconds, updateSeconds, stepSeconds: (Date.now() - stepStart) / 1000,
    };
    if (!Number.isFinite(loss)) throw new RunFolderError(`step ${state.step}: the loss is ${loss}; lower optimizer.lr and resume from the last checkpoint`);
    log(record);
    if (auditRecord) log(auditRecord);
    opts.onStep?.(state.step, record);
    bar.update(state.step, { loss, lr, tokensPerSec: generated / Math.max(1e-3, (Date.now() - runStart) / 1000), extra: `reward ${lastRewardMean.toFixed(3)} fmt ${record.formatSuccess.toFixed(2)} enc ${outcome.stats.encodes}` });
    if (state.step % cfg.checkpoint.every === 0 || state.step === totalSteps) {
      state.rng = rng.state();
      // the run goes on with the graph a resume would build from the saved table
      env.rebuildGraph();
      await saveCheckpoint(ckptRoot, pol.trainable, opt.state(), state, cfg.checkpoint.keep, (dir) => saveEnvironment(dir, env.snapshot()));
    }
  }
  bar.done();
  await saveFinal(path.join(cfg.output, 'final'), pol);
  return { steps: state.step, startStep, seconds: (Date.now() - t0) / 1000, data: data.stats, output: cfg.output, audit, setupSeconds, environmentRestored: saved !== null, lastRewardMean };
}

function restoreEnvironment(snap: EnvironmentSnapshot, rows: number, dim: number, encode: DocumentEncoder, o: EnvironmentOptions, dir: string): RetrievalEnvironment {
  try {
    return RetrievalEnvironment.restore(snap, rows, dim, encode, o);
  } catch (e) {
    if (e instanceof TableTooLargeError) throw e;
    throw new RunFolderError(`${dir}: ${(e as Error).message}; resume with the config the run was started with`);
  }
}

function envRecord(s: StepStats): Record<string, unknown> {
  return { version: s.version, encodes: s.encodes, ...s.counts, meanStaleness: s.meanStaleness, staleRows: s.staleRows, seconds: s.seconds, encodeSeconds: s.encodeSeconds, graphSeconds: s.graphSeconds };
}

async function saveFinal(dir: string, p: Policy): Promise<void> {
  await writeDirAtomically(dir, async (tmp) => {
    if (p.lora) { await saveLoraAdapter(tmp, p.model, p.lora); await p.tokenizer.save(tmp); }
    else await saveModelFolder(tmp, { model: p.model, tokenizer: p.tokenizer });
  });
}

export type { Rollout };
