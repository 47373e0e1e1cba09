/**
 * adviseHugePages: model loading asks Linux to back each weight of 4 MB or more with transparent huge
 * pages (decode products stream faster on them). The advice must be taken for weight-sized buffers, be
 * skipped for small ones, and never touch a buffer's contents. Whether the kernel then finds free huge
 * pages depends on the machine's memory, so the AnonHugePages gained is printed, not asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as T from '../../src/tensor/index.js';

const skip = process.platform !== 'linux' || T.nativeKernels() === null ? 'needs Linux and the native addon' : false;

const anonHugeKiB = (): number =>
  Number(/AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0);

test('adviseHugePages takes weight-sized buffers, skips small ones, keeps contents', { skip }, (t) => {
  const before = anonHugeKiB();
  const weight = new Uint16Array(32 << 20); // 64 MB, as a large weight of a real checkpoint
  assert.equal(T.adviseHugePages(weight), true);
  for (let i = 0; i < weight.length; i++) weight[i] = i & 0xffff;
  assert.equal(T.adviseHugePages(new Float32Array(1 << 18)), false, 'a 1 MB buffer is not worth advising');
  const view = weight.subarray(12_345, 12_345 + (4 << 20));
  assert.equal(T.adviseHugePages(view), true, 'an 8 MB view inside a buffer is advised too');
  for (const i of [0, 1, 65_535, 65_536, weight.length - 1]) assert.equal(weight[i], i & 0xffff);
  t.diagnostic(`AnonHugePages gained: ${((anonHugeKiB() - before) / 1024).toFixed(0)} MB of 64`);
});
