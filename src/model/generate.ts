/**
 * Autoregressive generation with a KV cache over a batch of prompts of different lengths.
 *
 * Prompts are left-padded to a common length; padding is masked out of attention and positions start
 * at 0 at each row's first real token, so every row computes exactly what it would alone. A row stops
 * at a stop token (or where `stopWhen` says) or after maxNewTokens. Hidden states (after the final norm)
 * can be captured at given positions or wherever a given token is fed to the model, e.g. a generated
 * <|embed_token|>: the token is fed once more so that its own hidden state exists.
 */
import * as T from '../tensor/index.js';
import type { Qwen2Model } from './qwen2-model.js';
import { type SamplingOptions, sampleToken } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Generation of a row ends after it produces one of these. */
  stopTokens?: number[];
  /**
   * Asked after each token with the row's tokens so far: true ends the row there (finish 'stop'), as a stop
   * token would, e.g. once their text contains a stop string.
   */
  stopWhen?: (row: number, tokens: readonly number[]) => boolean;
  /**
   * Seed for sampling (temperature > 0); each call with the same seed on the same device gives the same
   * tokens (a GPU draws in float32: see samplePick).
   */
  seed?: number;
  /** Capture the hidden state wherever one of these tokens is an input (prompt or generated). */
  captureTokens?: number[];
  /** Capture the hidden state at these positions of each row (0 = first prompt token). */
  capturePositions?: number[][];
  /** Called with each token as it is generated (row = index of its prompt), e.g. to stream it to a reader. */
  onToken?: (row: number, token: number) => void;
  /**
   * Rows nobody waits for any more (a server's client left): asked before each token, such a row stops
   * where it is, so that the generation ends when the rows still wanted do. Greedy decoding only: sampled
   * rows draw from one stream in row order, so a row dropped would change the draws of the others.
   */
  abandoned?: (row: number) => boolean;
}

export interface Generation {
  /** Generated tokens (the stop token included when one ended the row). */
  tokens: number[];
  /** Log-probability of each generated token under the sampling distribution (see sampleToken). */
  logprobs: number[];
  finish: 'stop' | 'length';
  /** Captured hidden states by position in the row (prompt + generated). */
  hidden: Map<number, Float32Array>;
}

export function generate(model: Qwen2Model, prompts: number[][], opts: GenerateOptions): Generation[] {
  return runSteps(generateSteps(model, prompts, opts));
}

/** Work that yields after each forward pass and returns its result at the end (see generateSteps). */
export type Steps<T> = Generator<void, T, void>;

/** Runs one step (one forward pass) of `steps` without recording gradients. */
export function advance<T>(steps: Steps<T>): IteratorResult<void, T> {
  return T.noGrad(() => steps.next());
}

/** Runs `steps` to the end and returns the result. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = advance(steps);
    if (r.done) return r.value;
  }
}

/**
 * runSteps, giving the event loop a turn after each step: the forward passes are synchronous, and between
 * them timers, I/O, signal handlers and a worker's messages get their turn. `stop`, asked after each turn,
 * ends the work early by throwing the error it returns.
 */
export async function runStepsYielding<T>(steps: Steps<T>, stop: () => Error | null = () => null): Promise<T> {
  for (;;) {
    const r = advance(steps);
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
    const e = stop();
    if (e) throw e;
  }
}

/**
 * generate() one forward pass at a time (the prompts', then one per new token): a caller such as a
 * server can do other model work between steps (run each with advance()). A generation's state (its KV
 * cache, its sampler's seed) is its own, so what runs in between does not change the result.
 */
export function* generateSteps(model: Qwen2Model, prompts: number[][], opts: GenerateOptions): Steps<Generation[]> {
  const c = model.config,
    B = prompts.length,
    d = c.hiddenSize,
    V = c.vocabSize;
  if (B === 0) return [];
  if (prompts.some((p) => p.length === 0)) throw new Error('generate: every prompt needs at least one token');
  const P = Math.max(...prompts.map((p) => p.length));
  // the last new token is fed only to capture its hidden state, at position P + maxNewTokens - 1: the last one
  const need = P + opts.maxNewTokens;
  if (need > c.maxPositionEmbeddings) {
    throw new Error(
      `generate: a ${P}-token prompt plus ${opts.maxNewTokens} new tokens exceeds the model's context of ` +
        `${c.maxPositionEmbeddings} positions`,
    );
  }
  const stop = new Set(opts.stopTokens ?? []);
  const captureTok = new Set(opts.captureTokens ?? []);
  const capturePos = (opts.capturePositions ?? []).map((ps) => new Set(ps));
  const rng = opts.temperature && opts.temperature > 0 ? new T.Rng(opts.seed ?? 0) : null;
  const untruncated = ((opts.topK ?? 0) <= 0 || opts.topK! >= V) && (opts.topP ?? 1) >= 1;
  const pad = prompts.map((p) => P - p.length);
  const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], finish: 'length', hidden: new Map() }));
  // running: samples another token; feed: its last token must be fed once more for a capture; done.
  // A budget of 0 tokens runs the prompts (for their captures) and samples nothing.
  const state = new Array<'running' | 'feed' | 'done'>(B).fill(opts.maxNewTokens > 0 ? 'running' : 'done');
  const wantsHidden = (b: number, tok: number, rowPos: number): boolean =>
    captureTok.has(tok) || capturePos[b]?.has(rowPos) === true;

  const cache = model.newCache(need);
  let mask = new Uint8Array(B * P);
  const ids = new Int32Array(B * P),
    pos = new Int32Array(B * P);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < P; t++) {
      const real = t >= pad[b];
      mask[b * P + t] = real ? 1 : 0;
      ids[b * P + t] = real ? prompts[b][t - pad[b]] : 0;
      pos[b * P + t] = real ? t - pad[b] : 0;
    }
  }
  let hidden = model.forward(ids, B, P, { positions: pos, keyMask: mask, cache });
  yield;
  let stepIds: Int32Array = ids,
    stepLen = P;
  let live = new Array<boolean>(B).fill(true);

  for (;;) {
    // Hidden states come to the host only when a row captures one (a copy from a GPU).
    let hd: Float32Array | null = null;
    const h = hidden;
    const hostHidden = (): Float32Array => (hd ??= h.read());
    for (let b = 0; b < B; b++) {
      if (!live[b]) continue;
      const rowLen = prompts[b].length + out[b].tokens.length;
      for (let t = 0; t < stepLen; t++) {
        const rowPos = rowLen - stepLen + t;
        if (rowPos < 0) continue; // padding
        if (wantsHidden(b, stepIds[b * stepLen + t], rowPos)) {
          out[b].hidden.set(
            rowPos,
            Float32Array.from(hostHidden().subarray((b * stepLen + t) * d, (b * stepLen + t + 1) * d)),
          );
        }
      }
      if (state[b] === 'feed') state[b] = 'done';
      if (state[b] === 'running' && rng === null && opts.abandoned?.(b)) state[b] = 'done';
    }
    if (!state.includes('running')) {
      T.recycle(hidden);
      break;
    }

    const last = T.slice(hidden, 1, stepLen - 1, stepLen),
      logitsTensor = model.logits(last);
    // On a GPU the token is chosen there (2 floats a row come back instead of the vocabulary's logits),
    // except a top-k/top-p draw, which the host makes. The device's draw takes one rng.next() for each
    // running row, in row order, as sampleToken does.
    const picks =
      rng === null
        ? T.greedyPick(logitsTensor)
        : untruncated
          ? T.samplePick(logitsTensor, opts.temperature!, () =>
              Float32Array.from(state, (s) => (s === 'running' ? rng.next() : 0)),
            )
          : null;
    const logits = picks ? null : logitsTensor.read();
    const next = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      if (state[b] !== 'running') continue;
      const s = picks
        ? { token: picks.tokens[b], logprob: picks.logprobs[b] }
        : sampleToken(logits!, b * V, V, opts, rng);
      next[b] = s.token;
      out[b].tokens.push(s.token);
      out[b].logprobs.push(s.logprob);
      opts.onToken?.(b, s.token);
      const stopped = stop.has(s.token) || opts.stopWhen?.(b, out[b].tokens) === true;
      if (stopped) out[b].finish = 'stop';
      if (stopped || out[b].tokens.length >= opts.maxNewTokens) {
        state[b] = wantsHidden(b, s.token, prompts[b].length + out[b].tokens.length - 1) ? 'feed' : 'done';
      }
    }
    // Captures were copied out and the tokens sampled: the next step reuses this one's memory.
    T.recycle(hidden, last, logitsTensor);
    live = state.map((s) => s !== 'done');
    if (!live.some(Boolean)) break;

    // one decode step; rows already done feed a masked dummy token to keep the batch aligned
    const S = cache.length + 1;
    const grown = new Uint8Array(B * S);
    const stepPos = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      grown.set(mask.subarray(b * (S - 1), (b + 1) * (S - 1)), b * S);
      grown[b * S + S - 1] = live[b] ? 1 : 0;
      stepPos[b] = live[b] ? prompts[b].length + out[b].tokens.length - 1 : 0;
    }
    mask = grown;
    stepIds = next;
    stepLen = 1;
    hidden = model.forward(next, B, 1, { positions: stepPos, keyMask: mask, cache });
    yield;
  }
  return out;
}
