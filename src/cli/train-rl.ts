import { loadRlConfig } from '../train/rl/config.js';
import { trainRl } from '../train/rl/trainer.js';
import { formatDuration } from '../train/progress.js';
import { heldOutClause } from '../train/hold-out.js';
import type { TrainStage } from './train.js';
import { deviceHelp } from './device-option.js';
import { MAX_SECONDS_HELP } from './train-session.js';

const HELP = `search-r3 train rl — stage 2: GRPO with a retrieval reward in the rlenv environment

usage: search-r3 train rl --config <file.json> [--resume] [--max-seconds <n>] [--quiet]
                          [--device auto|cpu|webgpu]

Each step takes rollout.queries training queries and samples rollout.group responses for each (an
analysis, then <|embed_token|>; forced and penalised when missing). Each response's embedding ranks the
environment's corpus; reward = DCG@k of the positives (nDCG@k or 1/rank selectable) − format penalty −
length penalty; advantages are normalised within each group; loss.innerEpochs updates of the clipped
surrogate over the sampled tokens + β·KL(π‖π_ref) (k3 estimator, π_ref = the starting model) + an
optional InfoNCE of each response embedding against its positives and the environment's candidates.
The environment keeps the corpus table and an HNSW graph, and per step re-encodes only the positives,
the candidates, their graph neighbours (within a budget) and the stalest rows (see docs/rlenv.md).

The run folder gets metrics.jsonl (per step: reward mean/std, KL, clip fraction, format success,
reasoning length, environment statistics), checkpoints/step-NNNNNNNN and final/.

config (JSON; unknown keys are an error; model, output and data.beir are required):
  model (a model folder: stage-1 final/ or best/), output, seed (0), steps (100), maxLength (256)
  data: {beir: <folder>, split: "train" (never "test"), holdOut: null | {n, seed} (leave out the seeded sample of n
         queries that is a dev set), maxQueries: 0, maxDocuments: 0 (0 = all)}
  rollout: {queries: 4, group: 4, temperature: 1, topP: 1, topK: 0, maxReasoningTokens: 32}
           (queries per step: at most the training queries there are, else the run is refused)
  reward: {kind: "dcg" | "ndcg" | "rr", k: 10 (rr: 0 = no cutoff), formatPenalty: 0.5, lengthPenalty: 0}
          (both penalties ≥ 0: they are taken from the reward)
  loss: {clipEps: 0.2, beta: 0.04, innerEpochs: 1, infonce: 0, temperature: 0.05}
  optimizer: {lr: 1e-5, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, warmupSteps: 0, minLr: 0, maxGradNorm: 1}
  lora: null (full fine-tuning) | {rank: 8, alpha: 16, dropout: 0, targets: [...]}
  environment: {mode: "local" | "exact", budget: 200, candidates: 8, neighbours: 4, rolling: 32,
                fullEvery: 0, returnCandidates: 16, maxTableBytes: 0 (half the memory),
                connectivity: 16, expansionAdd: 128, expansionSearch: 64, driftCorrection: true}
  checkpoint: {every: 50, keep: 2}
  templates: {querySystem, documentSystem, reasoningSystem, directResponse}

options:
  --config <file>  the training config
  --resume         continue from the newest checkpoint: weights, optimiser, data position, sampling and
                   the environment's table are restored, so the run ends as an uninterrupted one would;
                   a run stopped before its first checkpoint starts again at step 0
${MAX_SECONDS_HELP}
  --quiet          no progress output
${deviceHelp(19)}
  -h, --help       this help`;

export const trainRlStage: TrainStage = {
  name: 'rl',
  summary: 'stage 2: GRPO with a retrieval reward (rlenv environment)',
  gpuSizeSettings: 'fewer "rollout.queries" or "rollout.group", or a smaller "maxLength", in the config',
  help: HELP,
  async train(config, options) {
    const s = await trainRl(loadRlConfig(config), options);
    const environment =
      `environment ${s.environmentRestored ? 'restored from the checkpoint' : 'built'} in ` +
      `${s.setupSeconds.toFixed(1)} s`;
    const trained =
      s.steps > s.startStep
        ? `trained steps ${s.startStep}→${s.steps} in ${formatDuration(s.seconds)} (${environment}): ` +
          `last mean reward ${s.lastRewardMean.toFixed(4)}`
        : `${s.finished ? 'already trained to' : 'stopped before a step, at'} step ${s.steps}`;
    return {
      finished: s.finished,
      steps: s.steps,
      line:
        `${trained}; ${s.data.queries} queries ` +
        `(${s.data.skippedNoPositiveInCorpus} skipped: no positive in the corpus${heldOutClause(s.data.heldOut)}), ` +
        `${s.data.documents} documents; ` +
        `output in ${s.output}`,
    };
  },
};
