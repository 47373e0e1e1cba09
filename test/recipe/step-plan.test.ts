/** The recipe's make rule: what runs after a kill, after outputs were deleted, and after a step changed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type StepStatus, stepsThatMayRun } from '../../src/recipe/step-plan.js';

const NEEDS: Record<string, string[]> = {
  corpus: [],
  tokenizer: ['corpus'],
  lm: ['corpus', 'tokenizer'],
  stage1: ['lm'],
  package: ['stage1'],
  card: ['corpus', 'package'],
};
const TARGETS = ['package', 'card'];
const steps = (notDone: string[], targets = TARGETS): StepStatus[] =>
  Object.entries(NEEDS).map(([name, needs]) => ({
    name,
    needs,
    done: !notDone.includes(name),
    target: targets.includes(name),
  }));
const plan = (notDone: string[], changed: string[] = [], from = 0): string[] =>
  [...stepsThatMayRun(steps(notDone).slice(from), new Set(changed))].sort();

test('a fresh run runs every step; a finished one none', () => {
  assert.deepEqual(plan(Object.keys(NEEDS)), Object.keys(NEEDS).sort());
  assert.deepEqual(plan([]), []);
});

test('a step killed midway runs again, and so may every step that reads it, not the ones before', () => {
  assert.deepEqual(plan(['stage1', 'package', 'card']), ['card', 'package', 'stage1']);
});

test('an output deleted after use is not rebuilt while what read it is done', () => {
  assert.deepEqual(plan(['corpus', 'lm']), []);
  // ... but it is when a step that runs reads it: the card needs the corpus's manifest
  assert.deepEqual(plan(['corpus', 'lm', 'card']), ['card', 'corpus', 'lm', 'package', 'stage1', 'tokenizer']);
  // once the corpus came back the same, nothing that read it is stale, and lm's output stays gone
  assert.deepEqual(plan(['corpus', 'lm', 'card'], [], 1), ['card']);
  // came back different: all that read it, directly or not, runs again
  assert.deepEqual(plan(['corpus', 'lm', 'card'], ['corpus'], 1), ['card', 'lm', 'package', 'stage1', 'tokenizer']);
});

test('a target not done runs, with what it reads; with --until, the step named is the target', () => {
  // the model folder holds another model: it is packaged again, and what reads it may be stale
  assert.deepEqual(plan(['package']), ['card', 'package']);
  const untilLm = steps(['corpus', 'tokenizer', 'lm', 'stage1', 'package', 'card'], ['lm']).slice(0, 3);
  assert.deepEqual([...stepsThatMayRun(untilLm, new Set())].sort(), ['corpus', 'lm', 'tokenizer']);
});
