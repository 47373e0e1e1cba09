/**
 * Float32 tensors with reverse-mode autodiff.
 *
 * A tensor is a contiguous row-major array with a shape, on the device of the active backend: a
 * Float32Array on the CPU, a GPU buffer on WebGPU (host arrays given to the constructor are uploaded).
 * `buf` is that storage, for kernels; `read()` copies values to the host (free on the CPU); `data` is
 * the host array itself, which only a CPU tensor has. Ops that need gradients record a
 * node (their inputs and a backward closure) on the output; `backward()` walks those nodes in
 * reverse topological order, accumulates gradients into leaf tensors that require them (parameters),
 * then drops the graph so the activations it held can be reclaimed.
 *
 * A frozen weight may instead be held in 16 bits (a HalfArray of f16 or bf16 patterns), half the
 * memory: matmul (as its right operand, so linear's weight) and embedding read it, widening it inside
 * their kernels; every other op, and any gradient for it, refuses it. Gradients still flow through it
 * to the other operand, so LoRA adapters train on top of a half-precision base.
 */
import { type Buf, type HalfBuf, isFiniteCheckEnabled, isGradEnabled, kernels } from './backend.js';
import { HalfArray, type HalfDtype } from './half-float.js';
import { GpuArray } from './webgpu/gpu-array.js';

/** How a tensor holds its values: float32, or 16 bits for a frozen weight. */
export type DType = 'f32' | HalfDtype;

export type Shape = readonly number[];

/** A failure inside the tensor layer: names the op and the shapes involved. */
export class TensorError extends Error {
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'TensorError';
  }
}

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Row-major strides of a contiguous tensor. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** How an op's output gets gradients to its inputs: returns one gradient (or null) per input. */
export type BackwardFn = (grad: Buf) => (Buf | null)[];

type Storage = Buf | HalfBuf;

function isHalf(d: Storage): boolean {
  return d instanceof HalfArray || (d instanceof GpuArray && d.dtype !== 'f32');
}

interface Node {
  op: string;
  inputs: Tensor[];
  backward: BackwardFn;
}

let nextId = 0;

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  /** Accumulated gradient of a leaf tensor (same shape, same device), or null. */
  grad: Buf | null = null;
  name: string | undefined;
  private _data: Storage | null;
  private _requiresGrad = false;
  private node: Node | null = null;
  private freedBy: string | null = null;
  /** The op that made this tensor, once backward() has dropped its node: going through it again must fail. */
  private spentOp: string | null = null;
  /** The tensor whose storage this one shares (see view()), or null when the storage is its own. */
  private base: Tensor | null = null;
  /** Views of this tensor's storage not yet released, and whether this tensor itself was (see release()). */
  private liveViews = 0;
  private releasedOwn = false;

  constructor(data: Storage, shape: Shape, requiresGrad = false, name?: string) {
    if (data.length !== shapeSize(shape)) {
      throw new TensorError(
        'tensor',
        `data has ${data.length} elements but shape ${shapeStr(shape)} needs ${shapeSize(shape)}`,
      );
    }
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new TensorError('tensor', `invalid shape ${shapeStr(shape)}`);
    }
    const k = kernels();
    if (k.device !== 'cpu' && (data instanceof Float32Array || data instanceof HalfArray)) {
      data = data instanceof HalfArray ? k.halfFromHost(data) : k.fromHost(data);
    }
    this._data = data;
    this.shape = Object.freeze([...shape]);
    this.name = name;
    this.requiresGrad = requiresGrad;
  }

  /** Whether gradients accumulate into this tensor (a parameter); a 16-bit tensor is frozen and refuses. */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  set requiresGrad(on: boolean) {
    if (on && this._data !== null && isHalf(this._data)) {
      const why = `${this.describe()} is held in ${this.dtype}, which is for frozen weights`;
      throw new TensorError('tensor', `${why}; load it in float32 to train it`);
    }
    this._requiresGrad = on;
  }

  get dtype(): DType {
    const d = this._data;
    if (d instanceof HalfArray) return d.dtype;
    if (d instanceof GpuArray) return d.dtype;
    return 'f32';
  }

  /** Where the values live. */
  get device(): 'cpu' | 'webgpu' {
    return this._data instanceof GpuArray ? 'webgpu' : 'cpu';
  }

  /** The float32 storage on the active device, for kernels; a 16-bit tensor has none (see half, float32()). */
  get buf(): Buf {
    const d = this.onDevice();
    if (isHalf(d)) {
      const why = 'only matmul/linear (as the weight) and embedding read one; float32() widens a copy';
      throw new TensorError('tensor', `${this.describe()} is held in ${this.dtype}: ${why}`);
    }
    return d as Buf;
  }

  /** The host Float32Array a CPU tensor holds (writes go into the tensor); a GPU tensor has none: see read(). */
  get data(): Float32Array {
    const d = this.storage();
    if (d instanceof GpuArray) {
      throw new TensorError('tensor', `${this.describe()} lives on the GPU: read() copies its values to the host`);
    }
    if (d instanceof HalfArray) {
      const why = 'only matmul/linear (as the weight) and embedding read one; float32() widens a copy';
      throw new TensorError('tensor', `${this.describe()} is held in ${d.dtype}: ${why}`);
    }
    return d;
  }

  /** The values on the host: the array itself for a CPU tensor (do not modify it), a copy from a GPU. */
  read(): Float32Array {
    const d = this.storage();
    if (d instanceof GpuArray && d.dtype === 'f32') return kernelsOf(d).toHost(d);
    if (d instanceof GpuArray) return this.float32().read();
    return this.data;
  }

  /** The values as held, on the host: read() for float32, a frozen weight's 16-bit patterns (copied from a GPU). */
  readValues(): Float32Array | HalfArray {
    const d = this.storage();
    if (d instanceof HalfArray) return d;
    if (!(d instanceof GpuArray) || d.dtype === 'f32') return this.read();
    const bytes = d.device.read(d.id, 0, d.length * 2);
    return new HalfArray(
      d.dtype,
      new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + d.length * 2)),
    );
  }

  /** Overwrites the values with host ones of the same length (an upload on a GPU). */
  write(values: Float32Array): void {
    const d = this.storage();
    if (values.length !== d.length) {
      throw new TensorError('write', `${values.length} values for ${this.describe()}`);
    }
    if (d instanceof GpuArray && d.dtype === 'f32') d.device.write(d.id, 0, values);
    else if (d instanceof Float32Array) d.set(values);
    else
      throw new TensorError('write', `${this.describe()} is held in ${this.dtype}; only float32 tensors take values`);
  }

  /** The gradient on the host (the array itself on the CPU), or null. */
  readGrad(): Float32Array | null {
    return this.grad === null ? null : kernels().toHost(this.grad);
  }

  /** The 16-bit values of a frozen weight held in f16 or bf16, on the active device. */
  get half(): HalfBuf {
    const d = this.onDevice();
    if (!isHalf(d)) throw new TensorError('tensor', `${this.describe()} is float32, not 16-bit`);
    return d as HalfBuf;
  }

  /** The values as held: float32, or the 16-bit patterns of a frozen weight, on whichever device. */
  get values(): Storage {
    return this.storage();
  }

  private storage(): Storage {
    if (this._data === null) {
      throw new TensorError('tensor', `use of a freed tensor ${this.describe()} (freed by ${this.freedBy})`);
    }
    return this._data;
  }

  /** The storage, checked to be on the device the active kernels compute on. */
  private onDevice(): Storage {
    const d = this.storage();
    const k = kernels();
    if (!k.holds(d)) {
      const where = d instanceof GpuArray ? 'webgpu' : 'cpu';
      throw new TensorError(
        'tensor',
        `${this.describe()} lives on ${where} but the active backend is ${k.name} (${k.device}): ` +
          `load or create it after choosing the device`,
      );
    }
    return d;
  }

  /** This tensor when it is float32; otherwise a float32 copy of its values (no history). */
  float32(): Tensor {
    const d = this.onDevice();
    if (!isHalf(d)) return this;
    const k = kernels();
    const out = k.alloc(d.length);
    k.widenHalf(d as HalfBuf, out);
    return new Tensor(out, this.shape, false, this.name);
  }

  get size(): number {
    return this._data === null ? shapeSize(this.shape) : this._data.length;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get isFreed(): boolean {
    return this._data === null;
  }
  /** Whether gradients flow into this tensor: a parameter, or the output of an op on one. */
  get tracksGrad(): boolean {
    return this.requiresGrad || this.node !== null || this.spentOp !== null;
  }
  get creator(): string | null {
    return this.node?.op ?? null;
  }

  describe(): string {
    return `${this.name ?? (this.node ? `<${this.node.op}>` : 'tensor')}${shapeStr(this.shape)}`;
  }

  /** Releases the data; any later use raises a TensorError naming this tensor. */
  free(reason = 'free()'): void {
    this._data = null;
    this.node = null;
    this.freedBy = reason;
  }

  /**
   * Frees this tensor and, once every tensor sharing its storage (views made by view()) is released too,
   * gives the storage to the backend's pool, which the next alloc of that size reuses. Inference code calls
   * it on activations it is done with: a decode step then allocates almost nothing. Only for a tensor that
   * no gradient graph holds, and whose values nobody keeps (read() hands out the array itself on the CPU).
   */
  release(): void {
    if (this._data === null) return;
    if (this.tracksGrad) throw new TensorError('release', `${this.describe()} is part of a gradient graph`);
    const data = this._data;
    this.free('release()');
    const owner = this.base ?? this;
    if (this.base) owner.liveViews--;
    else owner.releasedOwn = true;
    const k = kernels();
    if (owner.releasedOwn && owner.liveViews === 0 && !isHalf(data) && k.holds(data)) k.release(data as Buf);
  }

  /** A tensor of another shape (same size) sharing x's storage; release() counts such views. */
  static view(x: Tensor, shape: Shape): Tensor {
    const v = new Tensor(x.storage(), shape);
    v.base = x.base ?? x;
    v.base.liveViews++;
    return v;
  }

  /** A tensor sharing this one's data that records no history. */
  detach(): Tensor {
    return Tensor.view(this, this.shape);
  }

  item(): number {
    if (this.size !== 1) throw new TensorError('item', `expected one element, got shape ${shapeStr(this.shape)}`);
    return this.read()[0];
  }

  toArray(): number[] {
    return Array.from(this.read());
  }

  /**
   * Records how this (freshly computed) tensor came from its inputs, when any of them tracks gradients.
   * `saved` are arrays only the backward function reads (a norm's inverse RMS, attention's log-sum-exp):
   * with nothing recorded, they go back to the pool at once.
   */
  static record(out: Tensor, op: string, inputs: Tensor[], backward: BackwardFn, saved: Buf[] = []): Tensor {
    if (isFiniteCheckEnabled() && !kernels().allFinite(out.buf)) {
      throw new TensorError(
        op,
        `produced NaN or Inf (inputs ${inputs.map((t) => t.describe()).join(', ')} → ${shapeStr(out.shape)})`,
      );
    }
    if (isGradEnabled() && inputs.some((t) => t.tracksGrad)) out.node = { op, inputs, backward };
    else for (const b of saved) kernels().release(b);
    return out;
  }

  /**
   * Reverse-mode autodiff from this scalar (or from `seed`, a gradient of this tensor's shape).
   * Gradients accumulate into `grad` of every reachable tensor with requiresGrad. The graph is
   * dropped afterwards (its saved activations become garbage) unless retainGraph is set.
   */
  backward(seed?: Float32Array | Buf, opts: { retainGraph?: boolean } = {}): void {
    if (!this.tracksGrad)
      throw new TensorError('backward', `${this.describe()} does not depend on any tensor that requires grad`);
    if (seed === undefined && this.size !== 1) {
      throw new TensorError('backward', `needs a seed gradient for non-scalar ${this.describe()}`);
    }
    if (seed !== undefined && seed.length !== this.size) {
      throw new TensorError('backward', `seed has ${seed.length} elements, ${this.describe()} has ${this.size}`);
    }
    const order = topoOrder(this);
    const k = kernels();
    const grads = new Map<Tensor, Buf>();
    const first = seed ?? new Float32Array([1]);
    const userSeed = k.holds(first) ? first : null;
    grads.set(this, userSeed ?? k.fromHost(first as Float32Array));
    // On a GPU, gradients nothing refers to any more go back to the buffer pool at once instead of at
    // garbage collection (which a long synchronous backward pass never reaches); `live` counts references.
    const eager = k.device !== 'cpu';
    const live = new Map<Buf, number>();
    const hold = (b: Buf): void => void (eager && live.set(b, (live.get(b) ?? 0) + 1));
    const drop = (b: Buf): void => void (eager && live.set(b, (live.get(b) ?? 1) - 1));
    const releaseIfDead = (b: Buf): void => {
      if (eager && (live.get(b) ?? 0) <= 0 && b !== userSeed) {
        live.delete(b);
        k.release(b);
      }
    };
    hold(grads.get(this)!);
    // Backward functions must not modify the gradient they are given; they may return it as is.
    const check = isFiniteCheckEnabled();
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t);
      drop(g);
      if (t.requiresGrad) {
        if (t.grad === null) t.grad = k.clone(g);
        else k.axpby(1, g, 1, t.grad);
      }
      const node = t.node;
      if (node === null) {
        if (t.spentOp !== null) {
          releaseIfDead(g);
          throw new TensorError(
            'backward',
            `the graph behind ${t.describe()} (made by ${t.spentOp}) was freed by an earlier backward(); pass ` +
              `{ retainGraph: true } to that backward() to go through it again, or detach() it`,
          );
        }
        releaseIfDead(g);
        continue;
      }
      const inGrads = node.backward(g);
      const merged: Buf[] = [];
      for (let j = 0; j < node.inputs.length; j++) {
        const inp = node.inputs[j],
          ig = inGrads[j];
        if (ig === null || ig === undefined || !inp.tracksGrad) continue;
        if (ig.length !== inp.size) {
          throw new TensorError(
            node.op,
            `backward produced a gradient of ${ig.length} elements for input ${inp.describe()}`,
          );
        }
        if (check && !k.allFinite(ig)) {
          throw new TensorError(node.op, `backward produced NaN or Inf in the gradient of ${inp.describe()}`);
        }
        // Backward functions may hand the same array to several inputs, so sums go to a fresh array.
        const prev = grads.get(inp);
        const next = prev === undefined ? ig : addFresh(prev, ig);
        if (prev !== undefined) {
          drop(prev);
          merged.push(prev, ig);
        }
        grads.set(inp, next);
        hold(next);
      }
      if (eager) {
        for (const b of [g, ...merged, ...inGrads]) if (b) releaseIfDead(b);
      }
      if (!opts.retainGraph) {
        t.node = null;
        t.spentOp = node.op;
      }
    }
  }
}

/** a + b into a new array (either may alias another live gradient). */
function addFresh(a: Buf, b: Buf): Buf {
  const out = kernels().clone(a);
  kernels().axpby(1, b, 1, out);
  return out;
}

/** The kernels that hold a GPU array (the active ones: a tensor's storage is checked on use). */
function kernelsOf(d: GpuArray): ReturnType<typeof kernels> {
  const k = kernels();
  if (!k.holds(d)) throw new TensorError('tensor', 'a GPU tensor was read after the backend switched away');
  return k;
}

/**
 * Releases tensors an inference pass is done with (Tensor.release), so that the next step reuses their
 * memory. While gradients are recorded it does nothing: a graph may still read any of them in backward().
 */
export function recycle(...ts: Tensor[]): void {
  if (isGradEnabled()) return;
  for (const t of ts) t.release();
}

/** Tensors reachable from root through recorded nodes, inputs before outputs. */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // Iterative DFS: decoder graphs are deep enough to overflow the stack with recursion.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root.id);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = nodeInputs(t);
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (!seen.has(c.id) && c.tracksGrad) {
        seen.add(c.id);
        stack.push([c, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

function nodeInputs(t: Tensor): Tensor[] {
  // Access through a structural cast: the node is private to the class but the walk is ours.
  return (t as unknown as { node: Node | null }).node?.inputs ?? [];
}
