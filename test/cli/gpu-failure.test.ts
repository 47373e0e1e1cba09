/**
 * A GPU device lost while a command computes (a driver reset, simulated by the preload
 * test/helpers/lose-gpu-device.ts through GpuDevice.simulateLoss): the command prints the device's
 * sentence and its own next step, one line, exit code 2. Training is told to --resume, an index run that
 * a second run resumes is told so, and a command without a step of its own is told to run again. And work
 * too large for the GPU: the sentence names the command's own settings that make it smaller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { lastSentence, runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { tinyModel } from '../helpers/tiny-model.js';
import { toySftRun } from '../helpers/train-fixtures.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';

const opt = { skip: webgpuSkip(), timeout: 180_000 };
const losePreload = path.join(repoRoot, 'dist', 'test', 'helpers', 'lose-gpu-device.js');

/** Runs `search-r3 <args> --device webgpu`, its GPU device lost at its first read. */
function runLosingGpu(args: string[], trigger: string): ReturnType<typeof runCli> {
  writeFileSync(trigger, '');
  const env = { NODE_OPTIONS: `--import ${losePreload}`, SEARCH_R3_TEST_LOSE_GPU: trigger };
  return runCli([...args, '--device', 'webgpu'], env, 120_000);
}

/** The line that ends a run the lost device stopped, after the device's own sentence. */
function nextStep(r: ReturnType<typeof runCli>): string {
  assert.equal(r.status, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'a stack trace');
  const line = lastSentence(r.stderr);
  const m = /^search-r3: the GPU device was lost \(destroyed: [^)]*\); (.*)$/.exec(line);
  assert.ok(m, line);
  return m[1]!;
}

test('train: a lost GPU device says to run it again, with --resume from its last checkpoint', opt, async () => {
  const { dir, cleanup } = tempDir('gpu-lost-train');
  try {
    const config = await toySftRun(dir);
    const r = runLosingGpu(['train', 'sft', '--config', config, '--quiet'], path.join(dir, 'lose'));
    assert.equal(
      nextStep(r),
      'run it again with --resume to continue from its last checkpoint (without --resume if it wrote none yet), ' +
        'on this device or with --device cpu; for less memory the resume may lower batch.subBatch (train sft), ' +
        'or batchSize with accumulation raised to keep batchSize × accumulation (train lm), which train the ' +
        'same steps, while another batch or sequence length is another run, for a new "output" folder',
    );
  } finally {
    cleanup();
  }
});

test('index: a lost GPU device says a second run encodes what is pending, and it does', opt, async () => {
  const { dir, cleanup } = tempDir('gpu-lost-index');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(30));
    const args = ['index', '--model', model, '--input', input, '--out', path.join(dir, 'idx'), '--commit-every', '10'];
    const lost = runLosingGpu(args, path.join(dir, 'lose'));
    assert.equal(
      nextStep(lost),
      'run the same command again to encode the documents still pending, on this device or with --device cpu',
    );
    const again = runCli(args);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /resuming: 30 documents left pending/);

    // a command with no step of its own: run it again
    const search = runLosingGpu(['search', '--index', path.join(dir, 'idx'), 'cells'], path.join(dir, 'lose'));
    assert.equal(nextStep(search), 'run the command again, on this device or with --device cpu');
  } finally {
    cleanup();
  }
});

test('index: a tensor larger than the GPU binds names --batch-tokens and --max-length', opt, async () => {
  const { dir, cleanup } = tempDir('gpu-too-large');
  try {
    // a wide MLP: a batch of a few thousand tokens makes activations of hundreds of MiB, more than lavapipe's
    // 128 MiB binding and, at the batch given, more than any GPU binds
    const model = path.join(dir, 'model');
    await saveModelFolder(model, tinyModel(7, { hiddenSize: 32, intermediateSize: 16384, maxPositionEmbeddings: 256 }));
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(30));
    const r = runCli([
      'index',
      '--model',
      model,
      '--input',
      input,
      '--out',
      path.join(dir, 'idx'),
      '--device',
      'webgpu',
    ]);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('device: '));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /^search-r3: a tensor of \d+ bytes is larger than the largest buffer this GPU \(.+\) binds /,
    );
    assert.match(lines[0], / binds \(\d+ bytes\): for activations, use a smaller --batch-tokens or --max-length; /);
  } finally {
    cleanup();
  }
});
