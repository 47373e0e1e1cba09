import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../../src/tensor/index.js';
import { parseRlConfig } from '../../../src/train/rl/config.js';
import { trainRl } from '../../../src/train/rl/trainer.js';
import { listCheckpoints } from '../../../src/train/checkpoint.js';
import { TrainingDiverged } from '../../../src/train/training-run.js';
import { forwardRollouts, sampleRollouts } from '../../../src/train/rl/rollout.js';
import { ConfigError } from '../../../src/train/config-merge.js';
import { embedTokenId } from '../../../src/embed/prompts.js';
import { tinyModel } from '../../helpers/tiny-model.js';
import { rlFixture, toySftRun, trainRecords, withoutTimes, writeConfig } from '../../helpers/train-fixtures.js';
import { loadModelFolder } from '../../../src/model/model-folder.js';
import { runCli } from '../../helpers/cli.js';

const fixture = (): Promise<{ dir: string; raw: Record<string, unknown> }> => rlFixture('rl');

test(
  'a seeded RL run is reproducible, skips and counts a query ' +
    'without positives, and stays within the refresh budget',
  async () => {
    const { dir, raw } = await fixture();
    const runs: string[] = [];
    for (const out of ['run-a', 'run-b']) {
      const cfg = parseRlConfig({ ...raw, output: out }, dir);
      const s = await trainRl(cfg, { progress: false, audit: out === 'run-a' });
      assert.equal(s.steps, 3);
      assert.equal(s.data.skippedNoPositiveInCorpus, 1);
      assert.equal(s.data.queries, 7);
      runs.push(readFileSync(path.join(dir, out, 'metrics.jsonl'), 'utf8'));
    }
    const train = (text: string): unknown[] =>
      text
        .trim()
        .split('\n')
        .filter((l) => l.includes('"type":"train"'))
        .map(withoutTimes);
    const a = train(runs[0]),
      b = train(runs[1]);
    assert.equal(a.length, 3);
    assert.deepEqual(a, b, 'two runs with the same seed log the same steps (the audit twin does not change training)');
    for (const r of a as Record<string, any>[]) {
      for (const k of ['loss', 'kl', 'rewardMean', 'rewardStd', 'clipFraction', 'formatSuccess', 'reasoningTokens'])
        assert.ok(Number.isFinite(r[k]), `${k} = ${r[k]}`);
      assert.ok(r.clipFraction >= 0 && r.clipFraction <= 1);
      assert.ok(r.env.encodes <= 6 + 3, `${r.env.encodes} encodes`);
      assert.equal(r.env.version, 2 * (r.step - 1), 'two inner epochs = two policy versions per step');
      // a forced embed token costs the format penalty (0.5) and is counted
      assert.ok(Math.abs(r.rewardMean - (r.rankingRewardMean - (0.5 * r.forced) / 6)) < 1e-9);
      assert.ok(Math.abs(r.formatSuccess - (1 - r.forced / 6)) < 1e-12);
    }
    const audits = runs[0]
      .trim()
      .split('\n')
      .filter((l) => l.includes('"type":"audit"'))
      .map((l) => JSON.parse(l));
    assert.equal(audits.length, 3);
    for (const x of audits) {
      assert.equal(x.exactEncodes, 40 - (x.step === 1 ? 40 : 0));
      assert.equal(x.localRewards.length, 6);
    }
  },
);

test('a corpus too large for the allowed table memory is refused with the size it needs', async () => {
  const { dir, raw } = await fixture();
  const cfg = parseRlConfig({ ...raw, environment: { ...(raw.environment as object), maxTableBytes: 1000 } }, dir);
  // 40 documents × 32 dimensions × 4 bytes + 40 versions × 4 bytes = 5280 bytes
  await assert.rejects(trainRl(cfg, { progress: false }), /40 documents × 32 dimensions needs 5280 bytes/);
  assert.equal(existsSync(cfg.output), false, 'refused before the run folder is made');
});

test('a reasoning budget leaving the query prompt no room in maxLength is refused before any encoding', async () => {
  const { dir, raw } = await fixture();
  const rollout = { ...(raw.rollout as object), maxReasoningTokens: 100 };
  const cfg = parseRlConfig({ ...raw, rollout }, dir);
  // maxLength 160 less 100 tokens of analysis and the forced embed token: 59, where the template alone takes 80
  const room = /^"rollout\.maxReasoningTokens" 100 leaves 59 tokens of maxLength 160 to the query prompt, whose /;
  await assert.rejects(
    trainRl(cfg, { progress: false }),
    (e: unknown) => e instanceof ConfigError && room.test(e.message) && /template alone needs \d+/.test(e.message),
  );
  assert.equal(existsSync(cfg.output), false, 'refused before the run folder is made');
});

test('a data.split the BEIR folder lacks is refused before the model loads', async () => {
  const { dir, raw } = await fixture();
  // the model folder does not load either: the split is what is said
  const cfg = parseRlConfig({ ...raw, model: 'no-model', data: { beir: 'beir', split: 'dev' } }, dir);
  await assert.rejects(trainRl(cfg, { progress: false }), /beir: no qrels for split 'dev' \(expected /);
  assert.equal(existsSync(cfg.output), false, 'refused before the run folder is made');
});

test('a split with no query to train on says what to check: the ids, or the grades, of its qrels', async () => {
  const { dir, raw } = await fixture();
  const beir = path.join(dir, 'beir');
  const cfg = parseRlConfig(raw, dir);
  // the corpus of another dataset: no judged document id is in it
  const corpus = readFileSync(path.join(beir, 'corpus.jsonl'), 'utf8');
  writeFileSync(path.join(beir, 'corpus.jsonl'), corpus.replaceAll('"_id":"d', '"_id":"other-'));
  await assert.rejects(
    trainRl(cfg, { progress: false }),
    (e: unknown) =>
      /beir: none of the 8 queries of qrels\/train.tsv has a relevant document in corpus.jsonl \(all 9 /.test(
        (e as Error).message,
      ) && /: check that the qrels and corpus.jsonl are of the same dataset and version/.test((e as Error).message),
  );
  // qrels that judge every document irrelevant
  writeFileSync(path.join(beir, 'corpus.jsonl'), corpus);
  const qrels = path.join(beir, 'qrels', 'train.tsv');
  writeFileSync(qrels, readFileSync(qrels, 'utf8').replace(/\t1$/gm, '\t0'));
  await assert.rejects(
    trainRl(cfg, { progress: false }),
    /none of the 8 queries of qrels\/train.tsv has a document judged relevant \(grade ≥ 1\): check that its third/,
  );
});

test('resume continues from the newest checkpoint to the requested steps', async () => {
  const { dir, raw } = await fixture();
  const cfg = parseRlConfig(raw, dir);
  await trainRl(cfg, { progress: false, steps: 2 });
  await assert.rejects(trainRl(cfg, { progress: false }), /already has checkpoints/);
  const s = await trainRl(cfg, { progress: false, resume: true });
  assert.equal(s.startStep, 2);
  assert.equal(s.steps, 3);
  const steps = readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === 'train')
    .map((r) => r.step);
  assert.deepEqual(steps, [1, 2, 3]);
});

test(
  'a run that crashes and resumes from its checkpoint is bit-identical ' +
    'to one that never stopped (weights, rewards, environment)',
  async () => {
    const { dir, raw } = await fixture();
    // a sparse graph searched narrowly is approximate even on 40 documents, so its history shows in the candidates
    const base = {
      ...raw,
      steps: 5,
      checkpoint: { every: 2, keep: 2 },
      environment: { ...(raw.environment as object), connectivity: 2, expansionAdd: 2, expansionSearch: 1 },
    };
    await trainRl(parseRlConfig({ ...base, output: 'straight' }, dir), { progress: false });
    const crashed = parseRlConfig({ ...base, output: 'crashed' }, dir);
    // dies during step 3, after its log line and before any checkpoint of it: the newest checkpoint is step 2
    await assert.rejects(
      trainRl(crashed, {
        progress: false,
        onStep: (s) => {
          if (s === 3) throw new Error('killed');
        },
      }),
      /killed/,
    );
    const notes: string[] = [];
    const s = await trainRl(crashed, { progress: false, resume: true, onStep: (step) => notes.push(String(step)) });
    assert.equal(s.startStep, 2);
    assert.equal(s.environmentRestored, true, 'the corpus is not encoded again');
    assert.deepEqual(notes, ['3', '4', '5']);
    const train = (out: string): unknown[] => trainRecords(path.join(dir, out));
    const a = train('straight'),
      b = train('crashed');
    assert.equal(a.length, 5);
    // every step's rewards, losses, KL, refresh counts and staleness, to the last bit
    assert.deepEqual(b, a);
    const weights = (out: string): Buffer => readFileSync(path.join(dir, out, 'final', 'model.safetensors'));
    assert.ok(weights('crashed').equals(weights('straight')), 'the final weights are byte-identical');
    for (const out of ['straight', 'crashed'])
      assert.ok(existsSync(path.join(dir, out, 'checkpoints', 'step-00000004', 'environment.safetensors')));
    // a damaged saved environment: one line names the file, and resume goes on from the checkpoint before it
    writeFileSync(path.join(dir, 'crashed', 'checkpoints', 'step-00000005', 'environment.json'), '{"version": 4,');
    const warnings: string[] = [];
    const again = await trainRl(
      { ...crashed, steps: 6 },
      {
        progress: false,
        resume: true,
        warn: (l) => warnings.push(l),
      },
    );
    assert.equal(again.startStep, 4);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /step-00000005\/environment\.json does not match its SHA-256 .*step-00000004 \(step 4\)/);
  },
);

test('a run stopped off its checkpoint schedule and resumed is bit-identical to an unstopped one', async () => {
  const { dir, raw } = await fixture();
  const base = {
    ...raw,
    steps: 5,
    reward: { kind: 'rr', k: 0, formatPenalty: 0.5 },
    checkpoint: { every: 2, keep: 2 },
    environment: { ...(raw.environment as object), connectivity: 2, expansionAdd: 2, expansionSearch: 1 },
  };
  await trainRl(parseRlConfig({ ...base, output: 'straight' }, dir), { progress: false });
  const train = (out: string): unknown[] => trainRecords(path.join(dir, out));
  const weights = (out: string): Buffer => readFileSync(path.join(dir, out, 'final', 'model.safetensors'));
  // as SIGINT does: the run stops after the step with a checkpoint of it, off the every-2-steps schedule,
  // before the first scheduled checkpoint and after one
  for (const at of [1, 3]) {
    const out = `stopped-${at}`;
    const stopped = parseRlConfig({ ...base, output: out }, dir);
    const stop = new AbortController();
    const first = await trainRl(stopped, {
      progress: false,
      stop: stop.signal,
      onStep: (s) => s === at && stop.abort(),
    });
    assert.equal(first.steps, at);
    assert.deepEqual(
      listCheckpoints(path.join(dir, out, 'checkpoints')).map((c) => c.step),
      at === 1 ? [1] : [2, 3],
    );
    const s = await trainRl(stopped, { progress: false, resume: true });
    assert.equal(s.startStep, at);
    assert.deepEqual(train(out), train('straight'), `stopped after step ${at}`);
    assert.ok(weights(out).equals(weights('straight')), 'the final weights are byte-identical');
  }
});

test("the training forward reproduces generate()'s log-probabilities at the sampling temperature", () => {
  const { model, tokenizer } = tinyModel(5);
  const embed = embedTokenId(tokenizer);
  const prompts = [tokenizer.encode('hello there'), tokenizer.encode('a longer prompt than that')];
  for (const temperature of [1, 0.7]) {
    const rs = sampleRollouts(model, prompts, embed, [], {
      group: 2,
      temperature,
      topP: 1,
      topK: 0,
      maxReasoningTokens: 6,
      seed: 11,
    });
    assert.equal(rs.length, 4);
    const f = T.noGrad(() => forwardRollouts(model, rs, temperature));
    const expected = rs.flatMap((r) => r.sampledLogprobs);
    assert.equal(f.logp.size, expected.length);
    expected.forEach((x, i) => assert.ok(Math.abs(f.logp.data[i] - x) < 1e-3, `token ${i}: ${f.logp.data[i]} vs ${x}`));
    for (const r of rs)
      assert.equal(r.ids[r.ids.length - 1], embed, 'the sequence ends at the (emitted or forced) embed token');
  }
});

test('config: unknown keys and bad values are refused with the key named', () => {
  const base = { model: 'm', output: 'o', data: { beir: 'b' } };
  assert.throws(
    () => parseRlConfig({ ...base, rollout: { groups: 4 } }, '/'),
    (e: unknown) => e instanceof ConfigError && /"rollout.groups" is not a config key/.test(e.message),
  );
  assert.throws(() => parseRlConfig({ ...base, reward: { kind: 'map' } }, '/'), /reward.kind/);
  assert.throws(() => parseRlConfig({ ...base, environment: { mode: 'fast' } }, '/'), /environment.mode/);
  assert.throws(() => parseRlConfig({ output: 'o', data: { beir: 'b' } }, '/'), /"model" is required/);
  // sizes that end up as tensor shapes or loop counts: a fraction or a negative is named here, not deep inside
  const bad: [object, RegExp][] = [
    [{ rollout: { maxReasoningTokens: 2.5 } }, /"rollout.maxReasoningTokens" must be an integer ≥ 0, got 2.5/],
    [{ rollout: { topK: -1 } }, /"rollout.topK"/],
    [{ rollout: { topP: 0 } }, /"rollout.topP" must be in \(0, 1\]/],
    [{ environment: { connectivity: 0 } }, /"environment.connectivity" must be a positive integer/],
    [{ environment: { rolling: 0.5 } }, /"environment.rolling"/],
    [{ environment: { rolling: 0 } }, /"environment.driftCorrection" estimates the corpus drift from the rolling rows/],
    [{ data: { beir: 'b', maxQueries: -1 } }, /"data.maxQueries"/],
    // the test split is for evaluation only, in any case a case-insensitive file system would open it in
    [
      { data: { beir: 'b', split: 'test' } },
      /"data.split" is "test": test queries are never trained on; use the train/,
    ],
    [{ data: { beir: 'b', split: 'Test' } }, /"data.split" is "Test": test queries are never trained on/],
    // a negative penalty is a bonus for what it punishes: a forced embed token, long reasoning
    [{ reward: { formatPenalty: -0.5 } }, /"reward.formatPenalty" must be ≥ 0, got -0.5: .* never emitted the embed/],
    [{ reward: { lengthPenalty: -0.1 } }, /"reward.lengthPenalty" must be ≥ 0, got -0.1: .* reward longer reasoning/],
    [{ constructor: {} }, /"constructor" is not a config key/],
    // no sampled token and no contrastive term: every step would leave the policy as it was
    [
      { rollout: { maxReasoningTokens: 0 } },
      /"rollout.maxReasoningTokens" 0 samples no token, so with "loss.infonce" 0/,
    ],
  ];
  for (const [over, re] of bad) assert.throws(() => parseRlConfig({ ...base, ...over }, '/'), re);
  assert.equal(parseRlConfig(base, '/x').model, '/x/m');
  assert.equal(parseRlConfig({ ...base, data: { beir: 'b', split: 'dev' } }, '/').data.split, 'dev');
  assert.equal(parseRlConfig({ ...base, reward: { formatPenalty: 0, lengthPenalty: 0 } }, '/').reward.formatPenalty, 0);
});

test(
  'CLI: rlenv audit reports encodes, wall time, staleness ' + 'and reward agreement; train rl trains and reports',
  async () => {
    const { dir, raw } = await fixture();
    const file = writeConfig(path.join(dir, 'rl.json'), raw);
    const a = runCli(['rlenv', 'audit', '--config', file, '--steps', '3', '--quiet']);
    assert.equal(a.status, 0, a.stderr);
    for (const re of [
      /document encodes \/ step: local [\d.]+, exact 40\.0/,
      /wall time \/ step/,
      /mean staleness/,
      /mean \|Δ\|/,
      /Spearman ρ/,
    ])
      assert.match(a.stdout, re);
    const summary = JSON.parse(readFileSync(path.join(dir, 'run-audit', 'audit.json'), 'utf8'));
    assert.equal(summary.summary.steps, 2, 'step 1 (both tables exact) is left out');
    // an exact environment audited against its exact twin would report a perfect match of a table with itself
    const exact = writeConfig(path.join(dir, 'exact.json'), {
      ...raw,
      output: 'run-exact',
      environment: { ...(raw.environment as object), mode: 'exact' },
    });
    const e = runCli(['rlenv', 'audit', '--config', exact, '--steps', '3', '--quiet']);
    assert.equal(e.status, 2, e.stdout);
    assert.match(e.stderr, /exact\.json: "environment\.mode" is "exact", .* nothing to audit; set environment\.mode/);
    assert.equal(existsSync(path.join(dir, 'run-exact-audit')), false);
    const twice = runCli(['rlenv', 'audit', '--config', file, '--steps', '3', '--quiet']);
    assert.equal(twice.status, 2);
    assert.match(twice.stderr, /run-audit already holds checkpoints .*; name another --output, or delete it/);
    const t = runCli(['train', 'rl', '--config', file, '--quiet']);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /trained steps 0→3 .* 7 queries \(1 skipped: no positive in the corpus\)/);
    const done = runCli(['train', 'rl', '--config', file, '--resume', '--quiet']);
    assert.equal(done.status, 0, done.stderr);
    assert.match(done.stdout, /^already trained to step 3; 7 queries/, 'a finished run resumed says so (not NaN)');
    // the run's record comes with its checkpoint: a config of another seed (model, data...) is refused
    const reseeded = writeConfig(path.join(dir, 'reseeded.json'), { ...raw, seed: 4 });
    const fromRun = ['--from', path.join(dir, 'run'), '--steps', '1', '--quiet'];
    const seeded = runCli(['rlenv', 'audit', '--config', reseeded, ...fromRun, '--output', path.join(dir, 'a-seed')]);
    assert.equal(seeded.status, 2, seeded.stderr);
    assert.match(seeded.stderr, /run holds a train rl run started with other settings than this config's: seed 3 → 4;/);
    assert.ok(
      seeded.stderr.includes(
        '; rlenv audit --from continues a run only with the settings it started with (it may change steps, ',
      ),
      seeded.stderr,
    );
    assert.match(
      seeded.stderr,
      /, environment\.\*\): audit with the earlier config \(recorded in \S+run-config\.json\)\n$/,
    );
    // refused before the copy: a rerun with the run's config is not refused as an earlier audit's folder
    assert.equal(existsSync(path.join(dir, 'a-seed')), false);
    // nor is a run's checkpoint copied under a file, or among a folder's own files
    const onFile = runCli(['rlenv', 'audit', '--config', file, ...fromRun, '--output', file]);
    assert.equal(onFile.status, 2, onFile.stderr);
    assert.match(onFile.stderr, /^search-r3: the output \S+rl\.json is a file; name a folder for the run\n$/);
    const onData = runCli(['rlenv', 'audit', '--config', file, ...fromRun, '--output', path.join(dir, 'beir')]);
    assert.equal(onData.status, 2, onData.stderr);
    assert.match(onData.stderr, /the output \S+beir already holds files that are not a training run's \(corpus\.jsonl/);
    assert.deepEqual(readdirSync(path.join(dir, 'beir')).sort(), ['corpus.jsonl', 'qrels', 'queries.jsonl']);
    // an audit that continues the run from its newest checkpoint, stale table and all, audits every step it runs,
    // in the environment its config gives
    const budget = writeConfig(path.join(dir, 'budget.json'), {
      ...raw,
      environment: { ...(raw.environment as object), budget: 5 },
    });
    const f = runCli([
      'rlenv',
      'audit',
      '--config',
      budget,
      '--from',
      path.join(dir, 'run'),
      '--steps',
      '2',
      '--output',
      path.join(dir, 'audit-from'),
      '--quiet',
    ]);
    assert.equal(f.status, 0, f.stderr);
    assert.match(f.stdout, /^from \S+step-00000003 \(step 3\); environment: 40 documents/);
    const fromSummary = JSON.parse(readFileSync(path.join(dir, 'audit-from', 'audit.json'), 'utf8')).summary;
    assert.equal(fromSummary.steps, 2);
    const audited = JSON.parse(readFileSync(path.join(dir, 'audit-from', 'run-config.json'), 'utf8'));
    assert.deepEqual(audited.resumes.at(-1).changed['environment.budget'], { from: 6, to: 5 });
    assert.ok(fromSummary.meanStaleness > 0, 'the restored table is stale, as training left it');
    assert.ok(
      existsSync(path.join(dir, 'run', 'final')) && !existsSync(path.join(dir, 'run', 'checkpoints', 'step-00000005')),
      'the run folder is untouched',
    );
    const again = runCli([
      'rlenv',
      'audit',
      '--config',
      file,
      '--from',
      path.join(dir, 'run'),
      '--steps',
      '2',
      '--output',
      path.join(dir, 'audit-from'),
      '--quiet',
    ]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /already holds an audit's checkpoints/);
    const none = runCli(['rlenv', 'audit', '--config', file, '--from', path.join(dir, 'beir'), '--quiet']);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /has no checkpoints\/step-\* folder/);
    const missing = runCli(['rlenv', 'audit', '--config', file, '--from', path.join(dir, 'no-run'), '--quiet']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--from: \S+no-run does not exist; give the output folder of a train rl run/);
    const into = runCli([
      'rlenv',
      'audit',
      '--config',
      file,
      '--from',
      path.join(dir, 'run'),
      '--output',
      `${path.join(dir, 'run')}/`,
    ]);
    assert.equal(into.status, 2);
    assert.match(into.stderr, /--output \S+run is the run --from reads; the audit writes into a folder of its own/);
    const bad = writeConfig(path.join(dir, 'bad.json'), {
      ...raw,
      output: 'run-bad',
      environment: { maxTableBytes: 100 },
    });
    const b = runCli(['train', 'rl', '--config', bad, '--quiet']);
    assert.equal(b.status, 2);
    assert.match(
      b.stderr,
      /^search-r3: the environment's embedding table for 40 documents × 32 dimensions needs 5280 bytes/,
    );
  },
);

test(
  'LoRA: only the adapters train, the reference is the ' + 'base (KL 0 before the first update), final/ is an adapter',
  async () => {
    const { dir, raw } = await fixture();
    const cfg = parseRlConfig(
      {
        ...raw,
        output: 'run-lora',
        steps: 2,
        lora: { rank: 2, alpha: 4 },
        loss: { ...(raw.loss as object), innerEpochs: 1 },
      },
      dir,
    );
    const records: Record<string, any>[] = [];
    await trainRl(cfg, { progress: false, onStep: (_s, r) => records.push(r) });
    assert.equal(records.length, 2);
    assert.equal(records[0].kl, 0, 'π = π_ref at the first update');
    assert.ok(records[1].kl > 0, 'the adapters moved the policy away from the base');
    const data = JSON.parse(readFileSync(path.join(dir, 'run-lora', 'metrics.jsonl'), 'utf8').split('\n')[0]);
    assert.ok(data.trainableParameters < 28320 / 2, `${data.trainableParameters} trainable parameters`);
    assert.ok(existsSync(path.join(dir, 'run-lora', 'final', 'adapter_config.json')));
  },
);

test('train rl starts from a LoRA stage-1 final/: its adapter merged onto its base, the new one on it', async () => {
  const { dir, raw } = await fixture();
  // stage 1 with LoRA on the fixture's model (the same tiny folder), a few steps
  const sftConfig = await toySftRun(dir, { output: 'sft', steps: 2 });
  const sft = runCli(['train', 'sft', '--config', sftConfig, '--quiet']);
  assert.equal(sft.status, 0, sft.stderr);
  const stage1 = path.join(dir, 'sft', 'final');
  assert.ok(existsSync(path.join(stage1, 'adapter_config.json')) && !existsSync(path.join(stage1, 'config.json')));
  const rlConfig = writeConfig(path.join(dir, 'rl.json'), {
    ...raw,
    model: 'sft/final',
    output: 'run-from-lora',
    steps: 1,
    lora: { rank: 2, alpha: 4 },
    loss: { ...(raw.loss as object), innerEpochs: 1 },
  });
  const rl = runCli(['train', 'rl', '--config', rlConfig, '--quiet']);
  assert.equal(rl.status, 0, rl.stderr);
  const final = path.join(dir, 'run-from-lora', 'final');
  const recorded = JSON.parse(readFileSync(path.join(final, 'adapter_config.json'), 'utf8'));
  assert.equal(recorded.base_model_name_or_path, stage1);
  // stage 2's adapter loads on stage 1's merged model, which loads on the base
  const loaded = await loadModelFolder(final);
  assert.equal(loaded.base, stage1);
  assert.equal((await loadModelFolder(stage1)).base, path.join(dir, 'model'));
  // a stage-1 run is no run to continue an audit from, and is named as what it is
  const audit = runCli(['rlenv', 'audit', '--config', rlConfig, '--from', path.join(dir, 'sft'), '--quiet']);
  assert.equal(audit.status, 2);
  assert.match(audit.stderr, /--from: \S+sft is the run folder of a train sft run \(its run-config\.json says so\)/);
});

test(
  'a NaN in an update stops stage 2 before the optimiser ' + 'applies it, names the step, keeps the last checkpoint',
  async () => {
    const { dir, raw } = await fixture();
    const cfg = parseRlConfig({ ...raw, steps: 2, checkpoint: { every: 1, keep: 2 } }, dir);
    await trainRl(cfg, { progress: false });
    const root = path.join(cfg.output, 'checkpoints');
    const kept = listCheckpoints(root).map((c) => readFileSync(path.join(c.dir, 'trainable.safetensors')));
    const final = (): Buffer => readFileSync(path.join(cfg.output, 'final', 'model.safetensors'));
    const finalBefore = final();
    // resumed at an absurd learning rate: step 3's first update sends the weights to ±1e30, its second sees Inf
    const blown = parseRlConfig(
      {
        ...raw,
        steps: 4,
        checkpoint: { every: 1, keep: 2 },
        optimizer: { lr: 1e30 },
        loss: { ...(raw.loss as object), innerEpochs: 2 },
      },
      dir,
    );
    await assert.rejects(trainRl(blown, { progress: false, resume: true }), (e: unknown) => {
      assert.ok(e instanceof TrainingDiverged, String(e));
      assert.match(e.message, /^training stopped at step 3, update 2 of 2: .*(NaN|Inf).*, so its update was not/);
      assert.match(
        e.message,
        /the last checkpoint with finite weights is \S+step-00000002 \(resume from it with a lower/,
      );
      return true;
    });
    const after = listCheckpoints(root);
    assert.deepEqual(
      after.map((c) => c.step),
      [1, 2],
      'no checkpoint of the diverged step',
    );
    after.forEach((c, i) => assert.ok(readFileSync(path.join(c.dir, 'trainable.safetensors')).equals(kept[i]!)));
    assert.ok(final().equals(finalBefore), 'final/ is still the model of the run that ended well');
    const steps = readFileSync(path.join(cfg.output, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === 'train')
      .map((r) => r.step);
    assert.deepEqual(steps, [1, 2], 'the diverged step is not logged');
  },
);

test('"rollout.queries" above the training queries is refused at start, naming what to set', async () => {
  const { dir, raw } = await fixture();
  const refused = (name: string, over: Record<string, unknown>, re: RegExp): void => {
    const file = writeConfig(path.join(dir, `${name}.json`), { ...raw, output: name, ...over });
    const r = runCli(['train', 'rl', '--config', file, '--quiet']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(existsSync(path.join(dir, name)), false, 'a refused start leaves no run folder');
  };
  // the toy split has 7 queries to train on (its eighth has no positive in the corpus)
  const rollout = { ...(raw.rollout as object), queries: 8 };
  refused(
    'all',
    { rollout },
    // named in the config file, as a key its reading refuses is
    new RegExp(
      '^search-r3: \\S+all\\.json: "rollout\\.queries" is 8, but .*beir split train has only 7 training queries, ' +
        'so no step could take 8: set rollout\\.queries to 7 or fewer\\n$',
    ),
  );
  refused(
    'cut',
    { rollout, data: { beir: 'beir', split: 'train', maxQueries: 5 } },
    new RegExp(
      '"rollout\\.queries" is 8, but "data\\.maxQueries" 5 keeps only 5 training queries, .*: ' +
        'set rollout\\.queries to 5 or fewer, or raise data\\.maxQueries$',
      'm',
    ),
  );
});

test('with data.maxQueries the skipped and missing counts are of the queries looked at', async () => {
  const { dir, raw } = await fixture();
  // the toy split's last query (q7) is judged against a document not in the corpus; the first 5 all have theirs
  const file = writeConfig(path.join(dir, 'few.json'), {
    ...raw,
    steps: 1,
    data: { beir: 'beir', split: 'train', maxQueries: 5 },
  });
  const r = runCli(['train', 'rl', '--config', file]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /data: 5 queries \(0 skipped: no positive in the corpus; 0 judged documents missing\)/);
  assert.match(r.stdout, /; 5 queries \(0 skipped: no positive in the corpus\), /);
});
