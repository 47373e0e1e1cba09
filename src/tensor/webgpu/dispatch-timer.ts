/**
 * The GPU thread's stopwatch for a kernel profile (kernel-profile.ts): each dispatch gets a compute pass
 * of its own whose beginning and end write timestamps into a query set; the command buffer resolves its
 * queries into a buffer that is read after the submit, and the durations are summed by kernel. One pass
 * per dispatch adds barriers that a shared pass might let the GPU overlap, so a profiled step runs a
 * little slower than an unprofiled one: the profile says where the time goes, the benches how much.
 */
import type { KernelTime } from './kernel-profile.js';

/**
 * Dawn rounds timestamps down to 2^16 ns unless told not to: in a browser that keeps pages from timing
 * other processes; here it would round most kernels of a profile to 0 or 65 µs. A flag that names the
 * toggle already (either way) is left as it is.
 */
export function withExactTimestamps(flags: readonly string[]): string[] {
  const toggle = 'timestamp_quantization';
  if (flags.some((f) => /^(en|dis)able-dawn-features=/.test(f) && f.split(/[=,]/).includes(toggle))) return [...flags];
  const i = flags.findIndex((f) => f.startsWith('disable-dawn-features='));
  if (i < 0) return [...flags, `disable-dawn-features=${toggle}`];
  return flags.map((f, j) => (j === i ? `${f},${toggle}` : f));
}

/** WebGPU caps a query set at 4096 queries: 2048 dispatches, two timestamps each. */
const PAIRS_PER_SET = 2048;

interface Dispatch {
  kernel: string;
  groups: [number, number, number];
}

interface QueryBlock {
  queries: GPUQuerySet;
  resolved: GPUBuffer;
}

export class DispatchTimer {
  private readonly blocks: QueryBlock[] = [];
  /** Kernel and grid of each dispatch in the command buffer being encoded, in query-pair order. */
  private encoded: Dispatch[] = [];
  /** Resolved but not yet submitted: mapped only once their command buffer is on the queue. */
  private toRead: { buffer: GPUBuffer; dispatches: Dispatch[] }[] = [];
  /** The reads in flight, one after another; the first failure is kept for finish() to throw. */
  private reading: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  /** By kernel and grid. */
  private readonly totals = new Map<string, KernelTime>();

  /** `progress` is told the times so far each time more come back. */
  constructor(
    private readonly device: GPUDevice,
    private readonly progress: ((times: KernelTime[]) => void) | null = null,
  ) {}

  /** The descriptor of the pass that holds the next dispatch: `kernel` over a grid of `groups`. */
  passFor(kernel: string, groups: [number, number, number]): GPUComputePassDescriptor {
    const i = this.encoded.length;
    const block = Math.floor(i / PAIRS_PER_SET);
    while (this.blocks.length <= block) {
      this.blocks.push({
        queries: this.device.createQuerySet({ type: 'timestamp', count: 2 * PAIRS_PER_SET }),
        resolved: this.device.createBuffer({
          size: 2 * PAIRS_PER_SET * 8,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
      });
    }
    this.encoded.push({ kernel, groups });
    const q = 2 * (i % PAIRS_PER_SET);
    return {
      timestampWrites: {
        querySet: this.blocks[block].queries,
        beginningOfPassWriteIndex: q,
        endOfPassWriteIndex: q + 1,
      },
    };
  }

  /** Before `enc` is finished: its timestamps into a buffer the host can map (the query sets are reused). */
  resolve(enc: GPUCommandEncoder): void {
    const n = this.encoded.length;
    if (n === 0) return;
    const buffer = this.device.createBuffer({ size: n * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    for (let b = 0; b * PAIRS_PER_SET < n; b++) {
      const count = 2 * Math.min(PAIRS_PER_SET, n - b * PAIRS_PER_SET);
      enc.resolveQuerySet(this.blocks[b].queries, 0, count, this.blocks[b].resolved, 0);
      enc.copyBufferToBuffer(this.blocks[b].resolved, 0, buffer, b * PAIRS_PER_SET * 16, count * 8);
    }
    this.toRead.push({ buffer, dispatches: this.encoded });
    this.encoded = [];
  }

  /** After the submit: read what it resolved, in the background. */
  submitted(): void {
    for (const { buffer, dispatches } of this.toRead) {
      const read = buffer.mapAsync(GPUMapMode.READ).then(
        () => {
          this.add(new BigUint64Array(buffer.getMappedRange()), dispatches);
          buffer.unmap();
          buffer.destroy();
        },
        (e: unknown) => {
          // a lost device fails its mappings: the profile says so, and the GPU thread carries on
          this.failure ??= e;
          buffer.destroy();
        },
      );
      this.reading = this.reading.then(() => read);
    }
    this.toRead = [];
  }

  private add(stamps: BigUint64Array, dispatches: Dispatch[]): void {
    dispatches.forEach(({ kernel, groups }, i) => {
      const key = `${kernel} ${groups.join('×')}`;
      const t = this.totals.get(key) ?? { kernel, groups, dispatches: 0, seconds: 0 };
      // a driver may write an end before its beginning (clock domains): no negative durations
      const ns = stamps[2 * i + 1] > stamps[2 * i] ? Number(stamps[2 * i + 1] - stamps[2 * i]) : 0;
      t.dispatches++;
      t.seconds += ns / 1e9;
      this.totals.set(key, t);
    });
    this.progress?.([...this.totals.values()]);
  }

  /** Every submitted dispatch's time, summed by kernel and grid; the timer is done after this. */
  async finish(): Promise<KernelTime[]> {
    await this.reading;
    for (const b of this.blocks) {
      b.queries.destroy();
      b.resolved.destroy();
    }
    if (this.failure !== null) throw this.failure instanceof Error ? this.failure : new Error(String(this.failure));
    return [...this.totals.values()];
  }
}
