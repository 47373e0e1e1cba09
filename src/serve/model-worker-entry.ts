/**
 * The model worker: the only thread of a server that loads the weights and runs the model. It loads the
 * model folder, then takes requests from the main thread (worker-protocol.ts): it tokenizes them, checks
 * their token counts, batches them across requests (embedding-batcher.ts), runs the forward passes and
 * generation, and posts the results back, vectors packed in one transferred buffer. With --engine
 * llama.cpp the model runs on llama.cpp instead, one request at a time, for embeddings only.
 */
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import {
  DEFAULT_MAX_REASONING_TOKENS,
  Embedder,
  type PromptTemplates,
  type QueryEmbedding,
  encodePrompt,
  reasoningPrompts,
  requireEmbedToken,
  isGpuDeviceFailure,
  hasGpuThread,
  releaseGpuMemory,
  shutdownGpu,
  useDevice,
} from '../embed/index.js';
import { gpuIdleReleaseSetting } from '../io/env-settings.js';
import { LlamaCppBackend } from '../search-index/llama-cpp-backend.js';
import { modelFingerprint } from '../model/model-fingerprint.js';
import { loadModelFolder } from '../model/model-folder.js';
import { StreamingDecoder } from '../model/streaming-decoder.js';
import { runStepsYielding } from '../model/generate.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { chatSteps, prepareChat } from './chat.js';
import { EmbeddingBatcher } from './embedding-batcher.js';
import { HttpError } from './http-error.js';
import { checkInputTokens, checkPromptRoom, checkRequestTokens } from './input-limits.js';
import {
  type BatchingOptions,
  type ChatJob,
  type ChatResult,
  type DocumentsResult,
  type EmbedJob,
  type EmbedResult,
  type ModelInfo,
  type WorkerConfig,
  type WorkerData,
  type WorkerReply,
  type WorkerRequest,
  errorToWire,
  inputParam,
} from './worker-protocol.js';

const port = parentPort!;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

/**
 * Counts each text's tokens against the limits. A text over --max-tokens is refused, or, where the request asked
 * for cutting, cut to that many tokens here (its prompt may cut it further): a text of any length within the
 * request's bound is taken, and no more of it is embedded than of one that needs no cut. Returns the job with the
 * texts to embed, each text's count as sent, and how many tokens each lost here.
 */
function countTokens(tokenizer: Tokenizer, job: EmbedJob): { job: EmbedJob; counts: number[]; cuts: number[] } {
  if (!job.limits) return { job, counts: [], cuts: [] };
  const { perInput, perRequest } = job.limits;
  const counts = job.texts.map((t, i) => {
    const n = tokenizer.countTokens(t);
    if (!job.truncate) checkInputTokens(n, inputParam(job, i), perInput, truncateParam(job));
    return n;
  });
  checkRequestTokens(
    counts.reduce((a, n) => a + n, 0),
    perRequest,
    job.param,
  );
  const heads = job.texts.map((t, i) =>
    counts[i] > perInput ? tokenizer.headText(t, perInput) : { text: t, tokens: counts[i] },
  );
  const cuts = heads.map((h, i) => counts[i] - h.tokens);
  return { job: { ...job, texts: heads.map((h) => h.text) }, counts, cuts };
}

/** Adds what countTokens cut off each text to what its prompt cut (results[i].truncated). */
function withCuts(results: readonly QueryEmbedding[], cuts: readonly number[]): QueryEmbedding[] {
  return results.map((r, i) => (cuts[i] ? { ...r, truncated: r.truncated + cuts[i] } : r));
}

/** The request field that asks for cutting: /v1/search's own, or the embeddings extension's. */
const truncateParam = (job: EmbedJob): string => (job.param === 'query' ? 'truncate' : 'search_r3.truncate');

/** The model's prompts and cut length, which decide how much of each text fits. */
interface PromptShape {
  tokenizer: Tokenizer;
  templates: PromptTemplates;
  maxLength: number;
}

/**
 * Refuses a server request's text that its prompt would cut, unless the request asked for cutting.
 * `cuts`: the tokens each text's prompt cuts (the direct path passes the prompts it has already made).
 */
function checkRoom(job: EmbedJob, counts: readonly number[], m: PromptShape, cuts?: readonly number[]): void {
  if (!job.limits || job.truncate) return;
  const budget = job.query.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
  const cut =
    cuts ??
    (job.reasoning
      ? reasoningPrompts(m.tokenizer, job.texts, m.templates, m.maxLength, budget).prompts
      : job.texts.map((t) => encodePrompt(m.tokenizer, t, job.mode, m.templates, m.maxLength))
    ).map((p) => p.truncated);
  const room = job.reasoning
    ? {
        prompt: `the reasoning prompt with max_reasoning_tokens ${budget}`,
        lower: `${job.param === 'query' ? '' : 'search_r3.'}max_reasoning_tokens`,
      }
    : { prompt: `the ${job.mode} prompt` };
  cut.forEach((c, i) =>
    checkPromptRoom(inputParam(job, i), counts[i], c, {
      ...room,
      maxLength: m.maxLength,
      truncateParam: truncateParam(job),
    }),
  );
}

function packRows(rows: readonly Float32Array[], dimension: number): Float32Array {
  const packed = new Float32Array(rows.length * dimension);
  rows.forEach((v, i) => packed.set(v, i * dimension));
  return packed;
}

/**
 * The results for the wire. `tokens`: each input's tokens as given; usage counts those embedded, less what was cut
 * (a request that asked for cutting is billed for what the model read, as OpenAI's API bills).
 */
function pack(results: readonly QueryEmbedding[], dimension: number, tokens: readonly number[]): EmbedResult {
  const vectors = packRows(
    results.map((r) => r.vector),
    dimension,
  );
  return {
    vectors,
    promptTokens: tokens.reduce((a, n, i) => a + n - results[i].truncated, 0),
    analyses: results.map(({ reasoning, forced, tokens, truncated }) => ({ reasoning, forced, tokens, truncated })),
  };
}

/** What the worker does with requests, on either engine. */
interface ModelWork {
  embed(owner: number, job: EmbedJob): Promise<EmbedResult>;
  embedTokens(owner: number, seqs: number[][]): Promise<EmbedResult>;
  encodeDocuments(texts: readonly string[]): Promise<DocumentsResult>;
  chat(owner: number, job: ChatJob): Promise<ChatResult>;
  configure(b: BatchingOptions): void;
  cancel(owner: number): void;
  /** Ends the work under way at its next step (it then fails) and frees the engine; resolves once it has. */
  stop(): Promise<void>;
}

class ModelWorker implements ModelWork {
  private readonly batcher: EmbeddingBatcher;
  private stopping = false;

  constructor(
    private readonly embedder: Embedder,
    config: WorkerConfig,
  ) {
    this.batcher = new EmbeddingBatcher(embedder, {
      ...config.batching,
      onBatch: (inputs, kind, seconds) => post({ type: 'batch', inputs, kind, seconds }),
    });
  }

  async embed(owner: number, sent: EmbedJob): Promise<EmbedResult> {
    const { job, counts, cuts } = countTokens(this.embedder.tokenizer, sent);
    if (job.reasoning) {
      checkRoom(job, counts, this.embedder);
      const onToken = job.stream ? streamer(owner, this.embedder.tokenizer) : undefined;
      const results = await this.batcher.embedReasoning(owner, job.texts, job.query, onToken);
      return pack(withCuts(results, cuts), this.embedder.dimension, counts);
    }
    const prepared = job.texts.map((t) => this.batcher.prepare(t, job.mode));
    checkRoom(
      job,
      counts,
      this.embedder,
      prepared.map((p) => p.truncated),
    );
    return pack(withCuts(await this.batcher.embedDirect(owner, prepared), cuts), this.embedder.dimension, counts);
  }

  async embedTokens(owner: number, seqs: number[][]): Promise<EmbedResult> {
    const results = await this.batcher.embedDirect(
      owner,
      seqs.map((ids) => ({ ids, truncated: 0 })),
    );
    return pack(
      results,
      this.embedder.dimension,
      seqs.map((s) => s.length),
    );
  }

  async encodeDocuments(texts: readonly string[]): Promise<DocumentsResult> {
    // a batch at a time: a stop (or other requests) need not wait for the whole list
    const stopped = (): Error | null => (this.stopping ? new Error('the model worker is closing') : null);
    const { vectors, stats } = await runStepsYielding(this.embedder.documentSteps(texts), stopped);
    return { vectors: packRows(vectors, this.embedder.dimension), truncated: stats.truncatedTexts };
  }

  chat(owner: number, job: ChatJob): Promise<ChatResult> {
    const prepared = prepareChat(this.embedder, job); // a prompt too long is refused before it waits for its turn
    const onContent = job.stream ? (piece: string) => post({ type: 'content', id: owner, piece }) : undefined;
    return this.batcher.generate(owner, () => chatSteps(this.embedder, job, prepared, onContent));
  }

  configure(b: BatchingOptions): void {
    this.batcher.configure(b);
  }

  cancel(owner: number): void {
    this.batcher.cancel(owner);
  }

  stop(): Promise<void> {
    this.stopping = true;
    return Promise.resolve(); // its tensors go with the thread; the GPU is the process's (shutdownGpu)
  }
}

/**
 * Posts each query's analysis so far after every token that changes it. A token that ends inside a character
 * (the next completes it), or one of whitespace at the end, adds nothing to show, and nothing is posted.
 */
function streamer(owner: number, tok: Tokenizer): (i: number, token: number) => void {
  const texts: StreamingDecoder[] = [];
  const posted: string[] = [];
  return (i, token) => {
    if (tok.isSpecial(token)) return;
    const reasoning = (texts[i] ??= new StreamingDecoder(tok))
      .push(token)
      .replace(/\uFFFD+$/u, '')
      .trim();
    if (reasoning === (posted[i] ?? '')) return;
    posted[i] = reasoning;
    post({ type: 'progress', id: owner, input: i, reasoning });
  };
}

/** The same requests on llama.cpp, which takes them one at a time (its contexts evaluate one sequence). */
class LlamaCppWork implements ModelWork {
  constructor(private readonly backend: LlamaCppBackend) {}

  async embed(owner: number, sent: EmbedJob): Promise<EmbedResult> {
    const e = this.backend.engine;
    const { job, counts, cuts } = countTokens(e.tokenizer, sent);
    let run: () => Promise<QueryEmbedding[]>;
    if (job.reasoning) {
      checkRoom(job, counts, e);
      const onToken = job.stream ? streamer(owner, e.tokenizer) : undefined;
      run = () => e.embedQueries(job.texts, { ...job.query, reasoning: 'on' }, onToken);
    } else {
      const prompts = e.directPrompts(job.texts, job.mode);
      checkRoom(
        job,
        counts,
        e,
        prompts.map((p) => p.truncated),
      );
      run = () => e.embedDirect(prompts);
    }
    const t0 = performance.now();
    const results = await run();
    const seconds = (performance.now() - t0) / 1000;
    post({ type: 'batch', inputs: job.texts.length, kind: job.reasoning ? 'reasoning' : 'direct', seconds });
    return pack(withCuts(results, cuts), e.dimension, counts);
  }

  async embedTokens(_owner: number, seqs: number[][]): Promise<EmbedResult> {
    const vectors = await this.backend.engine.embedTokens(seqs);
    const results = vectors.map((vector) => ({ vector, reasoning: '', forced: false, tokens: [], truncated: 0 }));
    return pack(
      results,
      this.backend.dimension,
      seqs.map((s) => s.length),
    );
  }

  async encodeDocuments(texts: readonly string[]): Promise<DocumentsResult> {
    const { vectors, truncated } = await this.backend.encodeDocuments(texts);
    return { vectors: packRows(vectors, this.backend.dimension), truncated };
  }

  chat(): Promise<ChatResult> {
    const why =
      'this server runs --engine llama.cpp, which serves embeddings and search; ' +
      "chat completions need search-r3's engine";
    return Promise.reject(new HttpError(400, why, 'unsupported_engine'));
  }

  configure(): void {
    /* one request at a time: nothing to batch */
  }

  cancel(): void {
    /* llama.cpp takes one request at a time, already started when it is known */
  }

  stop(): Promise<void> {
    return this.backend.close();
  }
}

/** Tells the owner, which may be waiting in its exit, that the worker's native work is closed: it may go. */
function raiseClosed(): void {
  const flag = new Int32Array(closedFlag);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

/** Set once the GPU device has failed or the worker was asked to close: it takes no more requests and is ending. */
let ending = false;
/** The requests being run, by id: what a close cancels and waits for. */
const running = new Map<number, Promise<unknown>>();

/**
 * Gives the GPU memory that no tensor holds back to the driver once no request has run for `ms`
 * (gpuIdleReleaseSetting): a batch of long documents or a long generation leaves its peak in the buffer pool,
 * which other programs on the GPU could use while the server idles. Each request stops the wait; the end
 * of the last one running starts it again.
 */
class IdleRelease {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ms: number) {}

  /** A request starts: the pool is in use. */
  busy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** No request runs any more: the wait starts. */
  idle(): void {
    this.busy();
    this.timer = setTimeout(() => void this.release(), this.ms);
    this.timer.unref(); // the port keeps the worker alive, not this
  }

  private async release(): Promise<void> {
    this.timer = null;
    if (ending || running.size > 0) return;
    try {
      const release = await releaseGpuMemory();
      if (release && !ending) post({ type: 'memoryReleased', release });
    } catch (e) {
      if (!isGpuDeviceFailure(e)) throw e;
      void endOnDeviceFailure(e as Error);
    }
  }
}

/** The idle release of a worker on a GPU; null on the CPU and llama.cpp, which keep no buffer pool. */
let idleRelease: IdleRelease | null = null;

/**
 * A failed GPU device computes nothing more, so every request would fail on it: the worker says so (the
 * server answers the requests it holds and starts a new worker on a fresh device), takes no more requests
 * and ends once its GPU thread has closed, since Node tearing that thread down while Dawn still works
 * would abort the whole process.
 */
async function endOnDeviceFailure(e: Error): Promise<void> {
  if (ending) return;
  ending = true;
  post({ type: 'deviceFailed', message: e.message });
  await shutdownGpu();
  raiseClosed();
  process.exit(1);
}

/**
 * Closes the worker whose owner asked it to (Node tearing down a GPU thread or llama.cpp in the middle of
 * their native work aborts the whole process): what has not started is dropped, what runs stops at its next
 * step (a forward pass cannot be stopped halfway), then the engine and the GPU thread close and the worker
 * ends itself.
 */
async function endOnClose(work: ModelWork): Promise<void> {
  if (ending) return;
  ending = true;
  for (const id of running.keys()) work.cancel(id);
  const stopped = work.stop();
  await Promise.allSettled(running.values());
  await stopped;
  await shutdownGpu();
  raiseClosed();
  process.exit(0);
}

function handle(work: ModelWork, m: WorkerRequest): void {
  if (m.type === 'close') return void endOnClose(work);
  if (ending) return;
  if (m.type === 'configure') {
    work.configure(m.batching);
    return;
  }
  if (m.type === 'cancel') {
    work.cancel(m.id);
    return;
  }
  const run = async (): Promise<EmbedResult | DocumentsResult | ChatResult> => {
    if (m.type === 'embed') return work.embed(m.id, m.job);
    if (m.type === 'embedTokens') return work.embedTokens(m.id, m.seqs);
    if (m.type === 'encodeDocuments') return work.encodeDocuments(m.texts);
    return work.chat(m.id, m.job);
  };
  idleRelease?.busy();
  const ran = run();
  running.set(m.id, ran);
  ran
    .finally(() => {
      running.delete(m.id);
      if (running.size === 0) idleRelease?.idle();
    })
    .catch(() => undefined);
  ran.then(
    (value) => {
      const transfer = 'vectors' in value ? [value.vectors.buffer as ArrayBuffer] : [];
      post({ type: 'result', id: m.id, value }, transfer);
    },
    (e: unknown) => {
      if (isGpuDeviceFailure(e)) void endOnDeviceFailure(e as Error);
      else if (!ending) post({ type: 'error', id: m.id, error: errorToWire(e) });
    },
  );
}

async function loadLlamaCpp(config: WorkerConfig): Promise<{ worker: ModelWork; info: ModelInfo }> {
  const { gguf, gpu, identity } = config.engine!;
  const b = await LlamaCppBackend.open({ gguf, modelDir: config.modelDir, gpu, identity, ...config.embedder });
  const e = b.engine;
  const info: ModelInfo = {
    modelId: b.modelId,
    dimension: e.dimension,
    maxLength: e.maxLength,
    templates: e.templates,
    contextLength: e.facts.contextLength,
    vocabSize: e.config.vocabSize,
    longestTokenChars: e.tokenizer.longestTokenChars(),
    llamaCpp: e.describe(),
  };
  return { worker: new LlamaCppWork(b), info };
}

async function load(config: WorkerConfig): Promise<{ worker: ModelWork; info: ModelInfo }> {
  if (config.engine) return loadLlamaCpp(config);
  const idleReleaseMs = gpuIdleReleaseSetting(); // a bad value is refused before the model loads
  // before the weights load: tensors live on the device that was active when they were made
  const device = config.device ? useDevice(config.device) : undefined;
  const checkTokenizer = (t: Tokenizer): number => requireEmbedToken(t, config.modelDir);
  const loaded = await loadModelFolder(config.modelDir, { checkTokenizer });
  const embedder = new Embedder(loaded.model, loaded.tokenizer, config.embedder);
  // the weights have taken the device (SEARCH_R3_BACKEND's, without config.device)
  if (hasGpuThread()) idleRelease = new IdleRelease(idleReleaseMs);
  const info: ModelInfo = {
    modelId: await modelFingerprint(config.modelDir),
    dimension: embedder.dimension,
    maxLength: embedder.maxLength,
    templates: embedder.templates,
    contextLength: loaded.config.maxPositionEmbeddings,
    vocabSize: loaded.config.vocabSize,
    longestTokenChars: loaded.tokenizer.longestTokenChars(),
    ...(device ? { device } : {}),
    ...(loaded.base ? { base: loaded.base } : {}),
  };
  return { worker: new ModelWorker(embedder, config), info };
}

const { closedFlag, ...config } = workerData as WorkerData;
// a worker ending otherwise (an uncaught error) holds nothing more that an exiting owner should wait for
process.on('exit', raiseClosed);
load({ ...config, modelDir: path.resolve(config.modelDir) }).then(
  ({ worker, info }) => {
    // loading leaves its scratch buffers in the pool too: the first wait starts now
    idleRelease?.idle();
    port.on('message', (m: WorkerRequest) => handle(worker, m));
    post({ type: 'ready', info, closesItself: hasGpuThread() || config.engine !== undefined });
  },
  (e: unknown) => post({ type: 'failed', error: errorToWire(e) }),
);
