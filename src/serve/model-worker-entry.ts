/**
 * The model worker: the only thread of a server that loads the weights and runs the model. It loads the
 * model folder, then takes requests from the main thread (worker-protocol.ts): it tokenizes them, checks
 * their token counts, batches them across requests (embedding-batcher.ts), runs the forward passes and
 * generation, and posts the results back, vectors packed in one transferred buffer.
 */
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Embedder, type QueryEmbedding } from '../embed/index.js';
import { modelFingerprint } from '../search-index/model-fingerprint.js';
import { loadModelFolder } from '../model/model-folder.js';
import { chatSteps, prepareChat } from './chat.js';
import { EmbeddingBatcher } from './embedding-batcher.js';
import { checkInputTokens, checkRequestTokens } from './input-limits.js';
import {
  type ChatJob,
  type ChatResult,
  type EmbedJob,
  type EmbedResult,
  type ModelInfo,
  type WorkerConfig,
  type WorkerReply,
  type WorkerRequest,
  errorToWire,
} from './worker-protocol.js';

const port = parentPort!;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

/** Counts each text's tokens against the limits; returns the request's total (what usage reports). */
function countTokens(embedder: Embedder, job: EmbedJob): number {
  if (!job.limits) return 0;
  let total = 0;
  job.texts.forEach((t, i) => {
    const n = embedder.tokenizer.encode(t).length;
    checkInputTokens(n, job.param === 'query' ? 'query' : `input[${i}]`, job.limits!.perInput);
    total += n;
  });
  checkRequestTokens(total, job.limits.perRequest);
  return total;
}

function pack(results: readonly QueryEmbedding[], dimension: number, promptTokens: number): EmbedResult {
  const vectors = new Float32Array(results.length * dimension);
  results.forEach((r, i) => vectors.set(r.vector, i * dimension));
  return {
    vectors,
    promptTokens,
    analyses: results.map(({ reasoning, forced, tokens, truncated }) => ({ reasoning, forced, tokens, truncated })),
  };
}

class ModelWorker {
  private readonly batcher: EmbeddingBatcher;

  constructor(
    private readonly embedder: Embedder,
    config: WorkerConfig,
  ) {
    this.batcher = new EmbeddingBatcher(embedder, {
      ...config.batching,
      onBatch: (inputs, kind, seconds) => post({ type: 'batch', inputs, kind, seconds }),
    });
  }

  async embed(owner: number, job: EmbedJob): Promise<EmbedResult> {
    const promptTokens = countTokens(this.embedder, job);
    const results = job.reasoning
      ? await this.batcher.embedReasoning(owner, job.texts, job.query, job.stream ? this.streamer(owner) : undefined)
      : await this.batcher.embedDirect(
          owner,
          job.texts.map((t) => this.batcher.prepare(t, job.mode)),
        );
    return pack(results, this.embedder.dimension, promptTokens);
  }

  /**
   * Posts each query's analysis so far after every token. The whole text is decoded again each time: a
   * token can end inside a character that the next one completes, so decoding tokens one by one would not do.
   */
  private streamer(owner: number): (i: number, token: number) => void {
    const tokens: number[][] = [];
    const tok = this.embedder.tokenizer;
    return (i, token) => {
      (tokens[i] ??= []).push(token);
      if (tok.isSpecial(token)) return;
      const reasoning = tok
        .decode(tokens[i], { skipSpecialTokens: true })
        .replace(/\uFFFD+$/u, '')
        .trim();
      post({ type: 'progress', id: owner, input: i, reasoning });
    };
  }

  async embedTokens(owner: number, seqs: number[][]): Promise<EmbedResult> {
    const results = await this.batcher.embedDirect(
      owner,
      seqs.map((ids) => ({ ids, truncated: 0 })),
    );
    return pack(
      results,
      this.embedder.dimension,
      seqs.reduce((a, s) => a + s.length, 0),
    );
  }

  chat(owner: number, job: ChatJob): Promise<ChatResult> {
    const prepared = prepareChat(this.embedder, job); // a prompt too long is refused before it waits for its turn
    return this.batcher.generate(owner, () => chatSteps(this.embedder, job, prepared));
  }

  handle(m: WorkerRequest): void {
    if (m.type === 'configure') {
      this.batcher.configure(m.batching);
      return;
    }
    const run = async (): Promise<EmbedResult | ChatResult> => {
      if (m.type === 'embed') return this.embed(m.id, m.job);
      if (m.type === 'embedTokens') return this.embedTokens(m.id, m.seqs);
      return this.chat(m.id, m.job);
    };
    run().then(
      (value) => {
        const transfer = 'vectors' in value ? [value.vectors.buffer as ArrayBuffer] : [];
        post({ type: 'result', id: m.id, value }, transfer);
      },
      (e: unknown) => post({ type: 'error', id: m.id, error: errorToWire(e) }),
    );
  }
}

async function load(config: WorkerConfig): Promise<{ worker: ModelWorker; info: ModelInfo }> {
  const loaded = await loadModelFolder(config.modelDir);
  const embedder = new Embedder(loaded.model, loaded.tokenizer, config.embedder);
  const info: ModelInfo = {
    modelId: await modelFingerprint(config.modelDir),
    dimension: embedder.dimension,
    maxLength: embedder.maxLength,
    templates: embedder.templates,
    contextLength: loaded.config.maxPositionEmbeddings,
    vocabSize: loaded.config.vocabSize,
    longestTokenChars: loaded.tokenizer.longestTokenChars(),
  };
  return { worker: new ModelWorker(embedder, config), info };
}

const config = workerData as WorkerConfig;
load({ ...config, modelDir: path.resolve(config.modelDir) }).then(
  ({ worker, info }) => {
    port.on('message', (m: WorkerRequest) => worker.handle(m));
    post({ type: 'ready', info });
  },
  (e: unknown) => post({ type: 'failed', error: errorToWire(e) }),
);
