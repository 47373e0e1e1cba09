/**
 * The dashboard's reader of run folders: one run folder whose files are odd (a folder where metrics.jsonl or
 * evaluation.md goes) is that run's problem, and every other run is still listed and read; a run can be read
 * by its id before the runs were listed (a page opened at a run's address on a fresh dashboard).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RunWatch } from '../../src/train/run-watch.js';
import { tempDir } from '../helpers/train-fixtures.js';

const RECORD = { type: 'train', step: 1, loss: 2.5 };

/** Run folders: good (one record), odd-log (metrics.jsonl a folder), odd-eval (evaluation.md a folder). */
function runFolders(): string[] {
  const root = tempDir('run-watch');
  const [good, oddLog, oddEval] = ['good', 'odd-log', 'odd-eval'].map((n) => path.join(root, n));
  mkdirSync(good!);
  writeFileSync(path.join(good!, 'metrics.jsonl'), `${JSON.stringify(RECORD)}\n`);
  writeFileSync(path.join(good!, 'evaluation.md'), '| a | b |\n');
  mkdirSync(path.join(oddLog!, 'metrics.jsonl'), { recursive: true });
  mkdirSync(path.join(oddEval!, 'evaluation.md'), { recursive: true });
  writeFileSync(path.join(oddEval!, 'metrics.jsonl'), `${JSON.stringify(RECORD)}\n`);
  return [good!, oddLog!, oddEval!];
}

test("a folder where metrics.jsonl or evaluation.md goes is that run's problem; the other runs are shown", () => {
  const watch = new RunWatch(runFolders());
  const list = watch.list();
  assert.deepEqual(
    list.runs.map((r) => r.name),
    ['good', 'odd-log', 'odd-eval'],
  );
  assert.deepEqual(list.evaluations, [{ title: 'good: evaluation', markdown: '| a | b |\n' }]);
  assert.deepEqual(list.problems, ['odd-eval: evaluation.md is not a file, so its evaluation is not shown.']);
  const [good, oddLog, oddEval] = list.runs.map((r) => watch.read(r.id, 0, null)!);
  assert.deepEqual(good!.records, [RECORD]);
  assert.equal(good!.problem, null);
  assert.deepEqual(oddLog!.records, []);
  assert.equal(oddLog!.problem, 'odd-log/metrics.jsonl is not a file.');
  assert.deepEqual(oddEval!.records, [RECORD]);
});

test('a run is read by its id on a fresh watch, before any list', () => {
  const folders = runFolders().slice(0, 2);
  const fresh = new RunWatch(folders);
  const ids = new RunWatch(folders).list().runs.map((r) => r.id);
  const first = fresh.read(ids[0]!, 0, null);
  assert.deepEqual(first?.records, [RECORD]);
  assert.equal(fresh.read(ids[1]!, 0, null)?.problem, 'odd-log/metrics.jsonl is not a file.');
  assert.equal(fresh.read('run9', 0, null), undefined, 'an id no folder has');
  assert.deepEqual(
    fresh.list().runs.map((r) => r.id),
    ids,
    'the ids a list gives are the ones read by',
  );
});
