/**
 * The messages between the server's main thread and its model worker (model-worker.ts starts the worker,
 * model-worker-entry.ts runs in it). Everything here crosses threads by structured clone; vectors travel
 * as one packed Float32Array whose buffer is transferred, not copied.
 */
import type {
  DeviceChoice,
  DeviceReport,
  EmbedderOptions,
  GpuMemoryRelease,
  PromptKind,
  PromptTemplates,
  QueryOptions,
} from '../embed/index.js';
import type { LlamaCppFacts, LlamaGpu } from '../embed/index.js';
import type { EngineIdentity } from '../search-index/llama-cpp-backend.js';
import type { ChatMessage } from '../model/chat-template.js';
import { HttpError } from './http-error.js';
import type { TokenLimits } from './input-limits.js';
import { POSITIVE_INTEGER, type Refuse, checkNumber } from '../io/option-checks.js';

/** The most tokens a chat completion may ask for. */
export const MAX_COMPLETION_TOKENS = 4096;

export interface BatchingOptions {
  /** Longest wait for more inputs before a batch starts (default 3 ms). */
  maxWaitMs?: number;
  /** Most inputs in one forward pass (default 64). */
  maxBatchInputs?: number;
}

/**
 * Refuses batching that would stall: a batch of at most 0 inputs never starts, so every request waited forever;
 * a wait beyond a minute would only hold inputs back (and overflow Node's timers).
 */
export function checkBatchingOptions(o: Record<string, unknown>, fail: Refuse): void {
  checkNumber(o.maxBatchInputs, "'maxBatchInputs'", POSITIVE_INTEGER, fail);
  checkNumber(o.maxWaitMs, "'maxWaitMs'", { integer: true, min: 0, max: 60_000 }, fail);
}

/** The model on llama.cpp instead of search-r3's engine (embeddings and search; no chat). */
export interface LlamaCppEngineChoice {
  gguf: string;
  gpu: LlamaGpu;
  identity: EngineIdentity;
}

/** The worker's workerData. */
export interface WorkerConfig {
  modelDir: string;
  embedder: EmbedderOptions;
  batching: BatchingOptions;
  engine?: LlamaCppEngineChoice;
  /** Where search-r3's engine computes, taken in the worker before it loads (default: its environment's). */
  device?: DeviceChoice;
}

/**
 * The worker's workerData: its config, and a flag (one Int32) that it raises once its native work (GPU
 * thread, llama.cpp) is closed, which a process exiting with the worker at work waits on (an exit listener
 * cannot wait for a message).
 */
export type WorkerData = WorkerConfig & { closedFlag: SharedArrayBuffer };

/** What the worker reports about its model once loaded. */
export interface ModelInfo {
  modelId: string;
  dimension: number;
  /** Longest prompt in tokens (texts beyond it are cut). */
  maxLength: number;
  templates: PromptTemplates;
  /** Positions the model has: prompt + generated tokens must fit. */
  contextLength: number;
  vocabSize: number;
  /** See Tokenizer.longestTokenChars: lets the main thread refuse a text by its length alone. */
  longestTokenChars: number;
  /** Present when the model runs on llama.cpp. */
  llamaCpp?: LlamaCppFacts;
  /** The device the worker took for WorkerConfig.device (absent without one). */
  device?: DeviceReport;
  /** When the model folder is a LoRA adapter: the base model folder it was merged onto. */
  base?: string;
}

export interface EmbedJob {
  texts: string[];
  mode: PromptKind;
  reasoning: boolean;
  query: QueryOptions;
  /** Server requests are checked against these once tokenized; library calls cut long texts instead. */
  limits?: TokenLimits;
  /** The request field of the texts, which errors name (see inputParam). */
  param: 'input' | 'query';
  /** The request sent its texts as a list (errors name each by its index, input[3]), not one string. */
  listed?: boolean;
  /**
   * Cut a server request's texts that do not fit their prompt instead of refusing them (each result says
   * how many tokens were cut). Library calls, without limits, always cut.
   */
  truncate?: boolean;
  /** Report each query's analysis as it grows ('progress' messages), for a reader who watches it. */
  stream?: boolean;
}

/** OpenAI's two names for a completion's most tokens: max_completion_tokens is what max_tokens was. */
export type MaxTokensField = 'max_tokens' | 'max_completion_tokens';

export interface ChatJob {
  messages: ChatMessage[];
  /** Default: what the context leaves after the prompt (at most 4096). */
  maxTokens?: number;
  /** The request field maxTokens came from, which an error about it names (default max_tokens). */
  maxTokensField?: MaxTokensField;
  temperature: number;
  topP?: number;
  seed?: number;
  stops: string[];
  /** Send the content in pieces as it is generated ('content' messages), for a client that streams. */
  stream?: boolean;
}

/** How an error names text `i` of a request: by its index in a list, or by the field when it was one string. */
export function inputParam(job: Pick<EmbedJob, 'param' | 'listed'>, i: number): string {
  return job.listed ? `${job.param}[${i}]` : job.param;
}

export type WorkerRequest =
  | { id: number; type: 'embed'; job: EmbedJob }
  | { id: number; type: 'embedTokens'; seqs: number[][] }
  | { id: number; type: 'encodeDocuments'; texts: string[] }
  | { id: number; type: 'chat'; job: ChatJob }
  | { type: 'configure'; batching: BatchingOptions }
  /** The client of request `id` went away: its work that has not started is dropped. */
  | { type: 'cancel'; id: number }
  /**
   * Stop (a worker whose native work Node must not tear down halfway: a GPU thread, llama.cpp): take no more
   * requests, drop what has not started, end what runs at its next step, close the engine and the GPU, end.
   */
  | { type: 'close' };

/** One input's analysis (reasoning on); the vector travels packed beside it. */
export interface Analysis {
  reasoning: string;
  forced: boolean;
  tokens: number[];
  truncated: number;
}

export interface EmbedResult {
  /** n × dimension, row i = input i. */
  vectors: Float32Array;
  analyses: Analysis[];
  /** Tokens of the input texts themselves (prompt templates not counted), as OpenAI's usage reports. */
  promptTokens: number;
}

/**
 * Documents encoded as one call of the engine's embedDocuments (not batched with other requests), so
 * they get the bits a LocalBackend in the main thread would give for the same texts.
 */
export interface DocumentsResult {
  /** n × dimension, row i = text i. */
  vectors: Float32Array;
  /** How many texts were cut to fit the context. */
  truncated: number;
}

export interface ChatResult {
  content: string;
  finish: 'stop' | 'length';
  /** Which stop ended the text (a stop string or special token), as vLLM reports it. */
  stopReason: string | null;
  promptTokens: number;
  completionTokens: number;
}

/** An error as it crosses threads: its class name and message, and the HTTP answer when it is one. */
export interface WireError {
  name: string;
  message: string;
  status?: number;
  code?: string | null;
  param?: string | null;
}

export type WorkerReply =
  /** `closesItself`: the worker runs native work (a GPU thread, llama.cpp), so it is stopped with 'close'. */
  | { type: 'ready'; info: ModelInfo; closesItself: boolean }
  | { type: 'failed'; error: WireError }
  | { type: 'result'; id: number; value: EmbedResult | DocumentsResult | ChatResult }
  | { type: 'error'; id: number; error: WireError }
  /** The analysis of input `input` of request `id` so far (streamed jobs only). */
  | { type: 'progress'; id: number; input: number; reasoning: string }
  /** The next piece of the content of streamed chat completion `id`. */
  | { type: 'content'; id: number; piece: string }
  | { type: 'batch'; inputs: number; kind: BatchKind; seconds: number }
  /**
   * The worker on a GPU, idle for a while (gpuIdleReleaseSetting), gave the GPU memory that no tensor holds
   * back to the driver (releaseGpuMemory): what its GPU thread kept before and after, and what the weights hold.
   */
  | { type: 'memoryReleased'; release: GpuMemoryRelease }
  /**
   * The worker's GPU device failed (GpuError.deviceFailed; `message`, its sentence): the worker takes no more
   * requests, answers none of those it holds, and ends once its GPU thread has closed.
   */
  | { type: 'deviceFailed'; message: string };

export type BatchKind = 'direct' | 'reasoning' | 'chat';

export function errorToWire(e: unknown): WireError {
  if (e instanceof HttpError) {
    return { name: e.name, message: e.message, status: e.status, code: e.code, param: e.param };
  }
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

/** The error again on this side: an HttpError when it carries an HTTP answer, else an Error of the same name. */
export function errorFromWire(w: WireError): Error {
  if (w.status !== undefined) return new HttpError(w.status, w.message, w.code ?? null, w.param ?? null);
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}
