/**
 * An EmbeddingBackend over one or more search-r3 servers (or anything that speaks our /v1/embeddings
 * with the `search_r3` extension): work is cut into requests of at most `inputsPerRequest` inputs,
 * spread round-robin over the servers with `concurrency` requests in flight per server; a 429, a 5xx,
 * a timeout or a refused connection is retried on the next server after an exponential back-off with
 * jitter. On connect every server's /health must report the same model id, dimension, prompts and cut
 * length, so an index never mixes vectors of two models.
 */
import {
  DEFAULT_TEMPLATES,
  EMBED_TOKEN,
  directQueryEmbedding,
  encodePrompt,
  type EncodedPrompt,
  normalize,
  type PromptTemplates,
  type QueryEmbedding,
  type QueryOptions,
  checkQueryOptions,
  checkTexts,
} from '../embed/index.js';
import type { DocumentEmbeddings, EmbeddingBackend, InputRange } from '../search-index/embedding-backend.js';
import type { ModelFusion } from '../search-index/model-fusion.js';
import type { Tokenizer } from '../model/tokenizer.js';
import {
  NON_NEGATIVE_NUMBER,
  POSITIVE_INTEGER,
  type Refuse,
  TIMER_MAX_MS,
  checkChoice,
  checkNumber,
  checkOptionsObject,
  refusal,
  showValue,
} from '../io/option-checks.js';

export interface RemoteOptions {
  apiKey?: string;
  /** Per-request timeout (default 120 s: a batch of long documents on a CPU server is slow). */
  timeoutMs?: number;
  /** Attempts per request before giving up (default 6). */
  maxAttempts?: number;
  /** First back-off delay; doubles per attempt (default 250 ms, capped at 10 s). */
  backoffMs?: number;
  inputsPerRequest?: number;
  /** Requests in flight per server (default 2). */
  concurrency?: number;
  /** The `model` field sent (default: what the first server's /health calls itself; required for 'openai'). */
  model?: string;
  /**
   * 'search-r3' (default): our servers, prompts applied server-side via the `search_r3` extension.
   * 'openai': any OpenAI-compatible server running the Search-R3 model with last-token pooling (e.g. vLLM
   * with a LAST pooler): prompts are rendered here with `tokenizer` and sent as token ids to
   * /v1/embeddings; reasoning comes from /v1/chat/completions (stop at <|embed_token|>), and the vector
   * from embedding prompt + analysis + <|embed_token|> as token ids.
   */
  protocol?: 'search-r3' | 'openai';
  /** For 'openai': the model's tokenizer (Tokenizer.fromFolder on the model folder; weights are not needed). */
  tokenizer?: Tokenizer;
  /**
   * For 'openai': the identity recorded in an index (default `openai:<model>`); use the model's fingerprint to mix with
   * local encoding.
   */
  modelId?: string;
  templates?: Partial<PromptTemplates>;
  /** For 'openai': longest prompt in tokens (default 8192). */
  maxLength?: number;
}

interface Health {
  model: string;
  model_id: string;
  source?: string;
  dimension: number;
  max_length: number;
  templates: PromptTemplates;
  /** The served model's stored hybrid fusion (absent: plain RRF). */
  fusion?: { dense_weight: number; k: number; chosen_on: string };
}

export class RemoteError extends Error {
  /** The request field a server's error names (OpenAI's `param`, e.g. 'input[3]'). */
  readonly param?: string;
  /** The texts of the call whose request failed (an index names their documents). */
  readonly failedInputs?: InputRange;

  constructor(
    message: string,
    readonly status?: number,
    about: { param?: string; failedInputs?: InputRange } = {},
  ) {
    super(message);
    this.name = 'RemoteError';
    this.param = about.param;
    this.failedInputs = about.failedInputs;
  }
}

/**
 * The error of a request that carried `count` of a call's texts from `start`, with the texts it is about: the one
 * the server's error names (input[i]), else all the request carried.
 */
function aboutInputs(e: unknown, start: number, count: number): unknown {
  if (!(e instanceof RemoteError)) return e;
  const named = /^input\[(\d+)\]/.exec(e.param ?? '');
  const i = named ? Number(named[1]) : -1;
  const failedInputs = i >= 0 && i < count ? { start: start + i, end: start + i + 1 } : { start, end: start + count };
  return new RemoteError(e.message, e.status, { param: e.param, failedInputs });
}

/**
 * Runs `task(0)` … `task(count - 1)`, at most `width` at once, started in order. A failure starts no more; once
 * those under way have settled, the failure of the first in order is thrown: with several requests refused, the
 * error and the inputs it names are the first faulty ones, not those of whichever answer came back first.
 */
async function inOrder(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failedAt = Infinity;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failedAt === Infinity && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (e) {
        if (i < failedAt) [failedAt, failure] = [i, e];
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, width) }, worker));
  if (failedAt !== Infinity) throw failure;
}

export class RemoteEmbedder implements EmbeddingBackend {
  private next = 0;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly inputsPerRequest: number;
  private readonly concurrency: number;
  /** Requests sent per server (for tests and logs). */
  readonly requestsPerServer: Map<string, number>;

  private constructor(
    readonly urls: string[],
    private readonly health: Health,
    private readonly opts: RemoteOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.maxAttempts = opts.maxAttempts ?? 6;
    this.backoffMs = opts.backoffMs ?? 250;
    this.inputsPerRequest = opts.inputsPerRequest ?? 32;
    this.concurrency = opts.concurrency ?? 2;
    this.requestsPerServer = new Map(urls.map((u) => [u, 0]));
  }

  /** Checks every server's /health and that they all serve the same model with the same prompts. */
  static async connect(urls: string[], opts: RemoteOptions = {}): Promise<RemoteEmbedder> {
    checkRemoteOptions(urls, opts);
    if (urls.length === 0) throw new RemoteError('no server URLs given.');
    const clean = urls.map((u) => u.replace(/\/+$/, '').replace(/\/v1$/, ''));
    if (opts.protocol === 'openai') return RemoteEmbedder.connectOpenAI(clean, opts);
    const healths: Health[] = [];
    for (const u of clean) healths.push(await RemoteEmbedder.health(u, opts));
    const first = healths[0];
    healths.forEach((h, i) => {
      const same =
        h.model_id === first.model_id &&
        h.dimension === first.dimension &&
        h.max_length === first.max_length &&
        JSON.stringify(h.templates) === JSON.stringify(first.templates) &&
        JSON.stringify(h.fusion) === JSON.stringify(first.fusion);
      if (!same)
        throw new RemoteError(
          `${clean[i]} serves model ${h.model_id} (${h.dimension}-d, cut ${h.max_length}) but ${clean[0]} ` +
            `serves ${first.model_id} (${first.dimension}-d, cut ${first.max_length}) or other prompts or fusion; ` +
            `all servers must serve the same model.`,
        );
    });
    return new RemoteEmbedder(clean, first, opts);
  }

  /**
   * A server's /health with the model's details. Without the right API key a search-r3 server tells only
   * its status; an authenticated route then says why (its 401), as the first embedding request would.
   */
  private static async health(u: string, opts: RemoteOptions): Promise<Health> {
    const get = async (route: string): Promise<Response> => {
      try {
        const signal = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
        return await fetch(`${u}${route}`, { headers: authHeader(opts.apiKey), signal });
      } catch (e) {
        throw new RemoteError(`${u}${route}: cannot connect (${(e as Error).message}).`);
      }
    };
    const res = await get('/health');
    const h = (await res.json().catch(() => ({}))) as Partial<Health> & { status?: string; reason?: string };
    if (!res.ok) {
      throw new RemoteError(`${u}/health answered HTTP ${res.status}${h.reason ? `: ${h.reason}` : '.'}`, res.status);
    }
    if (typeof h.model_id === 'string' && Number.isInteger(h.dimension)) return h as Health;
    if (Object.keys(h).length === 1 && h.status !== undefined) {
      const probe = await get('/v1/models');
      const body = (await probe.json().catch(() => null)) as { error?: { message?: string } } | null;
      const message = body?.error?.message ?? 'no error message';
      if (!probe.ok) throw new RemoteError(`${u}/v1/models: HTTP ${probe.status}: ${message}`, probe.status);
    }
    throw new RemoteError(`${u}/health does not describe a search-r3 model (no model_id/dimension).`);
  }

  /**
   * A generic OpenAI-compatible server knows nothing of our prompts: the dimension is probed by embedding
   * one document, and the identity is what the caller says it is.
   */
  private static async connectOpenAI(urls: string[], opts: RemoteOptions): Promise<RemoteEmbedder> {
    if (!opts.tokenizer)
      throw new RemoteError(
        "the 'openai' protocol needs the model's tokenizer (to render the Search-R3 prompts as token ids).",
      );
    if (!opts.model) throw new RemoteError("the 'openai' protocol needs the served model's name ('model').");
    const templates = { ...DEFAULT_TEMPLATES, ...opts.templates };
    const probe = new RemoteEmbedder(
      urls,
      {
        model: opts.model,
        model_id: opts.modelId ?? `openai:${opts.model}`,
        dimension: 0,
        max_length: opts.maxLength ?? 8192,
        templates,
      },
      opts,
    );
    const [v] = await probe.embedTokenSeqs([
      encodePrompt(opts.tokenizer, 'probe', 'document', templates, probe.maxLength).ids,
    ]);
    return new RemoteEmbedder(urls, { ...probe.health, dimension: v.length }, opts);
  }

  get modelId(): string {
    return this.health.model_id;
  }
  get source(): string {
    return this.health.source ?? this.health.model_id;
  }
  get dimension(): number {
    return this.health.dimension;
  }
  get maxLength(): number {
    return this.health.max_length;
  }
  get templates(): PromptTemplates {
    return this.health.templates;
  }
  get fusion(): ModelFusion | undefined {
    const f = this.health.fusion;
    return f ? { denseWeight: f.dense_weight, k: f.k, chosenOn: f.chosen_on } : undefined;
  }

  async embedDocuments(texts: readonly string[]): Promise<Float32Array[]> {
    return (await this.encodeDocuments(texts)).vectors;
  }

  /** The documents' vectors, and how many were cut to fit the servers' cut length, as an index reports it. */
  async encodeDocuments(texts: readonly string[]): Promise<DocumentEmbeddings> {
    // sent unchecked, a string went as one input and came back 'returned 1 embeddings for 3 inputs', and a number
    // as a token id
    checkTexts(texts, 'document', refuse);
    if (this.opts.protocol === 'openai') {
      const prompts = texts.map((t) => this.prompt(t, 'document'));
      const vectors = await this.embedTokenSeqs(prompts.map((p) => p.ids));
      return { vectors, truncated: prompts.filter((p) => p.truncated > 0).length };
    }
    const results = await this.run(texts, { mode: 'document', reasoning: 'off' });
    return { vectors: results.map((r) => r.vector), truncated: results.filter((r) => r.truncated > 0).length };
  }

  private prompt(text: string, kind: 'document' | 'query', reasoning = false): EncodedPrompt {
    return encodePrompt(this.opts.tokenizer!, text, kind, this.templates, this.maxLength, reasoning);
  }

  /** Token-id sequences → normalised vectors over /v1/embeddings (split, spread and retried like text). */
  private async embedTokenSeqs(seqs: number[][]): Promise<Float32Array[]> {
    const out = new Array<Float32Array>(seqs.length);
    const parts: number[] = [];
    for (let i = 0; i < seqs.length; i += this.inputsPerRequest) parts.push(i);
    await inOrder(parts.length, this.concurrency * this.urls.length, async (p) => {
      const start = parts[p];
      const part = seqs.slice(start, start + this.inputsPerRequest);
      const res = (await this.post('/v1/embeddings', {
        model: this.opts.model,
        input: part,
        encoding_format: 'base64',
      }).catch((e: unknown) => {
        throw aboutInputs(e, start, part.length);
      })) as { data?: { index: number; embedding: string }[] };
      if (!res.data || res.data.length !== part.length)
        throw new RemoteError(
          `/v1/embeddings returned ${res.data?.length ?? 'no'} embeddings for ${part.length} inputs.`,
        );
      res.data
        .sort((a, b) => a.index - b.index)
        .forEach((d, i) => {
          out[start + i] = normalize(decodeBase64(d.embedding));
        });
    });
    return out;
  }

  /** The generic path of a query: analysis by chat completion, then the vector of prompt + analysis + embed token. */
  private async embedQueriesOpenAI(texts: readonly string[], opts: QueryOptions): Promise<QueryEmbedding[]> {
    const tok = this.opts.tokenizer!;
    if ((opts.reasoning ?? 'off') === 'off') {
      const prompts = texts.map((t) => this.prompt(t, 'query'));
      const vectors = await this.embedTokenSeqs(prompts.map((p) => p.ids));
      return vectors.map((v, i) => directQueryEmbedding(v, prompts[i]));
    }
    const embedId = tok.tokenToId(EMBED_TOKEN);
    if (embedId === undefined) throw new RemoteError(`the tokenizer has no ${EMBED_TOKEN}.`);
    // every query's analysis at once
    const analyses = new Array<{ reasoning: string; forced: boolean }>(texts.length);
    await inOrder(texts.length, texts.length, async (i) => {
      const text = texts[i];
      const res = (await this.post('/v1/chat/completions', {
        model: this.opts.model,
        messages: [
          { role: 'system', content: this.templates.reasoningSystem },
          { role: 'user', content: text },
        ],
        max_tokens: opts.maxReasoningTokens ?? 128,
        temperature: opts.temperature ?? 0,
        ...(opts.topP !== undefined ? { top_p: opts.topP } : {}),
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        stop: [EMBED_TOKEN],
      })) as {
        choices?: { message?: { content?: string }; finish_reason?: string; stop_reason?: string | number | null }[];
      };
      const c = res.choices?.[0];
      if (!c || typeof c.message?.content !== 'string')
        throw new RemoteError('/v1/chat/completions returned no message.');
      // vLLM and our server say which stop ended the text; without that, only a length cut is known to be forced
      const emitted =
        c.stop_reason === EMBED_TOKEN ||
        c.stop_reason === embedId ||
        (c.stop_reason === undefined && c.finish_reason === 'stop');
      analyses[i] = { reasoning: c.message.content, forced: !emitted };
    });
    const prompts = texts.map((t) => this.prompt(t, 'query', true));
    const seqs = prompts.map((p, i) => [...p.ids, ...tok.encode(analyses[i].reasoning), embedId]);
    const vectors = await this.embedTokenSeqs(seqs);
    return vectors.map((vector, i) => ({
      vector,
      reasoning: analyses[i].reasoning.trim(),
      forced: analyses[i].forced,
      tokens: [],
      truncated: prompts[i].truncated,
    }));
  }

  /** POST with retries on 429/5xx/timeouts/refused connections, round-robin over the servers. */
  private async post(route: string, body: unknown): Promise<unknown> {
    let lastError = '';
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (attempt > 0) {
        const delay = Math.min(10_000, this.backoffMs * 2 ** (attempt - 1));
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() * 0.5)));
      }
      const url = this.urls[this.next++ % this.urls.length];
      this.requestsPerServer.set(url, (this.requestsPerServer.get(url) ?? 0) + 1);
      let res: Response;
      try {
        res = await fetch(`${url}${route}`, {
          method: 'POST',
          signal: AbortSignal.timeout(this.timeoutMs),
          headers: { 'content-type': 'application/json', ...authHeader(this.opts.apiKey) },
          body: JSON.stringify(body),
        });
      } catch (e) {
        lastError = `${url}: ${(e as Error).message}`;
        continue;
      }
      if (res.status === 429 || res.status >= 500) {
        lastError = `${url}: HTTP ${res.status} ${await res.text().catch(() => '')}`.slice(0, 300);
        continue;
      }
      const json = (await res.json().catch(() => null)) as { error?: { message?: string; param?: unknown } } | null;
      if (!res.ok) {
        const param = typeof json?.error?.param === 'string' ? json.error.param : undefined;
        const message = `${url}${route}: HTTP ${res.status}: ${json?.error?.message ?? 'no error message'}`;
        throw new RemoteError(message, res.status, { param });
      }
      if (json === null) throw new RemoteError(`${url}${route}: the answer is not JSON.`);
      return json;
    }
    throw new RemoteError(`gave up after ${this.maxAttempts} attempts: ${lastError}`);
  }

  async embedQueries(texts: readonly string[], opts: QueryOptions = {}): Promise<QueryEmbedding[]> {
    checkTexts(texts, 'query', refuse);
    checkQueryOptions(opts, refuse);
    if (this.opts.protocol === 'openai') return this.embedQueriesOpenAI(texts, opts);
    const ext: Record<string, unknown> = { mode: 'query', reasoning: opts.reasoning ?? 'off' };
    if (opts.maxReasoningTokens !== undefined) ext.max_reasoning_tokens = opts.maxReasoningTokens;
    if (opts.temperature !== undefined) ext.temperature = opts.temperature;
    if (opts.topP !== undefined) ext.top_p = opts.topP;
    if (opts.seed !== undefined) ext.seed = opts.seed;
    return this.run(texts, ext);
  }

  /** Splits into requests and runs them with `concurrency × servers` in flight, results in input order. */
  private async run(texts: readonly string[], ext: Record<string, unknown>): Promise<QueryEmbedding[]> {
    const parts: { start: number; texts: string[] }[] = [];
    for (let i = 0; i < texts.length; i += this.inputsPerRequest)
      parts.push({ start: i, texts: texts.slice(i, i + this.inputsPerRequest) });
    const out = new Array<QueryEmbedding>(texts.length);
    await inOrder(parts.length, this.concurrency * this.urls.length, async (n) => {
      const p = parts[n];
      const res = await this.request(p.texts, ext).catch((e: unknown) => {
        throw aboutInputs(e, p.start, p.texts.length);
      });
      res.forEach((r, i) => {
        out[p.start + i] = r;
      });
    });
    return out;
  }

  /**
   * One request. Texts too long for the prompt are cut, as in-process encoding cuts them (a server refuses
   * them unless asked to cut), and each result says by how many tokens.
   */
  private async request(texts: string[], ext: Record<string, unknown>): Promise<QueryEmbedding[]> {
    const body = (await this.post('/v1/embeddings', {
      model: this.opts.model ?? this.health.model,
      input: texts,
      encoding_format: 'base64',
      search_r3: { ...ext, truncate: true },
    })) as {
      data?: { index: number; embedding: string }[];
      search_r3?: { reasoning?: string; forced?: boolean; truncated_tokens?: number }[];
    };
    if (!body.data || body.data.length !== texts.length)
      throw new RemoteError(
        `/v1/embeddings returned ${body.data?.length ?? 'no'} embeddings for ${texts.length} inputs.`,
      );
    return body.data
      .sort((a, b) => a.index - b.index)
      .map((d, i) => {
        const vector = decodeBase64(d.embedding);
        if (vector.length !== this.dimension)
          throw new RemoteError(`a server returned a ${vector.length}-d vector; expected ${this.dimension}.`);
        const x = body.search_r3?.[i];
        return {
          vector,
          reasoning: x?.reasoning ?? '',
          forced: x?.forced ?? false,
          tokens: [],
          truncated: x?.truncated_tokens ?? 0,
        };
      });
  }
}

const refuse: Refuse = (message) => new RemoteError(message);

/**
 * RemoteEmbedder.connect's arguments, before any server is asked: a count of 0 would split work into no
 * requests (forever, or into no results), and a time that is not a number would reach AbortSignal.timeout.
 */
function checkRemoteOptions(urls: unknown, opts: unknown): void {
  if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string'))
    throw refuse(refusal('the server URLs', 'an array of strings', urls));
  const notHttp = urls.find((u) => !isHttpUrl(u));
  if (notHttp !== undefined)
    throw refuse(`the server URL ${showValue(notHttp)} is not an http(s) URL; write it as http://host:port.`);
  const o = checkOptionsObject(opts, 'the options of RemoteEmbedder.connect', refuse);
  for (const k of ['inputsPerRequest', 'concurrency', 'maxAttempts', 'maxLength'])
    checkNumber(o[k], `'${k}'`, POSITIVE_INTEGER, refuse);
  // the longest delay a timer takes: a longer one fires at once
  checkNumber(o.timeoutMs, "'timeoutMs'", { integer: true, min: 1, max: TIMER_MAX_MS }, refuse);
  checkNumber(o.backoffMs, "'backoffMs'", NON_NEGATIVE_NUMBER, refuse);
  checkChoice(o.protocol, "'protocol'", ['search-r3', 'openai'], refuse);
}

/** Whether fetch can reach `u`: "localhost:8080" parses as a URL of scheme "localhost:", which fetch refuses. */
function isHttpUrl(u: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(u).protocol);
  } catch {
    return false;
  }
}

function authHeader(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

function decodeBase64(s: string): Float32Array {
  const buf = Buffer.from(s, 'base64');
  const v = new Float32Array(buf.byteLength / 4);
  new Uint8Array(v.buffer).set(buf);
  return v;
}
