/**
 * `search-r3 device`: which device --device takes, what the adapter is, and one product checked there
 * against float64 on the host; a device that cannot be used is one sentence and exit code 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCliAsync } from '../helpers/cli.js';
import { webgpuSkip } from '../helpers/webgpu.js';

const AGREES = /^check: a 150×97 by 97×203 product on this device agrees with float64 on the host \(relative error /m;

test(
  'device --device webgpu: the adapter, its features and limits, and a product that agrees',
  { skip: webgpuSkip() },
  async () => {
    const r = await runCliAsync(['device', '--device', 'webgpu']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^device: webgpu \(.+\)$/m);
    assert.match(r.stdout, /^adapter: .+; vendor .+, architecture .+; a (software|hardware) adapter/m);
    assert.match(r.stdout, /^features: .*timestamp-query/m);
    assert.match(r.stdout, /^limits: buffers up to \d+ MiB, bound up to \d+ MiB/m);
    assert.match(r.stdout, AGREES);
    const j = await runCliAsync(['device', '--device', 'webgpu', '--json']);
    assert.equal(j.status, 0, j.stderr);
    const out = JSON.parse(j.stdout) as {
      backend: string;
      adapter: { features: string[] };
      check: { relErr: number; ok: boolean };
    };
    assert.equal(out.backend, 'webgpu');
    assert.ok(out.adapter.features.length > 0);
    assert.ok(out.check.ok && out.check.relErr < 1e-4, JSON.stringify(out.check));
  },
);

test('device on the CPU (--device cpu, or SEARCH_R3_BACKEND) checks it; no adapter: one sentence, exit 2', async () => {
  const cpu = await runCliAsync(['device', '--device', 'cpu']);
  assert.equal(cpu.status, 0, cpu.stderr);
  assert.match(cpu.stdout, /^device: cpu \((native|js) kernels\)$/m);
  assert.doesNotMatch(cpu.stdout, /^adapter:/m);
  assert.match(cpu.stdout, AGREES);
  // without --device, the backend SEARCH_R3_BACKEND chose, as every command would take it
  const env = await runCliAsync(['device'], { SEARCH_R3_BACKEND: 'js' });
  assert.equal(env.status, 0, env.stderr);
  assert.match(env.stdout, /^device: cpu \(js kernels\), by SEARCH_R3_BACKEND$/m);
  assert.match(env.stdout, AGREES);
  const noDriver = { VK_ICD_FILENAMES: '/nonexistent.json', VK_DRIVER_FILES: '/nonexistent.json' };
  const none = await runCliAsync(['device', '--device', 'webgpu'], noDriver);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^search-r3: --device webgpu: WebGPU is unavailable: [^\n]+\.$/m);
  assert.equal(none.stdout, '');
});
