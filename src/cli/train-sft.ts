import { parseArgs } from 'node:util';
import { UserError, type Command } from './command.js';
import { ConfigError } from '../train/config-merge.js';
import { loadSftConfig } from '../train/sft/config.js';
import { DataError } from '../train/sft/data.js';
import { trainSft } from '../train/sft/trainer.js';
import { RunFolderError } from '../train/run-folder-error.js';
import { TrainingDiverged } from '../train/training-run.js';
import { formatDuration } from '../train/progress.js';

const HELP = `search-r3 train sft — stage 1: instruction-guided representation learning (contrastive SFT)

usage: search-r3 train sft --config <file.json> [--resume] [--quiet]

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
  data: [{"type": "beir", "path", "split": "train"} | {"type": "jsonl", "path"}
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
  eval: null | {beir: <folder>, split: "dev", every: 100, maxQueries: 0, maxDocuments: 0}
  templates: {querySystem, documentSystem, reasoningSystem, directResponse}

options:
  --config <file>  the training config
  --resume         continue from the newest checkpoint in the run folder (same result as a run
                   that was never interrupted)
  --quiet          no progress bar
  -h, --help       this help`;

export const trainSftCommand: Command = {
  name: 'sft',
  summary: 'stage 1: contrastive SFT with the <|embed_token|> protocol',
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: {
      config: { type: 'string' }, resume: { type: 'boolean' }, quiet: { type: 'boolean' },
    } });
    if (!values.config) throw new UserError('train sft needs --config <file.json> (see search-r3 train sft --help).');
    try {
      const cfg = loadSftConfig(values.config);
      const r = await trainSft(cfg, { resume: values.resume ?? false, progress: !values.quiet });
      const best = r.bestScore !== null ? `, best dev nDCG@10 ${r.bestScore.toFixed(4)} at step ${r.bestStep}` : '';
      console.log(`trained steps ${r.startStep}→${r.steps} in ${formatDuration(r.seconds)}: final loss ${r.finalLoss.toFixed(4)}${best}; ` +
        `${r.data.withoutPositive} queries without a positive and ${r.data.emptyTexts} empty texts skipped, ${r.truncatedTexts} texts cut; output in ${r.output}`);
      return 0;
    } catch (e) {
      if (e instanceof ConfigError || e instanceof DataError || e instanceof RunFolderError || e instanceof TrainingDiverged) throw new UserError(e.message);
      throw e;
    }
  },
};

const GROUP_HELP = `search-r3 train — training stages

usage: search-r3 train <stage> [options]   (search-r3 train <stage> --help)

stages:
  sft   ${trainSftCommand.summary}

${HELP}`;

/** \`search-r3 train <stage>\`: one line per stage below. */
const stages: Command[] = [trainSftCommand];

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a model (train sft: stage 1)',
  help: GROUP_HELP,
  subcommands: stages.map((c) => c.name),
  async run(argv: string[]): Promise<number> {
    const [stage, ...rest] = argv;
    const cmd = stages.find((c) => c.name === stage);
    if (!cmd) throw new UserError(`train: unknown stage '${stage ?? ''}'; choose one of: ${stages.map((c) => c.name).join(', ')}.`);
    if (rest.includes('--help') || rest.includes('-h')) { console.log(cmd.help); return 0; }
    return cmd.run(rest);
  },
};
