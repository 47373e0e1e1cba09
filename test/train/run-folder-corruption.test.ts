/**
 * The corruption suite: every file a training run folder holds is damaged in five ways (missing,
 * empty, cut in half, random bytes of its size, one flipped bit), and each command that reads it is
 * run on it. Every case: no process abort, one line naming the damaged file, no byte changed by a
 * command that only reads, and resume recovering wherever the data allows — from the newest intact
 * checkpoint, to the very weights of a run that was never damaged (the trainers are deterministic).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { parseLmConfig } from '../../src/train/lm/config.js';
import { trainLm } from '../../src/train/lm/trainer.js';
import { parseRlConfig } from '../../src/train/rl/config.js';
import { trainRl } from '../../src/train/rl/trainer.js';
import { trainSft } from '../../src/train/sft/trainer.js';
import { Embedder } from '../../src/embed/embedder.js';
import { type RecipeState, writeModelCard } from '../../src/recipe/default-recipe.js';
import { PROFILES, recipePaths } from '../../src/recipe/recipe-profiles.js';
import { loadModelFolder } from '../../src/model/model-folder.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { type CliResult, runCli } from '../helpers/cli.js';
import { DAMAGE_KINDS, damageFile, folderDigest } from '../helpers/damage.js';
import { repoRoot } from '../helpers/repo.js';
import {
  rlFixture,
  tempDir,
  tinyModelFolder,
  toyBeir,
  toyExamples,
  withoutTimes,
  writeConfig,
  writeJsonl,
} from '../helpers/train-fixtures.js';

const TINY_BEIR = path.join(repoRoot, 'test', 'eval', 'fixtures', 'tiny-beir');

/** A process that died of a signal or aborted (SIGABRT 134, SIGSEGV 139) instead of exiting. */
function assertNoAbort(r: { status: number | null }, label: string): void {
  assert.ok(r.status !== null && r.status !== 134 && r.status !== 139, `${label}: exit status ${r.status}`);
}

/**
 * One trainer's fixture: a run that was never interrupted (`straight`), and the same run killed
 * during step 5 (`crashed`: checkpoints of steps 2 and 4, metrics.jsonl up to step 5).
 */
interface TrainerRuns {
  name: string;
  dir: string;
  /** The final weights, relative to a run folder. */
  finalFile: string;
  /** Writes a config for the run folder `run` (a copy of `crashed`); returns its file. */
  configFor(run: string): string;
  /** Resumes the run folder `run` through the trainer's API; the step it resumed from. */
  resume(run: string, warn: (line: string) => void): Promise<number>;
  /** `search-r3 train <stage>`. */
  stage: string;
}

const runs: Record<'rl' | 'sft' | 'lm', TrainerRuns> = {} as Record<'rl' | 'sft' | 'lm', TrainerRuns>;
const killAt5 = (s: number): void => {
  if (s === 5) throw new Error('killed');
};

async function rlRuns(): Promise<TrainerRuns> {
  const { dir, raw: base } = await rlFixture('corrupt-rl');
  const raw = { ...base, steps: 6, loss: { ...(base.loss as object), innerEpochs: 1 } };
  const cfg = (output: string): ReturnType<typeof parseRlConfig> => parseRlConfig({ ...raw, output }, dir);
  await trainRl(cfg('straight'), { progress: false });
  await assert.rejects(trainRl(cfg('crashed'), { progress: false, onStep: killAt5 }), /killed/);
  return {
    name: 'rl',
    dir,
    stage: 'rl',
    finalFile: 'final/model.safetensors',
    configFor: (run) =>
      writeConfig(`${run}.json`, {
        ...raw,
        model: path.join(dir, 'model'),
        data: { beir: path.join(dir, 'beir'), split: 'train' },
        output: run,
      }),
    resume: async (run, warn) => (await trainRl(cfg(run), { progress: false, resume: true, warn })).startStep,
  };
}

async function sftRuns(): Promise<TrainerRuns> {
  const dir = tempDir('corrupt-sft');
  await tinyModelFolder(path.join(dir, 'model'));
  writeJsonl(path.join(dir, 'train.jsonl'), toyExamples(12));
  toyBeir(path.join(dir, 'dev'));
  const raw = (output: string): Record<string, unknown> => ({
    model: path.join(dir, 'model'),
    output,
    seed: 3,
    data: [{ type: 'jsonl', path: path.join(dir, 'train.jsonl') }],
    maxLength: 128,
    steps: 6,
    batch: { queries: 4, hardNegatives: 1, subBatch: 5 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    checkpoint: { every: 2, keep: 2 },
    lora: { rank: 4, alpha: 8, dropout: 0.1 },
    eval: { beir: path.join(dir, 'dev'), split: 'train', every: 2 },
  });
  const configFor = (run: string): string => writeConfig(`${run}.json`, raw(run));
  await trainSft(loadSftConfig(configFor(path.join(dir, 'straight'))), { progress: false });
  const crashed = trainSft(loadSftConfig(configFor(path.join(dir, 'crashed'))), { progress: false, onStep: killAt5 });
  await assert.rejects(crashed, /killed/);
  return {
    name: 'sft',
    dir,
    stage: 'sft',
    finalFile: 'final/adapter_model.safetensors',
    configFor,
    resume: async (run, warn) => {
      const s = await trainSft(loadSftConfig(configFor(run)), { progress: false, resume: true, warn });
      return s.startStep;
    },
  };
}

async function lmRuns(): Promise<TrainerRuns> {
  const dir = tempDir('corrupt-lm');
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  await Tokenizer.fromJSON(tokenizerJson, tokenizerConfig).save(path.join(dir, 'tok'));
  const rng = new T.Rng(5);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'theta'];
  const word = (): string => words[rng.int(words.length)]!;
  const doc = (): string => JSON.stringify({ text: Array.from({ length: 30 }, word).join(' ') });
  writeFileSync(path.join(dir, 'train.jsonl'), Array.from({ length: 40 }, doc).join('\n') + '\n');
  writeFileSync(path.join(dir, 'valid.jsonl'), Array.from({ length: 6 }, doc).join('\n') + '\n');
  const raw = (output: string): Record<string, unknown> => ({
    tokenizer: path.join(dir, 'tok'),
    output,
    seed: 3,
    data: { train: [path.join(dir, 'train.jsonl')], valid: [path.join(dir, 'valid.jsonl')] },
    model: {
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      maxPositionEmbeddings: 64,
    },
    seqLength: 16,
    batchSize: 4,
    steps: 6,
    optimizer: { lr: 1e-2, warmupSteps: 2 },
    eval: { every: 3, maxSequences: 4 },
    checkpoint: { every: 2, keep: 2 },
  });
  const cfg = (run: string): ReturnType<typeof parseLmConfig> => parseLmConfig(raw(run), dir);
  await trainLm(cfg(path.join(dir, 'straight')), { progress: false });
  await assert.rejects(trainLm(cfg(path.join(dir, 'crashed')), { progress: false, onStep: killAt5 }), /killed/);
  return {
    name: 'lm',
    dir,
    stage: 'lm',
    finalFile: 'final/model.safetensors',
    configFor: (run) => writeConfig(`${run}.json`, raw(run)),
    resume: async (run, warn) => (await trainLm(cfg(run), { progress: false, resume: true, warn })).startStep,
  };
}

before(async () => {
  runs.rl = await rlRuns();
  runs.sft = await sftRuns();
  runs.lm = await lmRuns();
});

/** A fresh copy of a trainer's crashed run. */
function copyOfCrashed(t: TrainerRuns, name: string): string {
  const run = path.join(t.dir, 'cases', name);
  cpSync(path.join(t.dir, 'crashed'), run, { recursive: true });
  return run;
}

const straightOf = (t: TrainerRuns): string => path.join(t.dir, 'straight');
const trainLines = (run: string): unknown[] =>
  readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.includes('"type":"train"'))
    .map(withoutTimes);
const weights = (t: TrainerRuns, run: string): Buffer => readFileSync(path.join(run, t.finalFile));

/** Resumes a copy of the crashed run after `damage`, and checks that it ends as the undamaged run did. */
async function resumeAfter(
  t: TrainerRuns,
  name: string,
  damage: (run: string) => void,
  fromStep: number,
): Promise<string[]> {
  const run = copyOfCrashed(t, name);
  damage(run);
  const warnings: string[] = [];
  const label = `${t.name} ${name}`;
  assert.equal(await t.resume(run, (l) => warnings.push(l)), fromStep, label);
  assert.deepEqual(trainLines(run), trainLines(straightOf(t)), `${label}: every step logged as in the undamaged run`);
  assert.ok(weights(t, run).equals(weights(t, straightOf(t))), `${label}: the final weights of the undamaged run`);
  return warnings;
}

const CHECKPOINT_FILES = ['trainable.safetensors', 'optimizer.safetensors', 'state.json', 'checksums.sha256'];

for (const [trainer, files] of [
  ['rl', [...CHECKPOINT_FILES, 'environment.safetensors', 'environment.json']],
  ['sft', CHECKPOINT_FILES],
  ['lm', CHECKPOINT_FILES],
] as const) {
  test(
    `train ${trainer} --resume: any damaged file of the newest checkpoint is named in one line, and the run goes ` +
      'on from the checkpoint before to the weights of an undamaged run',
    async () => {
      const t = runs[trainer];
      for (const file of files) {
        for (const [k, kind] of DAMAGE_KINDS.entries()) {
          const named = (run: string): string => path.join(run, 'checkpoints', 'step-00000004', file);
          let run = '';
          const damage = (r: string): void => {
            run = r;
            damageFile(named(r), kind, k + 1);
          };
          const warnings = await resumeAfter(t, `${file}-${kind}`, damage, 2);
          assert.equal(warnings.length, 1, `${file} ${kind}: ${warnings.join('\n')}`);
          assert.ok(warnings[0]!.startsWith(`warning: ${named(run)} `), `${file} ${kind}: ${warnings[0]}`);
          assert.match(warnings[0]!, /; resuming from \S+step-00000002 \(step 2\) instead$/, `${file} ${kind}`);
        }
      }
    },
  );

  test(
    `train ${trainer} --resume: a damaged metrics.jsonl keeps its intact records up to the resumed step and ` +
      'never stops training',
    async () => {
      const t = runs[trainer];
      // a record that still parses is kept, whatever a flipped bit changed in it: only a checksum would tell
      const isRecordUpTo4 = (line: string): boolean => {
        try {
          const r = JSON.parse(line) as { type?: unknown; step?: unknown } | null;
          return typeof r?.type === 'string' && typeof r.step === 'number' && r.step <= 4;
        } catch {
          return false;
        }
      };
      for (const [k, kind] of DAMAGE_KINDS.entries()) {
        const run = copyOfCrashed(t, `metrics-${kind}`);
        const file = path.join(run, 'metrics.jsonl');
        damageFile(file, kind, k + 1);
        const left = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
        const warnings: string[] = [];
        assert.equal(await t.resume(run, (l) => warnings.push(l)), 4, kind);
        const kept = left.filter(isRecordUpTo4);
        const now = readFileSync(file, 'utf8').trim().split('\n');
        assert.deepEqual(now.slice(0, kept.length), kept, `${kind}: the intact records up to step 4 are kept`);
        const logged = now
          .slice(kept.length)
          .filter((l) => l.includes('"type":"train"'))
          .map(withoutTimes);
        assert.deepEqual(logged, trainLines(straightOf(t)).slice(4), `${kind}: steps 5 and 6 are logged again`);
        assert.ok(weights(t, run).equals(weights(t, straightOf(t))), kind);
        assert.ok(warnings.length <= 1, warnings.join('\n'));
        if (kind === 'random') assert.equal(warnings.length, 1, `${kind}: the damaged lines are reported`);
        for (const w of warnings) assert.ok(w.startsWith(`warning: ${file}: `), w);
      }
    },
  );

  test(
    `train ${trainer} --resume with no intact checkpoint: one line names every damaged file and what to do; ` +
      'nothing in the run folder changes',
    () => {
      const t = runs[trainer];
      const run = copyOfCrashed(t, 'none-intact');
      damageFile(path.join(run, 'checkpoints', 'step-00000004', 'trainable.safetensors'), 'bitflip');
      damageFile(path.join(run, 'checkpoints', 'step-00000002', 'state.json'), 'truncated');
      // a half-written checkpoint a kill left behind: cleaned up only by a resume that goes ahead
      mkdirSync(path.join(run, 'checkpoints', '.step-00000006.tmp-1-x'));
      writeFileSync(path.join(run, 'checkpoints', '.step-00000006.tmp-1-x', 'state.json'), '{"step": 6');
      const before = folderDigest(run);
      const r = runCli(['train', t.stage, '--config', t.configFor(run), '--resume', '--quiet']);
      assertNoAbort(r, 'none intact');
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^search-r3: no checkpoint in \S+checkpoints can be resumed: /);
      for (const f of [path.join('step-00000004', 'trainable.safetensors'), path.join('step-00000002', 'state.json')]) {
        assert.ok(r.stderr.includes(path.join(run, 'checkpoints', f)), r.stderr);
      }
      assert.match(r.stderr, /restore the run folder from a backup, or train again into a new output folder/);
      assert.deepEqual(folderDigest(run), before, 'resume wrote nothing before it had a checkpoint it could load');
    },
  );
}

test(
  'train lm --resume: a damaged token cache is named, tokenized again, and training ends as if nothing ' + 'happened',
  async () => {
    const t = runs.lm;
    for (const file of ['train.tokens', 'train.json', 'valid.tokens', 'valid.json']) {
      for (const [k, kind] of DAMAGE_KINDS.entries()) {
        const damage = (run: string): void => damageFile(path.join(run, 'tokens', file), kind, k + 1);
        const warnings = await resumeAfter(t, `tokens-${file}-${kind}`, damage, 4);
        assert.ok(warnings.length <= 1, warnings.join('\n'));
        // a flipped bit may only make the record look like one for other inputs: rebuilt without a word
        if (kind !== 'bitflip') assert.equal(warnings.length, 1, `${file} ${kind}`);
        for (const w of warnings)
          assert.ok(w.startsWith(`warning: ${path.join(t.dir, 'cases')}`) && w.includes(file), w);
        for (const w of warnings) assert.match(w, /; the (train|valid) text was tokenized again$/);
      }
    }
  },
);

test(
  'rlenv audit --from reads the newest intact checkpoint, ' + 'says which it skipped, and changes nothing in the run',
  () => {
    const t = runs.rl;
    const run = copyOfCrashed(t, 'audit-from');
    const cfgFile = t.configFor(run);
    damageFile(path.join(run, 'checkpoints', 'step-00000004', 'environment.safetensors'), 'bitflip');
    const before = folderDigest(run);
    const audit = (output: string): CliResult =>
      runCli(['rlenv', 'audit', '--config', cfgFile, '--from', run, '--steps', '1', '--output', output, '--quiet']);
    const r = audit(path.join(t.dir, 'audit-1'));
    assertNoAbort(r, 'audit --from');
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    const named = path.join(run, 'checkpoints', 'step-00000004', 'environment.safetensors');
    assert.ok(lines[0]!.startsWith(`warning: ${named} `), lines[0]);
    assert.match(r.stdout, /^from \S+step-00000002 \(step 2\); environment: 40 documents/);
    assert.deepEqual(folderDigest(run), before);
    damageFile(path.join(run, 'checkpoints', 'step-00000002', 'optimizer.safetensors'), 'missing');
    const damaged = folderDigest(run);
    const none = audit(path.join(t.dir, 'audit-2'));
    assertNoAbort(none, 'audit --from, none intact');
    assert.equal(none.status, 2, none.stderr);
    assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
    assert.match(none.stderr, /00000004\/environment\.safetensors .*00000002\/optimizer\.safetensors is missing/);
    assert.deepEqual(folderDigest(run), damaged);
  },
);

test(
  'checkpoints from before manifests resume as before; a damaged one is still skipped when it does not read ' + 'back',
  async () => {
    const t = runs.lm;
    const legacy = (run: string): void => {
      for (const step of ['step-00000002', 'step-00000004']) {
        const dir = path.join(run, 'checkpoints', step);
        rmSync(path.join(dir, 'checksums.sha256'));
        const state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as Record<string, unknown>;
        delete state.checksums;
        writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state, null, 1));
      }
    };
    assert.deepEqual(await resumeAfter(t, 'legacy', legacy, 4), []);
    // without a manifest a flipped bit in a tensor goes unseen, so only damage that stops the file parsing is tried
    for (const file of ['trainable.safetensors', 'optimizer.safetensors', 'state.json']) {
      for (const [k, kind] of DAMAGE_KINDS.filter((d) => d !== 'bitflip').entries()) {
        const named = (run: string): string => path.join(run, 'checkpoints', 'step-00000004', file);
        let run = '';
        const damage = (r: string): void => {
          run = r;
          legacy(r);
          damageFile(named(r), kind, k + 1);
        };
        const warnings = await resumeAfter(t, `legacy-${file}-${kind}`, damage, 2);
        assert.equal(warnings.length, 1, `${file} ${kind}: ${warnings.join('\n')}`);
        assert.ok(warnings[0]!.startsWith(`warning: ${named(run)}`), warnings[0]);
      }
    }
  },
);

test(
  'a fresh run into a folder that a run killed before its first checkpoint left a log in starts the log ' + 'afresh',
  async () => {
    const t = runs.lm;
    const run = path.join(t.dir, 'cases', 'fresh-over-log');
    mkdirSync(run, { recursive: true });
    cpSync(path.join(straightOf(t), 'metrics.jsonl'), path.join(run, 'metrics.jsonl'));
    const r = runCli(['train', 'lm', '--config', t.configFor(run), '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    const lines = (f: string): unknown[] =>
      readFileSync(path.join(f, 'metrics.jsonl'), 'utf8').trim().split('\n').map(withoutTimes);
    assert.deepEqual(lines(run), lines(straightOf(t)), 'each record once, as in a run into an empty folder');
  },
);

// ---------------------------------------------------------------------------------------------
// the model folder a run writes (final/), as eval, demo, index and serve read it

const MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];

/** Loads a model folder and embeds with it (reasoning on): undefined when all went well, else the error. */
async function useModel(dir: string): Promise<Error | undefined> {
  try {
    const { model, tokenizer } = await loadModelFolder(dir);
    const embedder = new Embedder(model, tokenizer);
    embedder.embedDocuments(['alpha beta gamma']);
    embedder.embedQuery('which alpha?', { reasoning: 'on', maxReasoningTokens: 4 });
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

test(
  'a damaged model folder is one sentence naming the file, ' + 'or (a flipped bit the format cannot see) still works',
  async () => {
    const final = path.join(straightOf(runs.rl), 'final');
    for (const file of MODEL_FILES) {
      for (const [k, kind] of DAMAGE_KINDS.entries()) {
        const dir = path.join(runs.rl.dir, 'models', `${file}-${kind}`);
        cpSync(final, dir, { recursive: true });
        damageFile(path.join(dir, file), kind, k + 1);
        const before = folderDigest(dir);
        const e = await useModel(dir);
        assert.deepEqual(folderDigest(dir), before, `${file} ${kind}: reading changed nothing`);
        // only a flipped bit can leave a file readable: HF model folders carry no checksum to catch it
        if (e === undefined && kind === 'bitflip') continue;
        assert.ok(e, `${file} ${kind}: the damage went unnoticed`);
        assert.equal(e.name, 'ModelFileError', `${file} ${kind}: ${e.stack}`);
        assert.ok(e.message.startsWith(dir) && e.message.includes(file) && !e.message.includes('\n'), e.message);
      }
    }
  },
);

test(
  'eval --retriever on a damaged model folder: exit 2 ' + 'and one line naming the file; a NaN weight is named too',
  () => {
    const final = path.join(straightOf(runs.rl), 'final');
    const evalOn = (dir: string): CliResult => runCli(['eval', '--dataset', TINY_BEIR, '--retriever', dir]);
    const nan = path.join(runs.rl.dir, 'models', 'nan');
    cpSync(final, nan, { recursive: true });
    // the top exponent bits of one weight set: a NaN, which a flipped bit in the exponent can make
    const weightsFile = path.join(nan, 'model.safetensors');
    const bytes = readFileSync(weightsFile);
    const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
    bytes.writeUInt32LE(0x7fc00000, dataStart + 4 * 100);
    writeFileSync(weightsFile, bytes);
    const cases: [string, string][] = MODEL_FILES.map((f): [string, string] => [f, 'random']);
    cases.push(['model.safetensors', 'nan']);
    for (const [file, kind] of cases) {
      const dir = kind === 'nan' ? nan : path.join(runs.rl.dir, 'models', `cli-${file}`);
      if (kind !== 'nan') {
        cpSync(final, dir, { recursive: true });
        damageFile(path.join(dir, file), 'random', 7);
      }
      const before = folderDigest(dir);
      const r = evalOn(dir);
      assertNoAbort(r, `${file} ${kind}`);
      assert.equal(r.status, 2, `${file} ${kind}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(r.stderr.startsWith(`search-r3: ${path.join(dir, file)}`), r.stderr);
      if (kind === 'nan') assert.match(r.stderr, /holds NaN or Inf values/);
      assert.deepEqual(folderDigest(dir), before);
    }
  },
);

// ---------------------------------------------------------------------------------------------
// recipe default: its model card step reads the corpus manifest and the packaged model's config.json

test(
  'recipe: the model card step names a damaged corpus manifest or config.json in one sentence, before ' + 'writing',
  async () => {
    const work = path.join(runs.rl.dir, 'recipe-work');
    const p = recipePaths(work, path.join(work, 'data'));
    const state: RecipeState = { profile: 'tiny', startedAt: new Date(0).toISOString(), steps: {} };
    const manifest = path.join(p.corpus, 'manifest.json');
    const source = { name: 'toy', licence: 'CC0', attribution: 'none', documents: 40, bytes: 4000 };
    const writeManifest = (): void => {
      mkdirSync(p.corpus, { recursive: true });
      const totals = { trainDocuments: 40, trainBytes: 4000 };
      writeFileSync(manifest, JSON.stringify({ sources: [source], totals }, null, 1));
    };
    mkdirSync(p.configs, { recursive: true });
    const final = path.join(straightOf(runs.rl), 'final');
    for (const [k, kind] of DAMAGE_KINDS.entries()) {
      for (const damaged of ['manifest.json', 'config.json']) {
        const out = path.join(work, 'out', `${damaged}-${kind}`);
        cpSync(final, out, { recursive: true });
        writeManifest();
        const file = damaged === 'manifest.json' ? manifest : path.join(out, 'config.json');
        damageFile(file, kind, k + 1);
        const before = folderDigest(out);
        let error: Error | undefined;
        await writeModelCard(out, p, PROFILES.tiny, state).catch((e: Error) => {
          error = e;
        });
        if (error === undefined) {
          assert.equal(kind, 'bitflip', `${damaged} ${kind}: only a flipped bit can leave the file readable`);
          continue;
        }
        assert.ok(['RecipeError', 'ModelFileError'].includes(error.name), `${damaged} ${kind}: ${error.stack}`);
        assert.ok(error.message.startsWith(file), error.message);
        assert.ok(!error.message.includes('\n'), error.message);
        assert.deepEqual(folderDigest(out), before, `${damaged} ${kind}: nothing written`);
      }
    }
  },
);

test(
  'train sft --resume with a config the checkpoints do not ' + 'fit (another LoRA rank): one sentence, nothing changed',
  () => {
    const t = runs.sft;
    const run = copyOfCrashed(t, 'other-rank');
    const cfgFile = t.configFor(run);
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, lora: { rank: 8, alpha: 16 } }));
    // the run's record names the settings that differ; without one (a folder from before it), the checkpoint
    // that does not fit is named
    for (const [record, sentence] of [
      [true, /other-rank holds a train sft run started with other settings than this config's: lora\.rank 4 → 8; /],
      [false, /step-00000004: tensor '\S+' is missing or has another shape; resume with the config the run was/],
    ] as const) {
      if (!record) rmSync(path.join(run, 'run-config.json'));
      const before = folderDigest(run);
      const r = runCli(['train', 'sft', '--config', cfgFile, '--resume', '--quiet']);
      assertNoAbort(r, 'other rank');
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, sentence);
      assert.deepEqual(folderDigest(run), before);
    }
  },
);
