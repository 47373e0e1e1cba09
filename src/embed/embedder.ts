/**
 * embedDocuments and embedQuery: the Search-R3 model as an embedding function. Documents (and direct
 * queries) take one forward pass, batched by length; queries with reasoning generate their analysis
 * until the model emits <|embed_token|>, which is forced (and reported) when the budget runs out.
 */
import * as T from '../tensor/index.js';
import { type Steps, generateSteps, runSteps } from '../model/generate.js';
import type { Qwen2Model } from '../model/qwen2-model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import {
  DEFAULT_TEMPLATES,
  type EncodedPrompt,
  type PromptTemplates,
  UNCOUNTED_CUT,
  embedTokenId,
  encodePrompt,
} from './prompts.js';
import { checkEmbedderOptions, checkQueryOptions, checkTexts } from './query-options.js';
import { readAnalysis, reasoningPrompts } from './reasoning.js';

export interface EmbedderOptions {
  templates?: Partial<PromptTemplates>;
  /** Longest prompt in tokens (text beyond it is cut and counted); default the model's context, at most 8192. */
  maxLength?: number;
  /** Tokens per forward batch when embedding many texts (padding included). */
  batchTokens?: number;
}

export interface QueryOptions {
  reasoning?: 'off' | 'on';
  /** Budget for the analysis before the embed token; default 128. */
  maxReasoningTokens?: number;
  /** Sampling temperature of the analysis; 0 (default) is greedy. */
  temperature?: number;
  topP?: number;
  seed?: number;
}

export interface QueryEmbedding {
  vector: Float32Array;
  /** The model's analysis (empty with reasoning off). */
  reasoning: string;
  /** True when the model did not emit the embed token within the budget and it was appended for it. */
  forced: boolean;
  /** Token ids the model generated (the analysis, and the embed token when it emitted one). */
  tokens: number[];
  /** Tokens of the query cut to fit the context. */
  truncated: number;
}

/** A query embedded without reasoning: its vector at the embed token after `prompt`. */
export function directQueryEmbedding(vector: Float32Array, prompt: { truncated: number }): QueryEmbedding {
  return { vector, reasoning: '', forced: false, tokens: [], truncated: prompt.truncated };
}

export interface EmbedStats {
  texts: number;
  tokens: number;
  truncatedTexts: number;
}

export class Embedder {
  readonly templates: PromptTemplates;
  readonly maxLength: number;
  readonly batchTokens: number;
  readonly embedId: number;

  constructor(
    readonly model: Qwen2Model,
    readonly tokenizer: Tokenizer,
    opts: EmbedderOptions = {},
  ) {
    checkEmbedderOptions(opts);
    this.templates = { ...DEFAULT_TEMPLATES, ...opts.templates };
    this.maxLength = Math.min(opts.maxLength ?? 8192, model.config.maxPositionEmbeddings);
    this.batchTokens = opts.batchTokens ?? 4096;
    this.embedId = embedTokenId(tokenizer);
    // A context too small for the templates themselves fails every text: said now (PromptTooLongError),
    // before anything records the setting, such as a new index's manifest.
    for (const kind of ['document', 'query'] as const)
      encodePrompt(tokenizer, 'x', kind, this.templates, this.maxLength);
  }

  get dimension(): number {
    return this.model.config.hiddenSize;
  }

  /** One L2-normalised vector per document, in input order. */
  embedDocuments(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): { vectors: Float32Array[]; stats: EmbedStats } {
    return runSteps(this.documentSteps(texts, onProgress));
  }

  /**
   * embedDocuments one forward batch at a time (run each with advance()): a caller can give the event loop a
   * turn between batches. The batches are embedDocuments', so the vectors are bit for bit the same.
   */
  *documentSteps(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Steps<{ vectors: Float32Array[]; stats: EmbedStats }> {
    checkTexts(texts, 'document');
    // Every prompt is held until the last batch (batches are cut by length over them all): kept as 4-byte ids
    // with only their counts, not as a JS array of numbers (8 bytes a token) in its EncodedPrompt.
    let tokens = 0;
    let truncatedTexts = 0;
    const seqs = texts.map((t) => {
      // only how many texts were cut is reported, so a long document is encoded no further than its prompt
      const p = encodePrompt(this.tokenizer, t, 'document', this.templates, this.maxLength, false, UNCOUNTED_CUT);
      tokens += p.ids.length;
      if (p.truncated > 0) truncatedTexts++;
      return Int32Array.from(p.ids);
    });
    const vectors = yield* this.forwardSteps(seqs, onProgress);
    return { vectors, stats: { texts: texts.length, tokens, truncatedTexts } };
  }

  /** Embeds queries; with reasoning on, the model analyses each query before emitting the token. */
  embedQueries(texts: readonly string[], opts: QueryOptions = {}): QueryEmbedding[] {
    checkTexts(texts, 'query');
    checkQueryOptions(opts);
    if ((opts.reasoning ?? 'off') === 'off') {
      const prompts = texts.map((t) => encodePrompt(this.tokenizer, t, 'query', this.templates, this.maxLength));
      return this.forwardBatches(prompts.map((p) => p.ids)).map((v, i) => directQueryEmbedding(v, prompts[i]));
    }
    return runSteps(this.reasoningSteps(texts, opts));
  }

  embedQuery(text: string, opts: QueryOptions = {}): QueryEmbedding {
    return this.embedQueries([text], opts)[0];
  }

  /**
   * Final hidden state at the last token of each sequence. Sequences are sorted by length and padded on
   * the right: under causal attention padding after a token cannot change it, so no mask is needed.
   */
  forwardBatches(seqs: number[][], onProgress?: (done: number, total: number) => void): Float32Array[] {
    return runSteps(this.forwardSteps(seqs, onProgress));
  }

  /** forwardBatches one batch (one forward pass) per step. */
  private *forwardSteps(
    seqs: readonly (readonly number[] | Int32Array)[],
    onProgress?: (done: number, total: number) => void,
  ): Steps<Float32Array[]> {
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].length - seqs[a].length);
    const out = new Array<Float32Array>(seqs.length);
    const d = this.dimension;
    let done = 0;
    for (let start = 0; start < order.length;) {
      const longest = seqs[order[start]].length;
      const n = Math.max(1, Math.min(order.length - start, Math.floor(this.batchTokens / longest)));
      const batch = order.slice(start, start + n);
      const ids = new Int32Array(n * longest);
      batch.forEach((idx, b) => ids.set(seqs[idx], b * longest));
      const hidden = T.noGrad(() => this.model.forward(ids, n, longest)).read();
      batch.forEach((idx, b) => {
        const at = (b * longest + seqs[idx].length - 1) * d;
        out[idx] = normalize(hidden.subarray(at, at + d));
      });
      start += n;
      done += n;
      onProgress?.(done, seqs.length);
      yield;
    }
    return out;
  }

  /**
   * Queries that reason first, one forward pass per step (see generateSteps): a server runs other
   * batches between the steps of a long generation. `onToken` sees each generated token of query `row`;
   * an `abandoned` row (greedy only, see GenerateOptions) stops generating and gets no vector.
   */
  *reasoningSteps(
    texts: readonly string[],
    opts: QueryOptions,
    onToken?: (row: number, token: number) => void,
    abandoned?: (row: number) => boolean,
  ): Steps<QueryEmbedding[]> {
    const { prompts, budget, stopTokens } = reasoningPrompts(
      this.tokenizer,
      texts,
      this.templates,
      this.maxLength,
      opts.maxReasoningTokens,
    );
    // a budget of 0 reasons not at all: <|embed_token|> is forced right after the prompt, with no pass before it
    const gens =
      budget === 0
        ? prompts.map(() => ({ tokens: [], finish: 'length' as const, hidden: new Map<number, Float32Array>() }))
        : yield* generateSteps(
            this.model,
            prompts.map((p) => p.ids),
            {
              maxNewTokens: budget,
              temperature: opts.temperature ?? 0,
              topP: opts.topP,
              seed: opts.seed,
              stopTokens,
              captureTokens: [this.embedId],
              onToken,
              abandoned,
            },
          );
    const forcedSeqs: number[][] = [];
    const results = gens.map((g, i): QueryEmbedding => {
      const { analysis, reasoning, emitted } = readAnalysis(this.tokenizer, g.tokens, g.finish);
      if (emitted) {
        const at = prompts[i].ids.length + g.tokens.length - 1;
        return {
          vector: normalize(g.hidden.get(at)!),
          reasoning,
          forced: false,
          tokens: g.tokens,
          truncated: prompts[i].truncated,
        };
      }
      forcedSeqs[i] = [...prompts[i].ids, ...analysis, this.embedId];
      return {
        vector: new Float32Array(0),
        reasoning,
        forced: true,
        tokens: g.tokens,
        truncated: prompts[i].truncated,
      };
    });
    const forcedIdx = results.map((r, i) => (r.forced && !abandoned?.(i) ? i : -1)).filter((i) => i >= 0);
    if (forcedIdx.length > 0) {
      const vectors = this.forwardBatches(forcedIdx.map((i) => forcedSeqs[i]));
      forcedIdx.forEach((i, j) => {
        results[i].vector = vectors[j];
      });
    }
    return results;
  }
}

/** What embedding `texts` as `prompts` took: texts, tokens, and the texts cut to fit. */
export function embedStats(texts: readonly string[], prompts: readonly EncodedPrompt[]): EmbedStats {
  const tokens = prompts.reduce((a, p) => a + p.ids.length, 0);
  return { texts: texts.length, tokens, truncatedTexts: prompts.filter((p) => p.truncated > 0).length };
}

export function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  return Float32Array.from(v, (x) => x * inv);
}
