/**
 * A step's config in <work>/configs/ as the recipe writes it again: a memory setting edited there is kept (the
 * advice after running out of memory), any other edit is refused rather than overwritten.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROFILES, recipePaths } from '../../src/recipe/recipe-profiles.js';
import { type ConfigRecord, stepConfig } from '../../src/recipe/step-config.js';
import { sharedData } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const dir = tempDir('step-config');
const p = recipePaths(path.join(dir, 'work'), sharedData);
const profile = PROFILES.tiny!;
const file = path.join(dir, 'stage1.json');
const stage1 = profile.stage1(p) as Json;
const lm = profile.lm(p) as Json;

/** The file as the recipe wrote it, then `edit` made to it by hand; the record of what the recipe wrote. */
function written(name: string, config: Json, edit: (c: Json) => void): ConfigRecord {
  rmSync(file, { force: true });
  const first = stepConfig(file, name, config, undefined);
  const c = JSON.parse(first.text) as Json;
  edit(c);
  writeFileSync(file, JSON.stringify(c, null, 2));
  return first.record;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test("no file: the profile's config, recorded by its text's hash", () => {
  rmSync(file, { force: true });
  const c = stepConfig(file, 'stage1', stage1, undefined);
  assert.deepEqual(c.config, stage1);
  assert.equal(c.text, JSON.stringify(stage1, null, 2) + '\n');
  assert.match(c.record.sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(c.record.kept, {});
  assert.deepEqual(c.notes, []);
});

test("the recipe's own file is written anew with the profile's settings (the work folder moved): no note", () => {
  rmSync(file, { force: true });
  const first = stepConfig(file, 'stage1', stage1, undefined);
  writeFileSync(file, first.text);
  const moved = profile.stage1(recipePaths(path.join(dir, 'elsewhere'), sharedData)) as Json;
  const c = stepConfig(file, 'stage1', moved, first.record);
  assert.deepEqual(c.config, moved);
  assert.deepEqual(c.notes, []);
});

test('an edited batch.subBatch is kept, said, and kept by later writes until it is put back or removed', () => {
  const record = written('stage1', stage1, (c) => (c.batch.subBatch = 2));
  const c = stepConfig(file, 'stage1', stage1, record);
  assert.equal((c.config as Json).batch.subBatch, 2);
  assert.deepEqual(c.record.kept, { 'batch.subBatch': 2 });
  assert.deepEqual(c.notes, [`  keeps batch.subBatch = 2 from ${file} (sequences per forward pass)`]);
  // the next run finds the file as the recipe wrote it: the setting stays
  writeFileSync(file, c.text);
  const again = stepConfig(file, 'stage1', stage1, c.record);
  assert.equal((again.config as Json).batch.subBatch, 2);
  // put back to the profile's value by hand: nothing is kept any more
  const back = JSON.parse(again.text) as Json;
  back.batch.subBatch = stage1.batch.subBatch;
  writeFileSync(file, JSON.stringify(back));
  const undone = stepConfig(file, 'stage1', stage1, again.record);
  assert.deepEqual(undone.config, stage1);
  assert.deepEqual(undone.record.kept, {});
  // or the file removed: the profile's config again, though the record kept the edit
  rmSync(file);
  const removed = stepConfig(file, 'stage1', stage1, again.record);
  assert.deepEqual(removed.config, stage1);
  assert.deepEqual(removed.record.kept, {});
});

test('any other edit is refused, naming the key, both values and what the recipe keeps', () => {
  const record = written('stage1', stage1, (c) => {
    c.batch.subBatch = 2;
    c.optimizer.lr = 0.5;
  });
  assert.throws(
    () => stepConfig(file, 'stage1', stage1, record),
    (e: Error) => {
      assert.equal(e.name, 'RecipeError');
      assert.equal(
        e.message,
        `${file} was edited since the recipe wrote it: optimizer.lr is 0.5 there, the profile's ` +
          `${stage1.optimizer.lr}; the recipe trains its profile's settings and keeps of an edit only the settings ` +
          'that decide how much memory a step takes (batch.subBatch): to train with this edit, copy the config, give ' +
          `it an "output" of its own and run the step's command by hand; or remove ${file} for the recipe to write ` +
          'its own',
      );
      return true;
    },
  );
  // a key added, and one taken away
  const more = written('stage1', stage1, (c) => {
    c.extra = 1;
    delete c.seed;
  });
  assert.throws(
    () => stepConfig(file, 'stage1', stage1, more),
    /: seed is \(none\) there, the profile's \d+; extra is 1 there, the profile's \(none\);/,
  );
  // mining has no memory setting: every edit is refused
  const mine = profile.mine(p) as Json;
  const mined = written('mine', mine, (c) => (c.seed = 99));
  assert.throws(() => stepConfig(file, 'mine', mine, mined), /keeps of an edit nothing \(this step has no setting/);
});

test("train lm's batchSize and accumulation are kept while their product is the profile's", () => {
  const n = lm.batchSize * lm.accumulation;
  const traded = written('lm', lm, (c) => {
    c.batchSize = 1;
    c.accumulation = n;
  });
  const c = stepConfig(file, 'lm', lm, traded);
  assert.deepEqual(c.record.kept, { batchSize: 1, accumulation: n });
  const halved = written('lm', lm, (c) => (c.batchSize = lm.batchSize / 2));
  assert.throws(
    () => stepConfig(file, 'lm', lm, halved),
    new RegExp(
      `batchSize is ${lm.batchSize / 2} there, the profile's ${lm.batchSize};.*\\(batchSize and accumulation ` +
        `while batchSize × accumulation stays ${n}\\)`,
    ),
  );
});

test('an edited file that is not JSON is refused; one the record cannot vouch for is written anew, said', () => {
  const record = written('stage1', stage1, () => {});
  writeFileSync(file, '{"batch": ');
  assert.throws(
    () => stepConfig(file, 'stage1', stage1, record),
    new RegExp(
      `^RecipeError: ${file} was edited since the recipe wrote it and is not JSON \\(.+\\): fix it, or remove`,
    ),
  );
  const c = stepConfig(file, 'stage1', stage1, undefined);
  assert.deepEqual(c.config, stage1);
  assert.match(c.notes[0]!, /is not JSON \(.+\): written anew$/);
});

test('no record of the text written (an older recipe.json): memory settings kept, the rest replaced', () => {
  written('stage1', stage1, (c) => {
    c.batch.subBatch = 3;
    c.optimizer.lr = 0.5;
  });
  const c = stepConfig(file, 'stage1', stage1, undefined);
  assert.equal((c.config as Json).batch.subBatch, 3);
  assert.equal((c.config as Json).optimizer.lr, stage1.optimizer.lr);
  assert.deepEqual(c.notes, [
    `  ${file} differed from the profile's config (optimizer.lr): written anew, as recipe.json records no earlier ` +
      "text of the recipe's to tell an edit by",
    `  keeps batch.subBatch = 3 from ${file} (sequences per forward pass)`,
  ]);
});
