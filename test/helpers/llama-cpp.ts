/**
 * llama.cpp (through node-llama-cpp's prebuilt CPU binaries) as an independent reference for Qwen2
 * GGUF files: the last-token final-norm hidden state and greedy continuations, optionally with a LoRA
 * adapter. Used to validate the GGUF writer against PyTorch, and our own forward against llama.cpp.
 */
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';

let llama: Promise<Llama> | undefined;

/** The CPU llama.cpp, loaded once per process; never builds from source or downloads anything. */
export function cpuLlama(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 2 });
  return llama;
}

export interface GreedyOptions {
  /** LoRA adapter GGUF to apply. */
  lora?: string;
  /** Adapter scale on top of alpha/r (llama.cpp's --lora-scaled); default 1. */
  loraScale?: number;
}

/** A GGUF model loaded in llama.cpp; one load serves many prompts. */
export interface LlamaCppModel {
  /** Final-norm hidden state of the last token of `tokens` (llama.cpp's embedding output, pooling none). */
  lastHidden(tokens: readonly number[]): Promise<Float32Array>;
  /** `n` greedy (temperature 0) tokens after `tokens`, end-of-generation tokens included, no penalties. */
  greedy(tokens: readonly number[], n: number, options?: GreedyOptions): Promise<number[]>;
  readonly model: LlamaModel;
  dispose(): Promise<void>;
}

const CONTEXT_SIZE = 512;
/**
 * One thread per context: tiny models gain nothing from more, and on a busy 2-core machine llama.cpp's
 * spinning worker threads made 32 greedy tokens take 4 s instead of 10 ms.
 */
const THREADS = 1;

export interface OpenOptions {
  /**
   * KV cache precision. Default F32, so that an F32 model is computed in F32 throughout (llama.cpp's
   * own default, F16, alone costs about 1e-3 relative error in the hidden state).
   */
  kvCache?: 'F32' | 'F16';
}

export async function openLlamaCppModel(ggufPath: string, options: OpenOptions = {}): Promise<LlamaCppModel> {
  const l = await cpuLlama();
  const kv = options.kvCache ?? 'F32';
  const model = await l.loadModel({
    modelPath: ggufPath,
    gpuLayers: 0,
    useMmap: false,
    defaultContextFlashAttention: false,
    experimentalDefaultContextKvCacheKeyType: kv,
    experimentalDefaultContextKvCacheValueType: kv,
  });
  return {
    model,
    async lastHidden(tokens) {
      const ctx = await model.createEmbeddingContext({ contextSize: CONTEXT_SIZE, threads: THREADS });
      try {
        const e = await ctx.getEmbeddingFor([...tokens] as Token[]);
        return Float32Array.from(e.vector);
      } finally {
        await ctx.dispose();
      }
    },
    async greedy(tokens, n, options = {}) {
      const ctx = await model.createContext({
        contextSize: CONTEXT_SIZE,
        threads: THREADS,
        ...(options.lora ? { lora: { adapters: [{ filePath: options.lora, scale: options.loraScale ?? 1 }] } } : {}),
      });
      try {
        const out: number[] = [];
        if (n <= 0) return out;
        const seq = ctx.getSequence();
        for await (const t of seq.evaluate([...tokens] as Token[], { temperature: 0, yieldEogToken: true })) {
          out.push(t as number);
          if (out.length >= n) break;
        }
        return out;
      } finally {
        await ctx.dispose();
      }
    },
    dispose: () => model.dispose(),
  };
}

async function withModel<T>(ggufPath: string, fn: (m: LlamaCppModel) => Promise<T>): Promise<T> {
  const m = await openLlamaCppModel(ggufPath);
  try {
    return await fn(m);
  } finally {
    await m.dispose();
  }
}

/** One-shot: final-norm hidden state of the last token. */
export function llamaCppLastHidden(ggufPath: string, tokens: readonly number[]): Promise<Float32Array> {
  return withModel(ggufPath, (m) => m.lastHidden(tokens));
}

/** One-shot: `n` greedy tokens after `tokens`. */
export function llamaCppGreedy(
  ggufPath: string,
  tokens: readonly number[],
  n: number,
  options?: GreedyOptions,
): Promise<number[]> {
  return withModel(ggufPath, (m) => m.greedy(tokens, n, options));
}

/** Cosine similarity of two vectors. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}
