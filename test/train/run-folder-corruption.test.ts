/**
 * The corruption suite: every file a training run folder holds is damaged in five ways (missing,
 * empty, cut in half, random bytes of its size, one flipped bit), and each command that reads it is
 * run on it. Every case: no process abort, one line naming the damaged file, no byte changed by a
 * command that only reads, and resume recovering wherever the data allows — from the newest intact
 * checkpoint, to the very weights of a run that was never damaged (the trainers are deterministic).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseRlConfig } from '../../src/train/rl-config.js';
import { trainRl } from '../../src/train/rl-trainer.js';
import { type CliResult, runCli } from '../helpers/cli.js';
import { DAMAGE_KINDS, damageFile, folderDigest } from '../helpers/damage.js';
import { tempDir, tinyModelFolder, toyBeir, withoutTimes, writeConfig } from '../helpers/train-fixtures.js';

const trainLines = (run: string): unknown[] => readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .filter((l) => l.includes('"type":"train"')).map(withoutTimes);
const finalWeights = (run: string): Buffer => readFileSync(path.join(run, 'final', 'model.safetensors'));

/** A process that died of a signal or aborted (SIGABRT 134, SIGSEGV 139) instead of exiting. */
function assertNoAbort(r: { status: number | null }, label: string): void {
  assert.ok(r.status !== null && r.status !== 134 && r.status !== 139, `${label}: exit status ${r.status}`);
}

// ---------------------------------------------------------------------------------------------
// train rl: the checkpoint files (the environment's included) and metrics.jsonl

const rl = { dir: '', raw: {} as Record<string, unknown> };
const RL_CHECKPOINT_FILES = ['trainable.safetensors', 'optimizer.safetensors', 'state.json', 'checksums.sha256',
  'environment.safetensors', 'environment.json'];

before(async () => {
  rl.dir = tempDir('corrupt-rl');
  await tinyModelFolder(path.join(rl.dir, 'model'));
  toyBeir(path.join(rl.dir, 'beir'));
  rl.raw = {
    model: 'model', output: 'straight', seed: 3, steps: 6, maxLength: 160,
    data: { beir: 'beir', split: 'train' },
    rollout: { queries: 2, group: 3, temperature: 1, maxReasoningTokens: 5 },
    loss: { innerEpochs: 1, infonce: 0.5 }, optimizer: { lr: 1e-3 },
    environment: { mode: 'local', budget: 6, candidates: 2, neighbours: 2, rolling: 3, returnCandidates: 5 },
    checkpoint: { every: 2, keep: 2 },
  };
  await trainRl(parseRlConfig(rl.raw, rl.dir), { progress: false });
  // killed during step 5: checkpoints of steps 2 and 4, metrics up to step 5
  await assert.rejects(trainRl(parseRlConfig({ ...rl.raw, output: 'crashed' }, rl.dir), {
    progress: false, onStep: (s) => { if (s === 5) throw new Error('killed'); },
  }), /killed/);
});

/** A copy of the crashed RL run, with its config. */
function rlCase(name: string): { run: string; cfgFile: string } {
  const run = path.join(rl.dir, 'cases', name);
  cpSync(path.join(rl.dir, 'crashed'), run, { recursive: true });
  return { run, cfgFile: writeConfig(path.join(rl.dir, `${name}.json`), { ...rl.raw, output: run }) };
}

test('train rl --resume: any damaged file of the newest checkpoint is named, and the run goes on from the one '
  + 'before to the same weights', async () => {
  const straight = path.join(rl.dir, 'straight');
  for (const file of RL_CHECKPOINT_FILES) {
    for (const [k, kind] of DAMAGE_KINDS.entries()) {
      const label = `${file} ${kind}`;
      const c = rlCase(`${file}-${kind}`);
      damageFile(path.join(c.run, 'checkpoints', 'step-00000004', file), kind, k + 1);
      const warnings: string[] = [];
      const s = await trainRl(parseRlConfig({ ...rl.raw, output: c.run }, rl.dir), {
        progress: false, resume: true, warn: (l) => warnings.push(l),
      });
      assert.equal(s.startStep, 2, label);
      assert.equal(warnings.length, 1, `${label}: ${warnings.join('\n')}`);
      const named = path.join(c.run, 'checkpoints', 'step-00000004', file);
      assert.ok(warnings[0]!.startsWith(`warning: ${named} `), `${label}: ${warnings[0]}`);
      assert.match(warnings[0]!, /; resuming from \S+step-00000002 \(step 2\) instead$/, label);
      assert.deepEqual(trainLines(c.run), trainLines(straight), label);
      assert.ok(finalWeights(c.run).equals(finalWeights(straight)), `${label}: the weights of the undamaged run`);
    }
  }
});

test('train rl --resume with no intact checkpoint: one line names every damaged file and what to do; nothing in '
  + 'the run folder changes', () => {
  const c = rlCase('none-intact');
  damageFile(path.join(c.run, 'checkpoints', 'step-00000004', 'trainable.safetensors'), 'bitflip');
  damageFile(path.join(c.run, 'checkpoints', 'step-00000002', 'state.json'), 'truncated');
  // a half-written checkpoint a kill left behind: cleaned up only by a resume that goes ahead
  mkdirSync(path.join(c.run, 'checkpoints', '.step-00000006.tmp-1-x'));
  writeFileSync(path.join(c.run, 'checkpoints', '.step-00000006.tmp-1-x', 'state.json'), '{"step": 6');
  const before = folderDigest(c.run);
  const r = runCli(['train', 'rl', '--config', c.cfgFile, '--resume', '--quiet']);
  assertNoAbort(r, 'none intact');
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^search-r3: no checkpoint in \S+checkpoints can be resumed: /);
  assert.ok(r.stderr.includes(path.join(c.run, 'checkpoints', 'step-00000004', 'trainable.safetensors')), r.stderr);
  assert.ok(r.stderr.includes(path.join(c.run, 'checkpoints', 'step-00000002', 'state.json')), r.stderr);
  assert.match(r.stderr, /restore the run folder from a backup, or train again into a new output folder/);
  assert.deepEqual(folderDigest(c.run), before, 'resume wrote nothing before it had a checkpoint it could load');
});

test('train rl --resume: a damaged metrics.jsonl keeps its intact records up to the resumed step and never stops '
  + 'training', async () => {
  const straight = path.join(rl.dir, 'straight');
  const stepOf = (line: string): number => (JSON.parse(line) as { step: number }).step;
  for (const [k, kind] of DAMAGE_KINDS.entries()) {
    const c = rlCase(`metrics-${kind}`);
    const file = path.join(c.run, 'metrics.jsonl');
    const original = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    damageFile(file, kind, k + 1);
    const left = new Set(existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []);
    const warnings: string[] = [];
    const s = await trainRl(parseRlConfig({ ...rl.raw, output: c.run }, rl.dir), {
      progress: false, resume: true, warn: (l) => warnings.push(l),
    });
    assert.equal(s.startStep, 4, kind);
    const kept = original.filter((l) => left.has(l) && stepOf(l) <= 4);
    const now = readFileSync(file, 'utf8').trim().split('\n');
    assert.deepEqual(now.slice(0, kept.length), kept, `${kind}: the intact records up to step 4 are kept as they were`);
    const logged = now.slice(kept.length).filter((l) => l.includes('"type":"train"')).map(withoutTimes);
    assert.deepEqual(logged, trainLines(straight).slice(4), `${kind}: steps 5 and 6 are logged again`);
    assert.ok(finalWeights(c.run).equals(finalWeights(straight)), kind);
    assert.ok(warnings.length <= 1, warnings.join('\n'));
    if (kind === 'random') assert.equal(warnings.length, 1, `${kind}: the damaged lines are reported`);
    for (const w of warnings) assert.ok(w.startsWith(`warning: ${file}`), w);
  }
});

test('rlenv audit --from reads the newest intact checkpoint, says which it skipped, and changes nothing in the run',
  () => {
  const c = rlCase('audit-from');
  damageFile(path.join(c.run, 'checkpoints', 'step-00000004', 'environment.safetensors'), 'bitflip');
  const before = folderDigest(c.run);
  const out = path.join(rl.dir, 'audit-out');
  const audit = (output: string): CliResult =>
    runCli(['rlenv', 'audit', '--config', c.cfgFile, '--from', c.run, '--steps', '1', '--output', output, '--quiet']);
  const r = audit(out);
  assertNoAbort(r, 'audit --from');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  const named = path.join(c.run, 'checkpoints', 'step-00000004', 'environment.safetensors');
  assert.ok(lines[0]!.startsWith(`warning: ${named} `), lines[0]);
  assert.match(r.stdout, /^from \S+step-00000002 \(step 2\); environment: 40 documents/);
  assert.deepEqual(folderDigest(c.run), before);
  damageFile(path.join(c.run, 'checkpoints', 'step-00000002', 'optimizer.safetensors'), 'missing');
  const damaged = folderDigest(c.run);
  const none = audit(`${out}-2`);
  assertNoAbort(none, 'audit --from, none intact');
  assert.equal(none.status, 2, none.stderr);
  assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
  assert.match(none.stderr, /00000004\/environment\.safetensors .*00000002\/optimizer\.safetensors is missing/);
  assert.deepEqual(folderDigest(c.run), damaged);
});
