/**
 * Float32 arrays given back by inference code (Tensor.release), kept by length for the next alloc of that
 * length. A decode step makes hundreds of short-lived activations; allocating each afresh costs more than
 * the step's small kernels: the allocator maps and faults in new pages for every large array, and the
 * garbage collector, which counts array memory, runs again and again to reclaim them. Reused arrays come
 * back zeroed, as new ones are, unless the caller will overwrite them all (Kernels.empty). The pool keeps at
 * most `limitBytes`; arrays beyond it are left to the garbage collector.
 */
export class HostArrayPool {
  private readonly free = new Map<number, Float32Array[]>();
  private held = 0;
  /** Arrays take() had to allocate because none of that length was pooled. */
  created = 0;

  constructor(readonly limitBytes: number) {}

  /** An array of n values, a pooled one when there is one: zeroed, or as its last user left it. */
  take(n: number, zeroed = true): Float32Array {
    const x = this.free.get(n)?.pop();
    if (x === undefined) {
      this.created++;
      return new Float32Array(n);
    }
    this.held -= x.byteLength;
    return zeroed ? x.fill(0) : x;
  }

  /** Keeps x for reuse; the caller gives up every reference to it. Views into a larger buffer are not kept. */
  give(x: Float32Array): void {
    if (x.byteOffset !== 0 || x.byteLength !== x.buffer.byteLength || x.length === 0) return;
    if (this.held + x.byteLength > this.limitBytes) return;
    let list = this.free.get(x.length);
    if (!list) this.free.set(x.length, (list = []));
    list.push(x);
    this.held += x.byteLength;
  }

  /** Bytes held for reuse. */
  get bytes(): number {
    return this.held;
  }

  /** Drops every pooled array (the garbage collector reclaims them). */
  clear(): void {
    this.free.clear();
    this.held = 0;
  }
}
