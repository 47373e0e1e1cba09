/**
 * The Search-R3 protocol on llama.cpp (node-llama-cpp 3.21.1): the same prompts, made by the model
 * folder's own tokenizer and chat template, run on a GGUF that `search-r3 export gguf` wrote from that
 * folder (f16 or q8_0; it says last-token pooling). Documents and direct queries take one pass of an
 * embedding context, whose vector is the final-norm state at the last token, <|embed_token|>. Queries
 * that reason generate their analysis greedily (or sampled) in a generation context until the model
 * emits <|embed_token|> (forced after the budget, and said so, as the Embedder does); the vector is the
 * state at that token, from the embedding context over prompt + analysis + token.
 *
 * llama.cpp runs on its own threads, so these calls leave the event loop free; they run one at a time.
 * node-llama-cpp picks a GPU where it finds one (CUDA, Vulkan, Metal) unless told otherwise, from its
 * prebuilt binaries only (nothing is built or downloaded).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type {
  GgufFileInfo,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaModel,
  Token,
} from 'node-llama-cpp';
import { GGUF_SOURCE_MODEL_KEY } from '../model/gguf.js';
import { threadsSetting } from '../io/env-settings.js';
import { checkFitsInMemory } from '../model/memory.js';
import { ModelFileError } from '../model/model-file-error.js';
import { isAdapterFolder } from '../model/peft-config.js';
import { type Qwen2Config, readQwen2Config } from '../model/qwen2-config.js';
import { Tokenizer } from '../model/tokenizer.js';
import {
  type EmbedStats,
  type QueryEmbedding,
  type QueryOptions,
  directQueryEmbedding,
  embedStats,
  normalize,
} from './embedder.js';
import {
  DEFAULT_TEMPLATES,
  EMBED_TOKEN,
  type EncodedPrompt,
  type PromptKind,
  type PromptTemplates,
  encodePrompt,
  requireEmbedToken,
} from './prompts.js';
import { readAnalysis, reasoningPrompts } from './reasoning.js';

/** Where llama.cpp may run: the first GPU it finds ('auto'), a given kind, or the CPU only ('off'). */
export type LlamaGpu = 'auto' | 'off' | 'cuda' | 'vulkan' | 'metal';
export const LLAMA_GPUS: readonly LlamaGpu[] = ['auto', 'off', 'cuda', 'vulkan', 'metal'];

export interface LlamaCppEngineOptions {
  /** The GGUF to run, written by `search-r3 export gguf` from modelDir. */
  gguf: string;
  /** The model folder: its tokenizer and chat template make the prompts. */
  modelDir: string;
  templates?: Partial<PromptTemplates>;
  /** Longest prompt in tokens; default the model's context, at most 8192 (as the Embedder). */
  maxLength?: number;
  gpu?: LlamaGpu;
  /**
   * CPU threads (default: SEARCH_R3_THREADS, as for search-r3's engine, else the cores llama.cpp counts for math;
   * node-llama-cpp's own 6 crowd small machines).
   */
  threads?: number;
  /** Bytes the model may take on the CPU; default the memory available now. */
  memoryLimit?: number;
}

/** The machine cannot run the engine as asked (no such GPU, not enough memory there): one sentence. */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineError';
  }
}

/** What an engine says about its GGUF and where it runs (for messages, /health and index checks). */
export interface LlamaCppFacts {
  gguf: string;
  /** Fingerprint of the folder the GGUF was exported from, or null when it records none. */
  sourceModel: string | null;
  fileType: string;
  /** The GPU llama.cpp runs on ('cuda', 'vulkan', 'metal'), or false for the CPU. */
  gpu: string | false;
}

/** What the GGUF says about itself, checked against the model folder. */
interface GgufFacts {
  contextLength: number;
  /** Fingerprint of the folder it was exported from (search_r3.source_model), if it records one. */
  sourceModel: string | null;
  fileType: string;
}

const META_FILE_TYPES: Record<number, string> = { 0: 'F32', 1: 'F16', 7: 'Q8_0' };

/** Reads the GGUF's header and refuses one that cannot carry this folder's Search-R3 model. */
async function readGgufFacts(gguf: string, config: Qwen2Config, embedId: number): Promise<GgufFacts> {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  let info: GgufFileInfo;
  try {
    info = await readGgufFileInfo(gguf, { readTensorInfo: false, logWarnings: false, sourceType: 'filesystem' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ModelFileError(gguf, 'no such file; write one with search-r3 export gguf, or pass --gguf.');
    }
    throw new ModelFileError(gguf, `is not a GGUF file llama.cpp can read (${(e as Error).message}).`);
  }
  const meta = info.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
  const arch = (meta.general?.architecture as string | undefined) ?? 'unknown';
  if (arch !== 'qwen2') {
    const runs = '--engine llama.cpp runs the Qwen2 GGUFs that search-r3 export gguf writes';
    throw new ModelFileError(gguf, `is a ${arch} model; ${runs}.`);
  }
  const tok = meta.tokenizer as { ggml?: Record<string, unknown> } | undefined;
  const tokens = (tok?.ggml?.tokens as string[] | undefined) ?? [];
  const at = tokens.indexOf(EMBED_TOKEN);
  if (at < 0) {
    const how = 'export it from a Search-R3 model folder (stage 1, search-r3 train sft, adds the token)';
    throw new ModelFileError(gguf, `has no ${EMBED_TOKEN} in its vocabulary; ${how}.`);
  }
  if (at !== embedId) {
    const why = `holds ${EMBED_TOKEN} as token ${at}, but the model folder's tokenizer has it as ${embedId}`;
    throw new ModelFileError(gguf, `${why}; export the GGUF from that folder.`);
  }
  if (tok?.ggml?.add_bos_token === true || tok?.ggml?.add_eos_token === true) {
    const why = 'asks llama.cpp to add a BOS or EOS token to every input, which moves the vector off <|embed_token|>';
    throw new ModelFileError(gguf, `${why}; export it with search-r3 export gguf.`);
  }
  const qwen = meta.qwen2 ?? {};
  if (qwen.embedding_length !== config.hiddenSize) {
    const size = String(qwen.embedding_length);
    const why = `has hidden size ${size}, but the model folder's config.json says ${config.hiddenSize}`;
    throw new ModelFileError(gguf, `${why}; export the GGUF from that folder.`);
  }
  const [ns, key] = GGUF_SOURCE_MODEL_KEY.split('.');
  const source = (meta[ns] as Record<string, unknown> | undefined)?.[key];
  return {
    contextLength: Number(qwen.context_length ?? config.maxPositionEmbeddings),
    sourceModel: typeof source === 'string' ? source : null,
    fileType: META_FILE_TYPES[Number(meta.general?.file_type)] ?? `file type ${String(meta.general?.file_type)}`,
  };
}

export class LlamaCppEngine {
  private queue: Promise<unknown> = Promise.resolve();
  private generation: { context: LlamaContext; sequence: LlamaContextSequence } | null = null;
  /** close() under way: work stops at its next sequence or token, new work is refused. */
  private closing: Promise<void> | null = null;

  private constructor(
    readonly gguf: string,
    readonly modelDir: string,
    readonly config: Qwen2Config,
    readonly tokenizer: Tokenizer,
    readonly templates: PromptTemplates,
    readonly maxLength: number,
    readonly facts: GgufFacts,
    private readonly model: LlamaModel,
    private readonly embedding: LlamaEmbeddingContext,
    /** The GPU llama.cpp runs on ('cuda', 'vulkan', 'metal'), or false for the CPU. */
    readonly gpu: string | false,
    /** The CPU threads it computes on. */
    readonly threads: number,
  ) {}

  static async open(opts: LlamaCppEngineOptions): Promise<LlamaCppEngine> {
    if (isAdapterFolder(opts.modelDir))
      throw new ModelFileError(
        opts.modelDir,
        "is a LoRA adapter folder; llama.cpp runs a whole model's GGUF: merge it (search-r3 export merged) and " +
          'export that folder (search-r3 export gguf).',
      );
    const config = await readQwen2Config(path.join(opts.modelDir, 'config.json'));
    const tokenizer = await Tokenizer.fromFolder(opts.modelDir);
    const embedId = requireEmbedToken(tokenizer, opts.modelDir);
    const facts = await readGgufFacts(opts.gguf, config, embedId);
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    const gpu = opts.gpu ?? 'auto';
    const llama = await getLlama({
      gpu: gpu === 'off' ? false : gpu,
      build: 'never',
      logLevel: LlamaLogLevel.error,
    }).catch((e: Error) => {
      throw new EngineError(`llama.cpp has no ${gpu} build that runs here (${e.message}); try --gpu auto or off.`);
    });
    if (llama.gpu === false) {
      checkFitsInMemory(opts.gguf, 'its weights', (await fsp.stat(opts.gguf)).size, opts.memoryLimit);
    }
    const maxLength = Math.min(opts.maxLength ?? 8192, facts.contextLength);
    const threads = opts.threads ?? threadsSetting() ?? llama.cpuMathCores;
    let model: LlamaModel | undefined;
    try {
      model = await llama.loadModel({ modelPath: opts.gguf });
      const embedding = await model.createEmbeddingContext({ contextSize: maxLength + 1, threads });
      const templates = { ...DEFAULT_TEMPLATES, ...opts.templates };
      return new LlamaCppEngine(
        opts.gguf,
        opts.modelDir,
        config,
        tokenizer,
        templates,
        maxLength,
        facts,
        model,
        embedding,
        llama.gpu,
        threads,
      );
    } catch (e) {
      await model?.dispose();
      throw new EngineError(`llama.cpp could not load ${opts.gguf} (${(e as Error).message}).`);
    }
  }

  get dimension(): number {
    return this.config.hiddenSize;
  }

  describe(): LlamaCppFacts {
    return { gguf: this.gguf, sourceModel: this.facts.sourceModel, fileType: this.facts.fileType, gpu: this.gpu };
  }
  get embedId(): number {
    return this.tokenizer.tokenToId(EMBED_TOKEN)!;
  }

  /** One L2-normalised vector per document, in input order. */
  async embedDocuments(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ vectors: Float32Array[]; stats: EmbedStats }> {
    const prompts = this.directPrompts(texts, 'document');
    const vectors = await this.embedTokens(
      prompts.map((p) => p.ids),
      onProgress,
    );
    return { vectors, stats: embedStats(texts, prompts) };
  }

  /** Each text's direct prompt (no reasoning), cut to maxLength: what embedDirect takes. */
  directPrompts(texts: readonly string[], kind: PromptKind): EncodedPrompt[] {
    return texts.map((t) => encodePrompt(this.tokenizer, t, kind, this.templates, this.maxLength));
  }

  /**
   * Direct prompts (documents, queries without reasoning) embedded, as QueryEmbeddings. It takes prompts
   * already made, so that a caller that checks their cuts first (a server) tokenizes each text once.
   */
  async embedDirect(prompts: readonly EncodedPrompt[]): Promise<QueryEmbedding[]> {
    const vectors = await this.embedTokens(prompts.map((p) => p.ids));
    return vectors.map((v, i) => directQueryEmbedding(v, prompts[i]));
  }

  /**
   * Queries; with reasoning on, each is analysed before <|embed_token|>. `onToken` sees each generated token
   * of input `i` as it is generated (a server streams the analysis from them).
   */
  async embedQueries(
    texts: readonly string[],
    opts: QueryOptions = {},
    onToken?: (i: number, token: number) => void,
  ): Promise<QueryEmbedding[]> {
    if ((opts.reasoning ?? 'off') === 'off') return this.embedDirect(this.directPrompts(texts, 'query'));
    const { prompts, budget, stopTokens } = reasoningPrompts(
      this.tokenizer,
      texts,
      this.templates,
      this.maxLength,
      opts.maxReasoningTokens,
    );
    const out: QueryEmbedding[] = [];
    for (const [i, p] of prompts.entries()) {
      const { tokens, finish } = await this.generate(p.ids, budget, new Set(stopTokens), opts, (t) => onToken?.(i, t));
      const { analysis, reasoning, emitted } = readAnalysis(this.tokenizer, tokens, finish);
      const [vector] = await this.embedTokens([[...p.ids, ...analysis, this.embedId]]);
      out.push({ vector, reasoning, forced: !emitted, tokens, truncated: prompts[i].truncated });
    }
    return out;
  }

  /** The L2-normalised final-norm state at the last token of each token sequence. */
  embedTokens(seqs: readonly number[][], onProgress?: (done: number, total: number) => void): Promise<Float32Array[]> {
    return this.exclusive(async () => {
      const out: Float32Array[] = [];
      for (const ids of seqs) {
        this.checkOpen();
        const e = await this.embedding.getEmbeddingFor([...ids] as Token[]);
        out.push(normalize(Float32Array.from(e.vector)));
        onProgress?.(out.length, seqs.length);
      }
      return out;
    });
  }

  /** Up to `budget` tokens after `prompt`, ending early at a stop token. */
  private generate(
    prompt: number[],
    budget: number,
    stops: Set<number>,
    opts: QueryOptions,
    onToken: (token: number) => void,
  ): Promise<{ tokens: number[]; finish: 'stop' | 'length' }> {
    return this.exclusive(async () => {
      const tokens: number[] = [];
      if (budget === 0) return { tokens, finish: 'length' as const };
      const { sequence } = await this.generationContext();
      await sequence.clearHistory();
      const sampling = { temperature: opts.temperature ?? 0, topP: opts.topP, seed: opts.seed, yieldEogToken: true };
      for await (const t of sequence.evaluate([...prompt] as Token[], sampling)) {
        this.checkOpen();
        tokens.push(t);
        onToken(t);
        if (stops.has(t) || tokens.length >= budget) break;
      }
      const last = tokens[tokens.length - 1];
      return { tokens, finish: last !== undefined && stops.has(last) ? ('stop' as const) : ('length' as const) };
    });
  }

  private async generationContext(): Promise<{ context: LlamaContext; sequence: LlamaContextSequence }> {
    if (!this.generation) {
      const context = await this.model.createContext({ contextSize: this.maxLength + 1, threads: this.threads });
      this.generation = { context, sequence: context.getSequence() };
    }
    return this.generation;
  }

  /** Runs `f` after every call before it has finished: llama.cpp contexts take one evaluation at a time. */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const g = (): Promise<T> => {
      this.checkOpen();
      return f();
    };
    const run = this.queue.then(g, g);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private checkOpen(): void {
    if (this.closing) throw new EngineError('the llama.cpp engine has been closed.');
  }

  /**
   * Stops the work under way at its next sequence (or generated token), since llama.cpp's native work must
   * not be torn down halfway, then frees the model. Calls waiting, and any made later, fail with EngineError.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.queue;
      await this.generation?.context.dispose();
      await this.embedding.dispose();
      await this.model.dispose();
    })();
    return this.closing;
  }
}
