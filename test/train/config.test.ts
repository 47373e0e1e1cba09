/**
 * The config files of the three trainers are read alike: a missing file, a file that is not JSON and an
 * unknown key are one ConfigError starting with the file's name, and the fine-tuning stages fill a `lora`
 * section from the same defaults.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../src/train/config-merge.js';
import { loadLmConfig } from '../../src/train/lm/config.js';
import { loadRlConfig } from '../../src/train/rl/config.js';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { tempDir, writeConfig } from '../helpers/train-fixtures.js';

const required = {
  lm: { tokenizer: 't', output: 'o', data: { train: ['x'] } },
  sft: { model: 'm', output: 'o', data: [{ type: 'jsonl', path: 'x' }] },
  rl: { model: 'm', output: 'o', data: { beir: 'b' } },
};
const loaders = { lm: loadLmConfig, sft: loadSftConfig, rl: loadRlConfig };

test('train lm, sft and rl configs: a missing file, bad JSON, an unknown key, a bad seed name the file', () => {
  const dir = tempDir('configs');
  for (const [name, load] of Object.entries(loaders)) {
    const file = path.join(dir, `${name}.json`);
    const refused = (re: RegExp): void => {
      assert.throws(
        () => load(file),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
        name,
      );
    };
    refused(new RegExp(`^${file}: no such file$`));
    writeFileSync(file, '{"output": ');
    refused(new RegExp(`^${file}: not valid JSON \\(`));
    writeConfig(file, { ...required[name as keyof typeof required], ouput: 'o' });
    refused(new RegExp(`^${file}: "ouput" is not a config key`));
    // a number JSON.parse reads as Infinity is named as such, not as the null JSON.stringify makes of it
    writeFileSync(file, JSON.stringify({ ...required[name as keyof typeof required], seed: 7 }).replace('7', '1e999'));
    refused(new RegExp(`^${file}: "seed" must be a finite number, got Infinity`));
    // a seed the generators would take modulo 2^32 (-1 as 4294967295, 2^32 as 0) is refused with a fraction
    for (const seed of [1.5, -1, 2 ** 32]) {
      writeConfig(file, { ...required[name as keyof typeof required], seed });
      refused(new RegExp(`^${file}: "seed" must be an integer in \\[0, 4294967295\\], got ${seed}$`));
    }
    if (name === 'sft') {
      writeConfig(file, { ...required.sft, data: [{ type: 'pseudo-queries', path: 'x', queries: 'title', seed: -1 }] });
      refused(new RegExp(`^${file}: "data\\[0\\]\\.seed" must be an integer in \\[0, 4294967295\\], got -1$`));
    }
    // saved by an editor that begins UTF-8 with a byte-order mark: read as the JSON it is
    writeFileSync(file, '\uFEFF' + JSON.stringify({ ...required[name as keyof typeof required], seed: 7 }));
    assert.equal(load(file).seed, 7, name);
  }
});

test('a key given twice in a config is refused naming its path: JSON.parse would keep only the last', () => {
  const dir = tempDir('configs-twice');
  for (const [name, load] of Object.entries(loaders)) {
    const file = path.join(dir, `${name}.json`);
    const text = JSON.stringify({ ...required[name as keyof typeof required], seed: 7 }, null, 1);
    const refused = (json: string, key: string): void => {
      writeFileSync(file, json);
      const said = `${file}: "${key}" is given twice, and only its last value would be read; give each key once`;
      assert.throws(
        () => load(file),
        (e: unknown) => e instanceof ConfigError && e.message === said,
        name,
      );
    };
    refused(text.replace('"seed": 7', '"seed": 7, "seed": 8'), 'seed');
    refused(text.replace('"seed": 7', '"optimizer": {"lr": 1e-3}, "seed": 7, "optimizer": {"lr": 2e-3}'), 'optimizer');
    refused(
      text.replace('"seed": 7', '"seed": 7, "checkpoint": {"every": 5, "keep": 1, "every": 6}'),
      'checkpoint.every',
    );
    // the same key in two objects of an array is no repeat, nor is a key that only a string holds
    const same = text.replace('"seed": 7', '"seed": 7, "templates": {"querySystem": "\\"seed\\": 1, \\"seed\\""}');
    writeFileSync(file, name === 'lm' ? text : same);
    assert.equal(load(file).seed, 7, name);
  }
  const sources = '[{"type": "jsonl", "path": "a"}, {"type": "jsonl", "path": "b"}]';
  writeFileSync(path.join(dir, 'two.json'), `{"model": "m", "output": "o", "data": ${sources}}`);
  assert.equal(loadSftConfig(path.join(dir, 'two.json')).data.length, 2);
  writeFileSync(
    path.join(dir, 'two.json'),
    `{"model": "m", "output": "o", "data": [{"type": "jsonl", "path": "a", "path": "b"}]}`,
  );
  assert.throws(() => loadSftConfig(path.join(dir, 'two.json')), /"data\[0\]\.path" is given twice/);
});

test('stage 1 and stage 2 fill lora from the same defaults; none or null is full fine-tuning', () => {
  const dir = tempDir('lora');
  for (const name of ['sft', 'rl'] as const) {
    const file = writeConfig(path.join(dir, `${name}.json`), { ...required[name], lora: { rank: 4 } });
    const lora = loaders[name](file).lora;
    const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    assert.deepEqual(lora, { rank: 4, alpha: 16, dropout: 0, targets }, name);
    writeConfig(file, { ...required[name], lora: { rank: 4, scale: 2 } });
    assert.throws(() => loaders[name](file), /"lora.scale" is not a config key/, name);
    writeConfig(file, { ...required[name], lora: null });
    assert.equal(loaders[name](file).lora, null, name);
    writeConfig(file, required[name]);
    assert.equal(loaders[name](file).lora, null, name);
  }
});

test('a section or source of another shape is named in quotes with what was given; none passes as empty', () => {
  const dir = tempDir('shapes');
  const said = (name: keyof typeof loaders, over: object): string => {
    const file = writeConfig(path.join(dir, `${name}.json`), { ...required[name], ...over });
    try {
      loaders[name](file);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.message.slice(file.length + 2);
    }
    return 'accepted';
  };
  for (const name of ['sft', 'rl'] as const) {
    // an array is an object to typeof: [] read as no templates, ["..."] as a key "0"
    assert.equal(said(name, { templates: [] }), '"templates" must be a JSON object, got an array');
    assert.equal(said(name, { templates: ['Embed this'] }), '"templates" must be a JSON object, got an array');
    assert.equal(said(name, { lora: true }), '"lora" must be a JSON object, got true');
    assert.equal(said(name, { optimizer: [1e-4] }), '"optimizer" must be a JSON object, got an array');
  }
  assert.equal(said('rl', { data: 'b' }), '"data" must be a JSON object, got "b"');
  assert.equal(said('lm', { model: null }), '"model" must be a JSON object, got null');
  assert.equal(said('sft', { batch: { queries: 4 }, eval: 'dev' }), '"eval" must be a JSON object, got "dev"');
  assert.equal(said('sft', { data: [['jsonl', 'x']] }), '"data[0]" must be a JSON object, got an array');
  assert.equal(
    said('sft', { data: [{ path: 'x' }] }),
    '"data[0].type" must be one of beir, jsonl, pairs, climate-fever, pseudo-queries, and is missing',
  );
});

test('stage 1 and stage 2 refuse a directResponse template without exactly one embed token, naming the field', () => {
  const dir = tempDir('templates');
  for (const name of ['sft', 'rl'] as const) {
    const file = path.join(dir, `${name}.json`);
    for (const directResponse of ['The embedding is.', 'The embedding is <|embed_token|> <|embed_token|>.'])
      assert.throws(
        () => loaders[name](writeConfig(file, { ...required[name], templates: { directResponse } })),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message.startsWith(`${file}: "templates.directResponse" must contain <|embed_token|> exactly once`),
        `${name} ${directResponse}`,
      );
    const own = 'Embedding: <|embed_token|>';
    const cfg = loaders[name](writeConfig(file, { ...required[name], templates: { directResponse: own } }));
    assert.equal(cfg.templates.directResponse, own, name);
  }
});

test('settings that would do nothing or the opposite are refused naming the field and why', () => {
  const dir = tempDir('settings');
  const refused = (name: keyof typeof loaders, over: object, re: RegExp): void => {
    const file = writeConfig(path.join(dir, `${name}.json`), { ...required[name], ...over });
    assert.throws(
      () => loaders[name](file),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      `${name} ${JSON.stringify(over)}`,
    );
  };
  // a minLr above lr: the "decay" would raise the learning rate
  for (const name of ['lm', 'sft', 'rl'] as const)
    refused(
      name,
      { optimizer: { lr: 1e-5, minLr: 1e-3 } },
      /"optimizer\.minLr" \(0\.001\) must not exceed "optimizer\.lr"/,
    );
  // a small lr given alone is not refused for train lm's default floor: the floor left out is a tenth of lr
  const small = loaders.lm(writeConfig(path.join(dir, 'lm-small.json'), { ...required.lm, optimizer: { lr: 5e-5 } }));
  assert.equal(small.optimizer.minLr, 5e-6);
  assert.equal(loaders.lm(writeConfig(path.join(dir, 'lm-default.json'), required.lm)).optimizer.minLr, 1e-4);
  // stage 1 with only the KL term: its gradient is 0 at the starting model, so no step would change it
  refused(
    'sft',
    { loss: { sft: 0, infonce: 0, triplet: 0 } },
    /"loss\.sft", "loss\.infonce" and "loss\.triplet" are all 0, so nothing is trained/,
  );
  // GRPO: one response, or identical (greedy) ones, give every advantage 0
  refused('rl', { rollout: { group: 1 } }, /"rollout\.group" must be at least 2, got 1: .* every advantage 0/);
  refused(
    'rl',
    { rollout: { temperature: 0 } },
    /"rollout\.temperature" must be > 0, got 0: .* sampled.* every advantage/,
  );
});

test('stage 1 refuses a dev evaluation on the split of a folder it trains on, under any name of that folder', () => {
  const dir = tempDir('eval-leak');
  mkdirSync(path.join(dir, 'beir'));
  symlinkSync(path.join(dir, 'beir'), path.join(dir, 'alias'));
  const cfg = (evalSplit: string): string =>
    writeConfig(path.join(dir, 'sft.json'), {
      ...required.sft,
      data: [
        { type: 'jsonl', path: 'x' },
        { type: 'beir', path: 'beir', split: 'train' },
      ],
      eval: { beir: 'alias', split: evalSplit },
    });
  const leak = /"eval" reads split "train" of \S+alias, which data\[1\] trains on: dev nDCG@10 would be measured on/;
  assert.throws(
    () => loadSftConfig(cfg('train')),
    (e: unknown) => e instanceof ConfigError && leak.test(e.message),
  );
  assert.equal(loadSftConfig(cfg('dev')).eval?.split, 'dev', 'another split of the same folder is a dev set');
});
