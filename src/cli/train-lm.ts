import { loadLmConfig } from '../train/lm/config.js';
import { trainLm } from '../train/lm/trainer.js';
import { formatDuration } from '../train/progress.js';
import type { TrainStage } from './train.js';
import { deviceHelp } from './device-option.js';
import { MAX_SECONDS_HELP } from './train-session.js';

const HELP = `search-r3 train lm — pretrain a small Qwen2 language model from scratch (causal LM)

usage: search-r3 train lm --config <file.json> [--resume] [--max-seconds <n>] [--quiet]
                          [--device auto|cpu|webgpu]

Tokenizes the training and validation text (cached in <output>/tokens/), puts the separator token
(<|endoftext|>) before every document, packs each split into sequences of seqLength tokens (no
sequence crosses a split), and trains next-token cross-entropy with AdamW, warm-up + cosine decay,
gradient clipping and accumulation. The sequence order is a seeded shuffle per epoch.

The run folder gets metrics.jsonl (a record per step and per validation: loss, perplexity, lr,
grad norm, tokens/s), checkpoints/step-NNNNNNNN (weights, optimiser moments, data position and
generator state, written atomically) and final/ (a Hugging Face model folder with the tokenizer).

config (JSON; unknown keys are an error; tokenizer, output and data.train are required):
  tokenizer (folder from search-r3 tokenizer train), output, seed (0)
  init ("": random weights; or a model folder of the same shape, e.g. an earlier run's final/, to go on from)
  model: {hiddenSize: 256, intermediateSize: 768, numHiddenLayers: 4, numAttentionHeads: 4,
          numKeyValueHeads: 2, ropeTheta: 10000, maxPositionEmbeddings: 1024,
          tieWordEmbeddings: true, rmsNormEps: 1e-6, initStd: 0.02}
  data: {train: [files/folders], valid: [files/folders], separator: "<|endoftext|>"}
        (.jsonl: one document per line, "title" + "text"; other files named: one document each;
        of a folder, its .jsonl and .txt files, recursively; a BEIR folder's queries.jsonl is refused in train)
  seqLength (256), batchSize (8), accumulation (1), steps (0 = one pass over the training sequences)
  optimizer: {lr: 1e-3, weightDecay: 0.1 (matrices only; none on norms and biases), beta1: 0.9,
              beta2: 0.95, eps: 1e-8, warmupSteps: 100,
              minLr: lr / 10 (≤ lr), maxGradNorm: 1 (0 = no clipping)}
  eval: {every: 200, maxSequences: 64 (0 = all)}
  checkpoint: {every: 200, keep: 2}
  saveDtype ("F32" | "F16", for final/)

options:
  --config <file>  the config
  --resume         continue from the newest checkpoint (same result as an uninterrupted run); a run
                   stopped before its first checkpoint starts again at step 0
${MAX_SECONDS_HELP}
  --quiet          no progress output
${deviceHelp(19)}
  -h, --help       this help`;

export const trainLmStage: TrainStage = {
  name: 'lm',
  summary: 'pretrain a small Qwen2 language model (causal LM)',
  gpuSizeSettings: 'a smaller "batchSize" (more "accumulation" keeps the step\'s batch) or "seqLength" in the config',
  help: HELP,
  async train(config, options) {
    const r = await trainLm(loadLmConfig(config), options);
    const valid =
      r.validLoss !== null
        ? `, valid loss ${r.validLoss.toFixed(4)} (perplexity ${Math.exp(r.validLoss).toFixed(2)})`
        : '';
    // a run resumed after its last step (or stopped before one) trains nothing: no loss or speed of its own
    const trained =
      r.steps > r.startStep
        ? `trained steps ${r.startStep}→${r.steps} of ${r.totalSteps} in ${formatDuration(r.seconds)} ` +
          `(${Math.round(r.tokensPerSec)} tokens/s): ${(r.parameters / 1e6).toFixed(2)}M parameters, ` +
          `final loss ${r.finalLoss.toFixed(4)}`
        : `${r.steps >= r.totalSteps ? 'already trained to' : 'stopped before a step, at'} step ${r.steps} of ` +
          `${r.totalSteps}: ${(r.parameters / 1e6).toFixed(2)}M parameters`;
    return { finished: r.steps >= r.totalSteps, steps: r.steps, line: `${trained}${valid}; output in ${r.output}` };
  },
};
