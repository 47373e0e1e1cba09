/**
 * The GPU thread: owns the WebGPU device (Dawn, through the `webgpu` package) and runs the command
 * batches the main thread posts (see gpu-protocol.ts). Buffers come from a pool keyed by size class, so
 * after the first training step nothing is created. A batch is encoded into as few command buffers as
 * possible: only a read ends one. Uploads are staged in a buffer mapped at creation and copied inside the
 * command buffer, so they keep their place among the dispatches (queue.writeBuffer would overtake them);
 * the dispatches' parameters, in slots no earlier command of the buffer reads, go by queue.writeBuffer.
 * A trim destroys the pool's free buffers, for a process done with a large piece of work (GpuDevice.trim).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { kernelSource } from './wgsl/index.js';
import { DispatchTimer, withExactTimestamps } from './dispatch-timer.js';
import type { KernelTime } from './kernel-profile.js';
import { adapterRequestSentence, dawnSentence } from './dawn-text.js';
import {
  type AdapterFacts,
  type BufferId,
  type GpuCommand,
  type GpuInit,
  type GpuStats,
  REPLY_HEADER_BYTES,
  ReplyState,
  publish,
  settle,
  writeReplyText,
} from './gpu-protocol.js';

/** Each dispatch's params occupy one slot of this many bytes (≥ minStorageBufferOffsetAlignment). */
const PARAM_SLOT = 256;
/** Slots of the parameter ring: far more than the dispatches of one batch from the main thread (≤ 256). */
const RING_SLOTS = 4096;
/** Bind groups kept for reuse before the cache starts again (each holds a few buffer references). */
const BIND_GROUP_CACHE = 16384;
/** Commands that end a segment of encoding: each needs what came before submitted (or finished) first. */
const SEGMENT_ENDS: readonly GpuCommand['op'][] = ['read', 'stats', 'trim', 'profile', 'lose', 'close'];

/** Size classes: small buffers round to a power of two, large ones to an eighth of theirs. */
function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  if (b <= 65536) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

interface Held {
  buffer: GPUBuffer;
  bytes: number;
}

/** A cached bind group and the keys of the buffers it binds (GpuThread.bufferKeys), which a trim looks up. */
interface CachedGroup {
  group: GPUBindGroup;
  buffers: number[];
}

class GpuThread {
  private readonly buffers = new Map<BufferId, Held>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly stagingPool = new Map<number, GPUBuffer[]>();
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  /**
   * Every dispatch's parameters live in one ring, bound at a dynamic offset: a bind group then depends only
   * on the kernel and its buffers, so the same dispatch on the same buffers (a decode step's, again and
   * again) reuses its bind group, whose creation costs more of the host's time than the rest of a dispatch.
   */
  private ring: GPUBuffer | null = null;
  private ringAt = 0;
  private readonly bindGroups = new Map<string, CachedGroup>();
  /** A number per pooled buffer, for bind-group keys. */
  private readonly bufferKeys = new WeakMap<GPUBuffer, number>();
  private nextBufferKey = 1;
  private heldBytes = 0;
  /** Bytes of the buffers this thread keeps (GpuStats.reservedBytes): all but the uploads' staging. */
  private reservedBytes = 0;
  /** Buffers created, command buffers submitted, dispatches, bytes uploaded, encoding time: see GpuStats. */
  readonly stats = { created: 0, submits: 0, dispatches: 0, staged: 0, encodeSeconds: 0, destroyed: 0 };
  /** What failed the device, as every later reply says it (see ReplyState). */
  private failure: { state: ReplyState.DeviceFailed | ReplyState.OutOfMemory; text: string } | null = null;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** Upload buffers of the command buffer being encoded, destroyed once it is submitted. */
  private transient: GPUBuffer[] = [];
  /** Times each dispatch while a kernel profile is on. */
  private timer: DispatchTimer | null = null;

  constructor(
    private readonly device: GPUDevice,
    private readonly poison: boolean,
  ) {
    device.lost.then((info) => {
      const what = info.message ? `${info.reason}: ${dawnSentence(info.message)}` : info.reason;
      // what to do next depends on the work (train resumes, serve restarts its worker): its caller says it
      this.fail(`the GPU device was lost (${what})`);
    });
    device.addEventListener('uncapturederror', (e) => {
      // dawn.node prints an error nobody prevented, every line of it: ours is the one sentence said
      e.preventDefault();
      const err = (e as GPUUncapturedErrorEvent).error;
      if (err.constructor.name === 'GPUOutOfMemoryError') {
        // the main thread words it, with the settings that size the work where a command knows them
        const text = JSON.stringify({ heldBytes: this.heldBytes, detail: dawnSentence(err.message) });
        this.failure ??= { state: ReplyState.OutOfMemory, text };
      } else {
        this.fail(`the GPU refused a command: ${dawnSentence(err.message)}`);
      }
    });
  }

  fail(why: string): void {
    this.failure ??= { state: ReplyState.DeviceFailed, text: why };
  }

  /** Answers `reply` with the device's failure: true when there was one. */
  private replyFailed(reply: SharedArrayBuffer): boolean {
    if (this.failure === null) return false;
    writeReplyText(reply, this.failure.state, this.failure.text);
    return true;
  }

  /** Runs one batch; the commands of a segment between reads share a command buffer. */
  async runBatch(commands: GpuCommand[]): Promise<void> {
    let i = 0;
    while (i < commands.length) {
      let j = i;
      while (j < commands.length && !SEGMENT_ENDS.includes(commands[j].op)) j++;
      this.encodeSegment(commands.slice(i, j));
      if (j === commands.length) break;
      const c = commands[j];
      if (c.op === 'read') {
        await this.read(c);
      } else if (c.op === 'lose') {
        this.submit();
        this.device.destroy();
        await this.device.lost;
      } else if (c.op === 'stats') {
        this.submit();
        writeReplyText(c.reply, ReplyState.Done, JSON.stringify(this.statsNow()));
      } else if (c.op === 'trim') {
        this.trim();
      } else if (c.op === 'profile') {
        await this.profile(c);
      } else if (c.op === 'close') {
        this.submit();
        await this.device.queue.onSubmittedWorkDone();
        this.fail('the GPU device was closed');
        this.device.destroy();
        // The lost callback must have run before the main thread lets Node tear this thread down.
        await this.device.lost;
        settle(c.reply, ReplyState.Done, 0);
        return;
      }
      i = j + 1;
    }
    this.submit();
  }

  private statsNow(): GpuStats {
    const pooled = [...this.pool.values(), ...this.stagingPool.values()].flat();
    const pooledBytes = pooled.reduce((sum, b) => sum + b.size, 0);
    return { ...this.stats, heldBytes: this.heldBytes, reservedBytes: this.reservedBytes, pooledBytes };
  }

  /**
   * Destroys every buffer that no tensor holds (the pool's, the staging buffers of reads) and forgets the
   * cached bind groups over them. What is encoded is submitted first: a command buffer that uses a destroyed
   * buffer is refused at its submit. Work already submitted may still use them: WebGPU frees a destroyed
   * buffer's memory only once the queue is done with it (the uploads' staging buffers, destroyed after every
   * submit, rely on the same). Commands after the trim name live buffers only, and an allocation creates anew.
   */
  private trim(): void {
    this.submit();
    const gone = new Set<number>();
    for (const list of this.pool.values()) for (const b of list) gone.add(this.bufferKeys.get(b)!);
    for (const b of [...this.pool.values(), ...this.stagingPool.values()].flat()) this.destroyBuffer(b);
    this.pool.clear();
    this.stagingPool.clear();
    for (const [key, cached] of this.bindGroups)
      if (cached.buffers.some((k) => gone.has(k))) this.bindGroups.delete(key);
  }

  private destroyBuffer(buffer: GPUBuffer): void {
    this.reservedBytes -= buffer.size;
    this.stats.destroyed++;
    buffer.destroy();
  }

  /** A buffer this thread keeps (counted in reservedBytes until destroyBuffer). */
  private createKept(size: number, usage: GPUBufferUsageFlags): GPUBuffer {
    this.reservedBytes += size;
    return this.device.createBuffer({ size, usage });
  }

  private encodeSegment(cmds: GpuCommand[]): void {
    if (cmds.length === 0 || this.failure !== null) return;
    const started = performance.now();
    try {
      this.encodeCommands(cmds);
    } finally {
      this.stats.encodeSeconds += (performance.now() - started) / 1000;
    }
  }

  private encodeCommands(cmds: GpuCommand[]): void {
    const runs = cmds.filter((c) => c.op === 'run').length;
    const ring = this.paramRing(runs);
    const first = this.ringAt;
    if (runs > 0) {
      const bytes = new Uint8Array(runs * PARAM_SLOT);
      let slot = 0;
      for (const c of cmds) {
        if (c.op !== 'run') continue;
        bytes.set(new Uint8Array(c.params), slot * PARAM_SLOT);
        slot++;
      }
      // queue order: the write lands before this command buffer runs, after every one submitted before
      this.device.queue.writeBuffer(ring, first * PARAM_SLOT, bytes);
      this.ringAt += runs;
    }
    const enc = (this.encoder ??= this.device.createCommandEncoder());
    let slot = 0;
    for (const c of cmds) {
      switch (c.op) {
        case 'alloc': {
          const buffer = this.take(c.bytes);
          this.buffers.set(c.id, { buffer, bytes: c.bytes });
          this.heldBytes += c.bytes;
          if (c.zeroed) {
            this.endPass();
            enc.clearBuffer(buffer, 0, Math.ceil(c.bytes / 4) * 4);
          } else if (this.poison) {
            this.endPass();
            this.poisonBuffer(enc, buffer, c.bytes);
          }
          break;
        }
        case 'free': {
          const held = this.buffers.get(c.id);
          if (!held) break;
          this.buffers.delete(c.id);
          this.heldBytes -= held.bytes;
          const list = this.pool.get(held.buffer.size) ?? [];
          list.push(held.buffer);
          this.pool.set(held.buffer.size, list);
          break;
        }
        case 'write': {
          this.endPass();
          const bytes = Math.ceil(c.data.byteLength / 4) * 4;
          if (bytes === 0) break;
          const staging = this.device.createBuffer({
            size: bytes,
            usage: GPUBufferUsage.COPY_SRC,
            mappedAtCreation: true,
          });
          new Uint8Array(staging.getMappedRange()).set(new Uint8Array(c.data));
          staging.unmap();
          this.transient.push(staging);
          enc.copyBufferToBuffer(staging, 0, this.get(c.id).buffer, c.byteOffset, bytes);
          this.stats.staged += bytes;
          break;
        }
        case 'copy':
          this.endPass();
          if (c.bytes > 0)
            enc.copyBufferToBuffer(this.get(c.src).buffer, c.srcByte, this.get(c.dst).buffer, c.dstByte, c.bytes);
          break;
        case 'run': {
          const { pipeline, layout } = this.pipeline(c.kernel);
          const group = this.bindGroup(c.kernel, layout, ring, c.ids);
          if (this.timer) this.endPass();
          const pass = (this.pass ??= enc.beginComputePass(this.timer?.passFor(c.kernel, c.groups)));
          pass.setPipeline(pipeline);
          pass.setBindGroup(0, group, [(first + slot) * PARAM_SLOT]);
          pass.dispatchWorkgroups(c.groups[0], c.groups[1], c.groups[2]);
          if (this.timer) this.endPass();
          this.stats.dispatches++;
          slot++;
          break;
        }
        default:
          throw new Error(`unexpected ${c.op} inside a segment`);
      }
    }
  }

  /** NaN (all bits set) into the first `bytes` of a buffer, for SEARCH_R3_GPU_POISON (see GpuInit). */
  private poisonBuffer(enc: GPUCommandEncoder, buffer: GPUBuffer, bytes: number): void {
    const size = Math.ceil(bytes / 4) * 4;
    if (size === 0) return;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).fill(0xff);
    staging.unmap();
    this.transient.push(staging);
    enc.copyBufferToBuffer(staging, 0, buffer, 0, size);
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private submit(): void {
    this.endPass();
    if (this.encoder !== null && this.failure === null) {
      this.timer?.resolve(this.encoder);
      this.device.queue.submit([this.encoder.finish()]);
      this.timer?.submitted();
    }
    this.encoder = null;
    // They were mapped at creation and cannot be refilled without a mapAsync round trip: let them go.
    for (const p of this.transient) p.destroy();
    this.stats.submits++;
    this.transient = [];
  }

  private async profile(c: Extract<GpuCommand, { op: 'profile' }>): Promise<void> {
    this.submit();
    if (c.on) {
      if (!this.device.features.has('timestamp-query')) {
        return writeReplyText(c.reply, ReplyState.Failed, "this GPU offers no timestamp queries ('timestamp-query')");
      }
      const progress = c.progress;
      this.timer ??= new DispatchTimer(
        this.device,
        progress ? (times) => publish(progress, JSON.stringify(times)) : null,
      );
      return writeReplyText(c.reply, ReplyState.Done, '');
    }
    const timer = this.timer;
    this.timer = null;
    let times: KernelTime[] = [];
    try {
      times = timer ? await timer.finish() : [];
    } catch (e) {
      this.fail(`the kernel profile's timestamps could not be read: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (this.replyFailed(c.reply)) return;
    const json = JSON.stringify(times);
    if (new TextEncoder().encode(json).length > c.reply.byteLength - REPLY_HEADER_BYTES) {
      return writeReplyText(c.reply, ReplyState.Failed, `the kernel profile (${times.length} entries) is too large`);
    }
    writeReplyText(c.reply, ReplyState.Done, json);
  }

  /**
   * The ring, with room for `runs` more slots. Where it has none, the command buffer being encoded is
   * submitted first: WebGPU runs queue operations in order, so a slot written again after that submit is
   * read by no command buffer before it.
   */
  private paramRing(runs: number): GPUBuffer {
    if (runs > RING_SLOTS) throw new Error(`${runs} dispatches in one batch, more than the ${RING_SLOTS} ring slots`);
    if (this.ringAt + runs > RING_SLOTS) {
      if (this.encoder !== null) this.submit();
      this.ringAt = 0;
    }
    return (this.ring ??= this.createKept(RING_SLOTS * PARAM_SLOT, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST));
  }

  /** The bind group of `kernel` over these buffers (params at a dynamic offset into the ring), made once. */
  private bindGroup(kernel: string, layout: GPUBindGroupLayout, ring: GPUBuffer, ids: BufferId[]): GPUBindGroup {
    const buffers = ids.map((id) => this.get(id).buffer);
    const keys = buffers.map((b) => this.bufferKeys.get(b)!);
    const key = `${kernel}:${keys.join(',')}`;
    const cached = this.bindGroups.get(key);
    if (cached) return cached.group;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: ring, offset: 0, size: PARAM_SLOT } }];
    buffers.forEach((buffer, k) => entries.push({ binding: k + 1, resource: { buffer } }));
    const group = this.device.createBindGroup({ layout, entries });
    if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.clear();
    this.bindGroups.set(key, { group, buffers: keys });
    return group;
  }

  private async read(c: Extract<GpuCommand, { op: 'read' }>): Promise<void> {
    if (this.replyFailed(c.reply)) return;
    const size = sizeClass(c.bytes);
    const staging =
      this.stagingPool.get(size)?.pop() ?? this.createKept(size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const padded = Math.ceil(c.bytes / 4) * 4;
    this.endPass();
    const enc = (this.encoder ??= this.device.createCommandEncoder());
    if (padded > 0) enc.copyBufferToBuffer(this.get(c.id).buffer, c.byteOffset, staging, 0, padded);
    this.submit();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      this.fail(`reading a tensor back from the GPU failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (this.replyFailed(c.reply)) return;
    new Uint8Array(c.reply, REPLY_HEADER_BYTES, c.bytes).set(
      new Uint8Array(staging.getMappedRange(0, size), 0, c.bytes),
    );
    staging.unmap();
    (this.stagingPool.get(size) ?? this.stagingPool.set(size, []).get(size)!).push(staging);
    settle(c.reply, ReplyState.Done, c.bytes);
  }

  private take(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const pooled = this.pool.get(size)?.pop();
    if (pooled) return pooled;
    this.stats.created++;
    const buffer = this.createKept(size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    this.bufferKeys.set(buffer, this.nextBufferKey++);
    return buffer;
  }

  private get(id: BufferId): Held {
    const held = this.buffers.get(id);
    if (!held) throw new Error(`GPU buffer ${id} is not allocated`);
    return held;
  }

  /**
   * The kernel's pipeline, compiled on first use, with its bind group layout spelled out from the WGSL's
   * declarations (binding 0, the parameters, at a dynamic offset; the rest read-only or read-write
   * storage as declared): an 'auto' layout cannot take dynamic offsets.
   */
  private pipeline(kernel: string): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
    let p = this.pipelines.get(kernel);
    if (!p) {
      const code = kernelSource(kernel);
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (const m of code.matchAll(/@binding\((\d+)\)\s*var<storage,\s*(read_write|read)>/g)) {
        const binding = Number(m[1]);
        entries.push({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: m[2] === 'read' ? 'read-only-storage' : 'storage', hasDynamicOffset: binding === 0 },
        });
      }
      const layout = this.device.createBindGroupLayout({ entries, label: kernel });
      const module = this.device.createShaderModule({ code, label: kernel });
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
        label: kernel,
      });
      p = { pipeline, layout };
      this.pipelines.set(kernel, p);
    }
    return p;
  }
}

/**
 * Dawn's instance must outlive the device: once it is garbage-collected, its event processing runs on
 * freed memory. Holding it here for the life of the thread keeps it.
 */
const keepAlive: unknown[] = [];

async function openDevice(init: GpuInit): Promise<{ device: GPUDevice; facts: AdapterFacts }> {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const gpu = create(withExactTimestamps(init.dawnFlags));
  keepAlive.push(gpu);
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: init.powerPreference });
  } catch (e) {
    throw new Error(adapterRequestSentence(e instanceof Error ? e.message : String(e), init.dawnFlags));
  }
  if (!adapter) throw new Error('no WebGPU adapter was found (is a Vulkan driver installed?)');
  keepAlive.push(adapter);
  const info = adapter.info;
  const wanted: GPUFeatureName[] = (['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[]).filter((f) =>
    adapter.features.has(f),
  );
  const L = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: wanted,
    requiredLimits: {
      maxBufferSize: L.maxBufferSize,
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    },
  });
  const description = info.description || `${info.vendor} ${info.architecture}`.trim() || 'unknown adapter';
  const facts: AdapterFacts = {
    description,
    vendor: info.vendor,
    architecture: info.architecture,
    software: /llvmpipe|lavapipe|swiftshader|software/i.test(`${description} ${info.architecture}`),
    features: [...device.features],
    languageFeatures: [...gpu.wgslLanguageFeatures],
    subgroupMinSize: info.subgroupMinSize ?? 0,
    maxBufferSize: device.limits.maxBufferSize,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    minUniformBufferOffsetAlignment: device.limits.minUniformBufferOffsetAlignment,
    dawnFlags: init.dawnFlags,
  };
  return { device, facts };
}

async function main(): Promise<void> {
  const init = workerData as GpuInit;
  let thread: GpuThread;
  try {
    const { device, facts } = await openDevice(init);
    thread = new GpuThread(device, init.poison);
    writeReplyText(init.reply, ReplyState.Done, JSON.stringify(facts));
  } catch (e) {
    writeReplyText(init.reply, ReplyState.Failed, e instanceof Error ? e.message : String(e));
    return;
  }
  let chain = Promise.resolve();
  parentPort!.on('message', (batch: GpuCommand[]) => {
    chain = chain.then(() =>
      thread.runBatch(batch).catch((e) => {
        // A command the main thread built wrongly: every later read reports it instead of hanging.
        thread.fail(e instanceof Error ? e.message : String(e));
        // every command of the batch that someone waits on (a read, stats, a profile, close) answers
        for (const c of batch) {
          if ('reply' in c && Atomics.load(new Int32Array(c.reply, 0, 1), 0) === ReplyState.Waiting) {
            writeReplyText(c.reply, ReplyState.DeviceFailed, e instanceof Error ? e.message : String(e));
          }
        }
      }),
    );
  });
}

void main();
