import { loadSftConfig } from '../train/sft/config.js';
import { trainSft } from '../train/sft/trainer.js';
import { formatDuration } from '../train/progress.js';
import { heldOutClause } from '../train/hold-out.js';
import type { TrainStage } from './train.js';
import { deviceHelp } from './device-option.js';
import { MAX_SECONDS_HELP } from './train-session.js';

const HELP = `search-r3 train sft — stage 1: instruction-guided representation learning (contrastive SFT)

usage: search-r3 train sft --config <file.json> [--resume] [--max-seconds <n>] [--quiet]
                           [--device auto|cpu|webgpu]

Trains a Qwen2 model to answer the Search-R3 prompt with "The embedding is <|embed_token|>." and to
make the hidden state at that token a search embedding:
  loss = w_sft·L_SFT + w_kl·KL(π‖π_ref) + w_nce·InfoNCE(τ) + w_tri·Triplet(θ)
with in-batch plus hard negatives (search-r3 mine), LoRA or full fine-tuning, AdamW with warm-up +
cosine decay, gradient accumulation and GradCache (batch.subBatch) for contrastive batches larger
than one forward pass.

The run folder ("output") gets metrics.jsonl (one record per step and per dev evaluation),
checkpoints/step-NNNNNNNN (written atomically every checkpoint.every steps and at the end), best/
(the best dev nDCG@10), final/, and report.html (loss and nDCG curves).

config (JSON; every key optional except model, output and data; unknown keys are an error):
  model, output, seed (0), maxLength (512), steps (0 = from epochs), epochs (1)
  data: [{"type": "beir", "path", "split": "train", "sameTitleNegatives": 0 (other paragraphs of the
           positive's article as hard negatives), "holdOut": {"n", "seed"} (leave out the seeded sample
           of n queries that is a dev set; none by default)} | {"type": "jsonl", "path"}
         | {"type": "pairs", "path"} | {"type": "climate-fever", "path"}
         | {"type": "pseudo-queries", "path": <BEIR folder or corpus.jsonl>, "queries": "title" | "sentence",
            "seed": 0, "maxDocuments": 0}  (a title asks for its body; a sentence for the rest of its
            document — the inverse cloze task; documents only, no judged query is read)]
  batch: {queries: 16, hardNegatives: 1, subBatch: 0 (0 = no GradCache), accumulation: 1}
  loss: {sft: 1, kl: 1, infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2}
  optimizer: {lr: 1e-4, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, warmupSteps: 10,
              minLr: 0, maxGradNorm: 1 (0 = no clipping)}
  lora: null (full fine-tuning) | {rank: 8, alpha: 16, dropout: 0, targets: [q_proj, ...]}
  checkpoint: {every: 100, keep: 2}
  eval: null | {beir: <folder>, split: "dev", every: 100, maxQueries: 0, maxDocuments: 0}  (the first
        maxQueries queries, over their judged documents plus the first maxDocuments others; 0 = all)
  templates: {querySystem, documentSystem, reasoningSystem, directResponse}
  reasoning: null | {fraction: 0.5, concepts: 3, related: 3, maxTokens: 24}  (that share of queries
             learns an analysis of its key concepts, from its positive, before the embed token)

options:
  --config <file>  the training config
  --resume         continue from the newest checkpoint in the run folder (same result as a run
                   that was never interrupted); a run stopped before its first checkpoint starts
                   again at step 0
${MAX_SECONDS_HELP}
  --quiet          no progress bar
${deviceHelp(19)}
  -h, --help       this help`;

export const trainSftStage: TrainStage = {
  name: 'sft',
  summary: 'stage 1: contrastive SFT with the <|embed_token|> protocol',
  gpuSizeSettings:
    'a smaller "batch.subBatch" (sequences per forward pass; 0 is the whole batch) or "maxLength" in the config',
  help: HELP,
  async train(config, options) {
    const r = await trainSft(loadSftConfig(config), options);
    const best = r.bestScore !== null ? `, best dev nDCG@10 ${r.bestScore.toFixed(4)} at step ${r.bestStep}` : '';
    // a resumed run that was already finished trains no step: it has no loss of its own to say
    const trained =
      r.steps > r.startStep
        ? `trained steps ${r.startStep}→${r.steps} in ${formatDuration(r.seconds)}: ` +
          `final loss ${r.finalLoss.toFixed(4)}`
        : `${r.finished ? 'already trained to' : 'stopped before a step, at'} step ${r.steps}`;
    return {
      finished: r.finished,
      steps: r.steps,
      line:
        `${trained}${best}; ${r.data.withoutPositive} queries without a positive, ` +
        `${r.data.positiveIsQuery} whose only positive is the query itself and ` +
        `${r.data.emptyTexts} empty texts skipped, ${r.truncatedTexts} texts cut${heldOutClause(r.data.heldOut)}; ` +
        `output in ${r.output}`,
    };
  },
};
