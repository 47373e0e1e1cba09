/**
 * Every sub-command, in the order `--help` lists them. A command's module, and the packages it needs (SQLite,
 * USearch, Redis clients, GPU bindings), load only when it runs or shows its help: a command never waits
 * for another's dependencies, nor fails where one of them is missing (a GPU machine given only what
 * training needs). Add one entry per command.
 */
import type { Command } from './command.js';

export interface CommandEntry {
  name: string;
  /** One line for `search-r3 --help`. */
  summary: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: 'eval',
    summary: 'evaluate retrieval (BEIR/TREC) with trec_eval-exact measures; BM25 and dense runs',
    load: async () => (await import('./eval.js')).evalCommand,
  },
  {
    name: 'index',
    summary: 'build, resume or update a search index from documents',
    load: async () => (await import('./index-cmd.js')).indexCommand,
  },
  {
    name: 'search',
    summary: 'search an index (optionally with query reasoning and BM25 fusion)',
    load: async () => (await import('./search.js')).searchCommand,
  },
  {
    name: 'fusion',
    summary: 'choose on dev queries how hybrid search weighs a model against BM25 (stored with the model)',
    load: async () => (await import('./fusion.js')).fusionCommand,
  },
  {
    name: 'serve',
    summary: 'serve embeddings (OpenAI-compatible) and index search over HTTP',
    load: async () => (await import('./serve.js')).serveCommand,
  },
  {
    name: 'dashboard',
    summary: 'serve a web page with the live curves of training runs',
    load: async () => (await import('./dashboard.js')).dashboardCommand,
  },
  {
    name: 'worker',
    summary: "encode documents from a Redis job queue for 'index --queue' (distributed indexing)",
    load: async () => (await import('./worker.js')).workerCommand,
  },
  {
    name: 'export',
    summary: 'export a model or LoRA adapter as GGUF (llama.cpp, Ollama), or an adapter merged into its base',
    load: async () => (await import('./export.js')).exportCommand,
  },
  {
    name: 'add-embed-token',
    summary: 'add <|embed_token|> to a base model folder (untrained), as stage 1 does',
    load: async () => (await import('./add-embed-token.js')).addEmbedTokenCommand,
  },
  {
    name: 'train',
    summary: 'train a model (train lm: pretraining; train sft: stage 1; train rl: stage 2)',
    load: async () => (await import('./train.js')).trainCommand,
  },
  {
    name: 'mine',
    summary: 'mine hard negatives (rank window + false-negative filter) for train sft',
    load: async () => (await import('./mine.js')).mineCommand,
  },
  {
    name: 'rlenv',
    summary: 'the RL retrieval environment (rlenv audit: local refresh vs exact)',
    load: async () => (await import('./rlenv-audit.js')).rlenvCommand,
  },
  {
    name: 'tokenizer',
    summary: 'train a byte-level BPE tokenizer (tokenizer train)',
    load: async () => (await import('./tokenizer-train.js')).tokenizerCommand,
  },
  {
    name: 'corpus',
    summary: 'assemble the pretraining text (corpus build) and stage-1 pairs from Debian packages (corpus pairs)',
    load: async () => (await import('./corpus-build.js')).corpusCommand,
  },
  {
    name: 'demo',
    summary:
      'quickstart: index the shipped SciFact with the default model, search with reasoning, print the test table',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  {
    name: 'device',
    summary: 'say which device search-r3 computes on (--device auto|cpu|webgpu) and check it with one product',
    load: async () => (await import('./device.js')).deviceCommand,
  },
  {
    name: 'recipe',
    summary: 'train the default model end to end (recipe default) and evaluate it (recipe evaluate)',
    load: async () => (await import('./recipe.js')).recipeCommand,
  },
];
