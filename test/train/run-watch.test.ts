/**
 * The dashboard's reader of run folders: one run folder whose files are odd (a folder where metrics.jsonl or
 * evaluation.md goes) is that run's problem, and every other run is still listed and read; a run can be read
 * by its id before the runs were listed (a page opened at a run's address on a fresh dashboard); a line too long
 * for one read is counted as one damaged line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { METRICS_READ_LIMIT, RunWatch } from '../../src/train/run-watch.js';
import { tempDir } from '../helpers/train-fixtures.js';
import { repoRoot } from '../helpers/repo.js';

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

test('a line longer than a whole read is one damaged line, however many reads it spans', () => {
  const run = path.join(tempDir('run-watch-long'), 'run');
  mkdirSync(run);
  for (const size of [METRICS_READ_LIMIT + 1000, 2 * METRICS_READ_LIMIT + 10]) {
    const second = { ...RECORD, step: 2 };
    const log = `${JSON.stringify(RECORD)}\n${'x'.repeat(size)}\n${JSON.stringify(second)}\n`;
    writeFileSync(path.join(run, 'metrics.jsonl'), log);
    const watch = new RunWatch([run]);
    const id = watch.list().runs[0]!.id;
    const records: unknown[] = [];
    let damaged = 0;
    let from = 0;
    let file: string | null = null;
    for (let reads = 0; reads < 10; reads++) {
      const u: NonNullable<ReturnType<RunWatch['read']>> = watch.read(id, from, file)!;
      records.push(...u.records);
      damaged += u.damagedLines;
      [from, file] = [u.next, u.file];
      if (!u.more) break;
    }
    assert.deepEqual(records, [RECORD, second], `a line of ${size} bytes`);
    assert.equal(damaged, 1, `a line of ${size} bytes`);
    assert.equal(from, Buffer.byteLength(log));
  }
});

test("a model folder the recipe wrote (its recipe.json beside evaluation.md) shows that evaluation's tables", () => {
  const shipped = path.join(repoRoot, 'models', 'search-r3-default');
  const list = new RunWatch([shipped]).list();
  assert.deepEqual(list.problems, []);
  assert.deepEqual(list.evaluations, [
    { title: 'search-r3-default: evaluation', markdown: readFileSync(path.join(shipped, 'evaluation.md'), 'utf8') },
  ]);
});
