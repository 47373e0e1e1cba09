/**
 * The record of the step a recipe runs (cli/recipe-guard.ts) is what a rerun after a kill waits on: a step that
 * record cannot name is not run, and the recipe says why in one sentence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../src/cli/command.js';
import { StepRunner } from '../../src/cli/recipe.js';
import { readOnlyMount } from '../helpers/unwritable.js';
import { tempDir } from '../helpers/train-fixtures.js';

/** The pids of this process's children that are still running (not yet reaped). */
function runningChildren(): number[] {
  const r = spawnSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
}

test('a step whose record cannot be written is stopped before it does anything, in one sentence', async (t) => {
  const dir = tempDir('recipe-step-record');
  const work = path.join(dir, 'work');
  mkdirSync(work);
  const mount = readOnlyMount(work);
  if (mount === null) {
    rmSync(dir, { recursive: true, force: true });
    return t.skip('needs root, to mount a read-only file system');
  }
  const text = path.join(dir, 'text.txt');
  writeFileSync(text, 'a few words to learn a tokenizer from, a few words more\n');
  const out = path.join(dir, 'tokenizer');
  const steps = new StepRunner(true, undefined, () => {}, path.join(work, 'recipe-step.json'));
  try {
    const run = steps.run(['tokenizer', 'train', '--input', text, '--vocab-size', '260', '--out', out]);
    await assert.rejects(run, (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(
        e.message,
        `${path.join(work, 'recipe-step.json')} could not be written (the file system is read-only (EROFS)), so ` +
          'search-r3 tokenizer train was not run: a run of the recipe after this one is killed finds the step it ' +
          'left running by that record; write to another file system, then run the same command again (finished ' +
          'steps are kept)',
      );
      return true;
    });
    assert.deepEqual(runningChildren(), [], 'the step is not left running');
    assert.ok(!existsSync(out), 'the step wrote nothing');
  } finally {
    steps.close();
    mount.unmount();
    rmSync(dir, { recursive: true, force: true });
  }
});
