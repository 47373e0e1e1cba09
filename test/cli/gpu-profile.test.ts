/**
 * SEARCH_R3_GPU_PROFILE=1 as a user meets it: a command on WebGPU prints the GPU kernel profile when it
 * ends; without the variable it prints none. (Outside test/tensor/webgpu, which the GPU machine runs
 * without the CLI's packages.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runCliAsync } from '../helpers/cli.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';

test(
  'SEARCH_R3_GPU_PROFILE=1: a command on WebGPU prints the kernel profile when it ends',
  { skip: webgpuSkip() },
  async () => {
    const work = tempDir('gpu-profile');
    try {
      const model = await tinyModelDir(work.dir);
      const input = path.join(work.dir, 'docs.jsonl');
      writeJsonl(input, corpus(4));
      const out = path.join(work.dir, 'index');
      const args = ['index', '--model', model, '--input', input, '--out', out, '--device', 'webgpu'];
      const r = await runCliAsync(args, { SEARCH_R3_GPU_PROFILE: '1' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^search-r3: GPU kernel profile \(SEARCH_R3_GPU_PROFILE\)$/m);
      assert.match(r.stderr, /^\| gemm\w* \| \d+ \| \d+\.\d{3} \|/m);
      assert.match(r.stderr, /^GPU time [\d.]+ ms in \d+ dispatches of [\d.]+ ms wall-clock/m);
      const again = args.map((a) => (a === out ? `${out}-plain` : a));
      const plain = await runCliAsync(again, { SEARCH_R3_GPU_PROFILE: '' });
      assert.equal(plain.status, 0, plain.stderr);
      assert.match(plain.stdout + plain.stderr, /4 documents indexed/);
      assert.doesNotMatch(plain.stderr, /kernel profile/);
    } finally {
      work.cleanup();
    }
  },
);
