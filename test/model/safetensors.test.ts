import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  loadSafetensors,
  loadSafetensorsFolder,
  readSafetensors,
  readSafetensorsFolderEntries,
  readSafetensorsHeader,
  saveSafetensors,
  saveSafetensorsFolder,
  type SafetensorsDtype,
  type TensorData,
  INDEX_FILE_NAME,
  SINGLE_FILE_NAME,
} from '../../src/model/safetensors.js';
import { ModelFileError } from '../../src/model/model-file-error.js';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../../src/tensor/half-float.js';
import { runOracle } from '../helpers/python-oracle.js';
import { SeededRandom } from '../helpers/seeded-random.js';

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'st-'));
  try {
    await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Values exactly representable in `dtype`, with a wide range of magnitudes, zeros and infinities. */
function representable(dtype: SafetensorsDtype, n: number, rng: SeededRandom): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * Math.pow(10, rng.int(9) - 4);
  if (n > 3) {
    x[0] = 0;
    x[1] = -0;
    x[2] = -Infinity;
  }
  if (dtype === 'F32') return x;
  const h = new Uint16Array(n);
  const back = new Float32Array(n);
  if (dtype === 'F16') {
    encodeF16(x, h);
    decodeF16(h, back);
  } else {
    encodeBf16(x, h);
    decodeBf16(h, back);
  }
  return back;
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

function sampleTensors(dtype: SafetensorsDtype, seed: number): Map<string, TensorData> {
  const rng = new SeededRandom(seed);
  const m = new Map<string, TensorData>();
  for (const [name, shape] of [
    ['a.weight', [3, 4, 5]],
    ['b.bias', [7]],
    ['scalar', []],
    ['empty', [0, 4]],
    ['big', [130, 33]],
  ] as const) {
    const n = shape.reduce((p: number, d: number) => p * d, 1);
    m.set(name, { shape: [...shape], data: representable(dtype, n, rng) });
  }
  return m;
}

for (const dtype of ['F32', 'F16', 'BF16'] as const) {
  test(`save -> load round trip is bit-exact for ${dtype}`, async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'x.safetensors');
      const tensors = sampleTensors(dtype, 11);
      await saveSafetensors(file, tensors, { dtype });
      const loaded = await loadSafetensors(file);
      assert.deepEqual([...loaded.keys()].sort(), [...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        const got = loaded.get(name)!;
        assert.deepEqual(got.shape, t.shape, name);
        assert.deepEqual(bitsOf(got.data), bitsOf(t.data), name);
      }
      const header = await readSafetensorsHeader(file);
      assert.ok(header.entries.every((e) => e.dtype === dtype));
      assert.deepEqual(header.metadata, { format: 'pt' });
    });
  });
}

test('written bytes follow the spec: u64 header length, JSON header, 8-byte aligned LE data', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'x.safetensors');
    const w = new Float32Array([1.5, -2, 0.25, 3e-5]);
    const b = new Float32Array([1, -0.5, 65504]);
    await saveSafetensors(
      file,
      [
        ['w', { shape: [2, 2], data: w }],
        ['b', { shape: [3], data: b }],
      ],
      {
        dtype: (name) => (name === 'w' ? 'F32' : 'F16'),
        metadata: { format: 'pt', note: 'hi' },
      },
    );
    const bytes = await fsp.readFile(file);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0, 'data starts 8-byte aligned');
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(header, {
      __metadata__: { format: 'pt', note: 'hi' },
      w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
      b: { dtype: 'F16', shape: [3], data_offsets: [16, 22] },
    });
    const data = bytes.subarray(8 + n);
    assert.equal(data.length, 22);
    for (let i = 0; i < 4; i++) assert.equal(data.readFloatLE(4 * i), w[i]);
    // f16: 1.0 = 0x3c00, -0.5 = 0xb800, 65504 = 0x7bff
    assert.deepEqual([data.readUInt16LE(16), data.readUInt16LE(18), data.readUInt16LE(20)], [0x3c00, 0xb800, 0x7bff]);
  });
});

test('reads a file written by an independent writer (PyTorch-rounded payloads, unaligned data start)', async () => {
  await withTempDir(async (dir) => {
    const output = path.join(dir, 'torch.safetensors');
    const rng = new SeededRandom(3);
    const spec = (['F32', 'F16', 'BF16'] as const).flatMap((dtype, k) => [
      { name: `t${k}.weight`, dtype, shape: [5, 7], values: Array.from({ length: 35 }, () => rng.normal() * 3) },
      { name: `t${k}.bias`, dtype, shape: [3], values: [1e-7, -65519, 0.1] },
    ]);
    const reply = await runOracle<{ tensors: Record<string, number[]>; header_len: number }>('safetensors_write.py', {
      output,
      tensors: spec,
      metadata: { format: 'pt' },
    });
    assert.notEqual(reply.header_len % 8, 0, 'the oracle file must exercise an unaligned data start');
    const loaded = await loadSafetensors(output);
    for (const s of spec) {
      const got = loaded.get(s.name)!;
      assert.deepEqual(got.shape, s.shape);
      assert.deepEqual([...bitsOf(got.data)], reply.tensors[s.name], s.name);
    }
  });
});

test('streaming iterator yields tensors in file order and can skip tensors', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'x.safetensors');
    const tensors = sampleTensors('BF16', 5);
    await saveSafetensors(file, tensors, { dtype: 'BF16' });
    const names: string[] = [];
    for await (const { name, shape, data } of readSafetensors(file, (n) => n !== 'big')) {
      names.push(name);
      assert.deepEqual(shape, tensors.get(name)!.shape);
      assert.deepEqual(bitsOf(data), bitsOf(tensors.get(name)!.data));
    }
    assert.deepEqual(names, ['a.weight', 'b.bias', 'scalar', 'empty']);
  });
});

test('loading a 16-bit file never holds the file and the tensors at once', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'big.safetensors');
    const per = 4 << 20; // 4 tensors x 4M bf16 values: 32 MB on disk, 64 MB as float32
    // One shared source array (kept alive, so it sits in the baseline and leaves no garbage behind).
    const source = new Float32Array(per).fill(1.5);
    await saveSafetensors(
      file,
      [0, 1, 2, 3].map((k) => [`t${k}`, { shape: [per], data: source }] as const),
      { dtype: 'BF16' },
    );
    await settleExternalMemory();
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const kept: Float32Array[] = [];
    for await (const t of readSafetensors(file)) {
      kept.push(t.data);
      assert.equal(t.data[per - 1], source[0]);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
    }
    const f32Bytes = 4 * 4 * per;
    // The counter must see what is held. This is read absolutely, not against the baseline: V8 frees dead
    // buffers on a background sweeper, so buffers counted in the baseline can leave the count during the loop
    // (a baseline 32 MB too high was seen once in CI).
    assert.ok(process.memoryUsage().arrayBuffers >= f32Bytes, `the counter sees the ${kept.length} loaded tensors`);
    // f32 output + the 16 MB conversion scratch + slack; a reader that buffered the whole 32 MB file would exceed it.
    assert.ok(peak <= f32Bytes + (16 << 20) + (8 << 20), `peak external memory ${(peak / 2 ** 20).toFixed(1)} MiB`);
  });
});

/** A full GC, then time for V8's background sweeper to release the dead buffers, then another GC. */
async function settleExternalMemory(): Promise<void> {
  collectGarbage();
  await new Promise((resolve) => setTimeout(resolve, 50));
  collectGarbage();
}

/** Forces a full GC so that external-memory readings are not inflated by earlier garbage. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

async function expectError(file: string, re: RegExp): Promise<void> {
  await assert.rejects(loadSafetensors(file), (e: unknown) => {
    assert.ok(e instanceof ModelFileError, String(e));
    assert.ok(e.message.startsWith(file), e.message);
    assert.match(e.message, re);
    return true;
  });
}

function fileWithHeader(header: unknown, dataBytes: number, lenOverride?: bigint): Buffer {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
}

test('corrupt and truncated files fail with a message naming the file and the tensor', async () => {
  await withTempDir(async (dir) => {
    const f = (name: string): string => path.join(dir, name);
    const good = f('good.safetensors');
    await saveSafetensors(good, [['w', { shape: [64], data: new Float32Array(64) }]]);
    const bytes = await fsp.readFile(good);

    await fsp.writeFile(f('cut.safetensors'), bytes.subarray(0, bytes.length - 10));
    await expectError(
      f('cut.safetensors'),
      /tensor "w": data_offsets \[0, 256\] run past the end of the data .* truncated/,
    );

    await fsp.writeFile(f('trailing.safetensors'), Buffer.concat([bytes, Buffer.alloc(1000)]));
    await expectError(f('trailing.safetensors'), /has 1000 bytes after its last tensor; the file is damaged/);
    await fsp.writeFile(
      f('gap.safetensors'),
      fileWithHeader({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, 16),
    );
    await expectError(f('gap.safetensors'), /has 8 bytes before tensor "w" that no tensor holds; the file is damaged/);

    await fsp.writeFile(f('short.safetensors'), bytes.subarray(0, 5));
    await expectError(f('short.safetensors'), /not a safetensors file/);

    await fsp.writeFile(f('len.safetensors'), fileWithHeader({}, 0, 1000n));
    await expectError(f('len.safetensors'), /header length \(1000 bytes\) runs past the end of the file/);

    await fsp.writeFile(f('json.safetensors'), fileWithHeader('{"w": {"dtype": "F32",', 16));
    await expectError(f('json.safetensors'), /corrupt header: it is not valid UTF-8 JSON/);

    await fsp.writeFile(
      f('i64.safetensors'),
      fileWithHeader({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16),
    );
    await expectError(f('i64.safetensors'), /tensor "ids": dtype I64 is not supported/);

    await fsp.writeFile(
      f('size.safetensors'),
      fileWithHeader({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, 16),
    );
    await expectError(f('size.safetensors'), /tensor "w": data_offsets \[0, 16\] hold 16 bytes but F32 \[3\] needs 12/);

    await fsp.writeFile(
      f('overlap.safetensors'),
      fileWithHeader(
        {
          a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        },
        16,
      ),
    );
    await expectError(f('overlap.safetensors'), /tensors "a" and "b" overlap/);

    await fsp.writeFile(
      f('shape.safetensors'),
      fileWithHeader({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4),
    );
    await expectError(f('shape.safetensors'), /tensor "w": "shape" must be a list of non-negative integers/);

    await expectError(f('missing.safetensors'), /cannot open the weights file \(ENOENT\)/);
  });
});

test('a sharded folder (written above the size threshold) loads, and re-saving small replaces the shards', async () => {
  await withTempDir(async (dir) => {
    const rng = new SeededRandom(9);
    const tensors = new Map<string, TensorData>();
    for (let i = 0; i < 5; i++)
      tensors.set(`model.layers.${i}.w`, { shape: [32, 16], data: representable('BF16', 512, rng) });
    const files = await saveSafetensorsFolder(dir, tensors, { dtype: 'BF16', maxShardBytes: 2500 });
    // 1024 bytes per tensor, 2500 per shard: 2 + 2 + 1.
    assert.deepEqual(files, [
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      INDEX_FILE_NAME,
    ]);
    const index = JSON.parse(await fsp.readFile(path.join(dir, INDEX_FILE_NAME), 'utf8'));
    assert.equal(index.metadata.total_size, 5 * 1024);
    assert.equal(index.weight_map['model.layers.4.w'], 'model-00003-of-00003.safetensors');
    const loaded = await loadSafetensorsFolder(dir);
    assert.equal(loaded.size, 5);
    for (const [name, t] of tensors) assert.deepEqual(bitsOf(loaded.get(name)!.data), bitsOf(t.data), name);

    assert.deepEqual(await saveSafetensorsFolder(dir, tensors, { dtype: 'F32' }), [SINGLE_FILE_NAME]);
    assert.deepEqual((await fsp.readdir(dir)).sort(), [SINGLE_FILE_NAME]);
    assert.equal((await loadSafetensorsFolder(dir)).size, 5);
  });
});

test('sharded folders with a missing shard or tensor, or no weights, fail clearly', async () => {
  await withTempDir(async (dir) => {
    const t = (n: number): TensorData => ({ shape: [n], data: new Float32Array(n) });
    await saveSafetensorsFolder(
      dir,
      [
        ['a', t(100)],
        ['b', t(100)],
      ],
      { maxShardBytes: 500 },
    );
    const indexFile = path.join(dir, INDEX_FILE_NAME);
    const index = JSON.parse(await fsp.readFile(indexFile, 'utf8'));
    index.weight_map.c = 'model-00002-of-00002.safetensors';
    await fsp.writeFile(indexFile, JSON.stringify(index));
    await assert.rejects(
      loadSafetensorsFolder(dir),
      /model-00002-of-00002\.safetensors: lacks tensor "c" that model\.safetensors\.index\.json places in it/,
    );
    await fsp.rm(path.join(dir, 'model-00002-of-00002.safetensors'));
    await assert.rejects(
      loadSafetensorsFolder(dir),
      /lists shard "model-00002-of-00002\.safetensors", which is missing/,
    );
    index.weight_map.c = '../evil.safetensors';
    await fsp.writeFile(indexFile, JSON.stringify(index));
    await assert.rejects(loadSafetensorsFolder(dir), /"weight_map"\."c" must name a shard file in the same folder/);
    // an index that lost a tensor of a shard it lists: said of the index, not as weights missing from the model
    const lost = path.join(dir, 'lost');
    await saveSafetensorsFolder(
      lost,
      [
        ['x', t(50)],
        ['y', t(50)],
        ['z', t(100)],
      ],
      { maxShardBytes: 500 },
    );
    const lostIndex = JSON.parse(await fsp.readFile(path.join(lost, INDEX_FILE_NAME), 'utf8'));
    assert.equal(lostIndex.weight_map.x, lostIndex.weight_map.y, 'x and y share a shard');
    delete lostIndex.weight_map.y;
    await fsp.writeFile(path.join(lost, INDEX_FILE_NAME), JSON.stringify(lostIndex));
    const unlisted = /index\.json: does not list tensor "y", which model-00001-of-00002\.safetensors holds/;
    await assert.rejects(loadSafetensorsFolder(lost), unlisted);
    await assert.rejects(readSafetensorsFolderEntries(lost), unlisted);
    const empty = path.join(dir, 'empty');
    await fsp.mkdir(empty);
    await assert.rejects(
      loadSafetensorsFolder(empty),
      /holds neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
  });
});

test('refuses to save inconsistent tensors', async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      saveSafetensors(path.join(dir, 'x'), [['w', { shape: [2, 3], data: new Float32Array(5) }]]),
      /tensor "w" has shape \[2,3\] but 5 values/,
    );
    assert.deepEqual(await fsp.readdir(dir), []);
  });
});
