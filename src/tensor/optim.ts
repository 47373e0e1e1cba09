/** Optimisers (AdamW, SGD), gradient clipping by global norm, and parameter counting. */
import { kernels, noGrad, type Buf } from './backend.js';
import { type Tensor, TensorError } from './tensor.js';

export interface Optimizer {
  /** Applies one update with learning rate lr (from a schedule) to every parameter that has a gradient. */
  step(lr: number): void;
  zeroGrad(): void;
  state(): OptimizerState;
  loadState(s: OptimizerState): void;
}

/** Serialisable optimiser state (a copy), keyed by parameter position. */
export interface OptimizerState {
  kind: string;
  step: number;
  /** Updates each parameter has received (AdamW's bias correction counts per parameter, as PyTorch). */
  paramSteps?: number[];
  buffers: Float32Array[][];
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** AdamW with decoupled weight decay and bias correction (as torch.optim.AdamW). */
export class AdamW implements Optimizer {
  private t = 0;
  private readonly paramSteps: number[];
  private m: Buf[];
  private v: Buf[];
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;

  constructor(
    readonly params: Tensor[],
    opts: AdamWOptions = {},
  ) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.m = params.map((p) => kernels().alloc(p.size));
    this.v = params.map((p) => kernels().alloc(p.size));
    this.paramSteps = params.map(() => 0);
  }

  step(lr: number): void {
    this.t++;
    const k = kernels();
    this.params.forEach((p, i) => {
      if (p.grad === null) return;
      // a parameter without a gradient this step keeps its moments and its own step count
      const t = ++this.paramSteps[i];
      const bc1 = 1 - Math.pow(this.beta1, t),
        bc2 = 1 - Math.pow(this.beta2, t);
      k.adamw(p.buf, p.grad, this.m[i], this.v[i], lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  state(): OptimizerState {
    return {
      kind: 'adamw',
      step: this.t,
      paramSteps: [...this.paramSteps],
      buffers: [this.m.map(toHostCopy), this.v.map(toHostCopy)],
    };
  }

  loadState(s: OptimizerState): void {
    if (s.kind !== 'adamw' || s.buffers.length !== 2 || s.buffers[0].length !== this.params.length) {
      throw new TensorError(
        'AdamW.loadState',
        `state (${s.kind}, ${s.buffers[0]?.length ?? 0} parameters) does not fit this optimiser ` +
          `(${this.params.length} parameters)`,
      );
    }
    this.t = s.step;
    s.paramSteps?.forEach((n, i) => {
      this.paramSteps[i] = n;
    });
    if (!s.paramSteps) this.paramSteps.fill(s.step);
    s.buffers[0].forEach((b, i) => (this.m[i] = fromHostCopy(b)));
    s.buffers[1].forEach((b, i) => (this.v[i] = fromHostCopy(b)));
  }
}

/** Plain SGD with optional momentum (as torch.optim.SGD without dampening or Nesterov). */
export class SGD implements Optimizer {
  private t = 0;
  private buf: Buf[];

  constructor(
    readonly params: Tensor[],
    private readonly momentum = 0,
    private readonly weightDecay = 0,
  ) {
    this.buf = params.map((p) => kernels().alloc(momentum > 0 ? p.size : 0));
  }

  step(lr: number): void {
    this.t++;
    const k = kernels();
    this.params.forEach((p, i) => {
      if (p.grad === null) return;
      let d = p.grad;
      if (this.weightDecay !== 0) {
        d = k.clone(d);
        k.axpby(this.weightDecay, p.buf, 1, d);
      }
      if (this.momentum > 0) {
        if (this.t === 1) this.buf[i] = k.clone(d);
        else k.axpby(1, d, this.momentum, this.buf[i]);
        d = this.buf[i];
      }
      k.axpby(-lr, d, 1, p.buf);
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }
  state(): OptimizerState {
    return { kind: 'sgd', step: this.t, buffers: [this.buf.map(toHostCopy)] };
  }
  loadState(s: OptimizerState): void {
    if (s.kind !== 'sgd' || s.buffers[0].length !== this.params.length)
      throw new TensorError('SGD.loadState', 'state does not fit this optimiser');
    this.t = s.step;
    s.buffers[0].forEach((b, i) => (this.buf[i] = fromHostCopy(b)));
  }
}

/**
 * Scales all gradients so that their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_).
 * Returns the norm before clipping.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  const k = kernels();
  const norm = Math.sqrt(k.sumSquaresMany(params.flatMap((p) => (p.grad ? [p.grad] : []))));
  if (!Number.isFinite(norm)) throw new TensorError('clipGradNorm', `the gradient norm is ${norm}`);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1)
    noGrad(() => {
      for (const p of params) if (p.grad) k.axpby(coef, p.grad, 0, p.grad);
    });
  return norm;
}

/** A host copy of an optimiser buffer (a checkpoint must not alias live state). */
function toHostCopy(b: Buf): Float32Array {
  return Float32Array.from(kernels().toHost(b));
}
function fromHostCopy(b: Float32Array): Buf {
  return kernels().fromHost(Float32Array.from(b));
}

export function countParameters(params: Tensor[]): number {
  return params.reduce((n, p) => n + p.size, 0);
}
