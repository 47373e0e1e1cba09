/**
 * The number options' parsers every command shares: an empty or blank value, trailing letters and a value
 * outside the range are refused in one sentence naming the option, never read as 0 (Number('') is 0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import {
  fractionOption,
  intAtLeast,
  nonNegativeInt,
  nonNegativeNumber,
  numberOption,
  positiveInt,
  positiveNumber,
  unitIntervalOption,
} from '../../src/cli/args.js';
import { UserError } from '../../src/cli/command.js';
import { runCli } from '../helpers/cli.js';
import { sharedData } from '../helpers/repo.js';

const refused = (f: () => unknown, message: string): void =>
  assert.throws(f, (e: unknown) => e instanceof UserError && e.message === message, message);

test("'', ' ', '1x' and '-1' are refused by name; numbers in range are read; no value is undefined", () => {
  for (const bad of ['', ' ', '1x', '-1']) {
    refused(() => nonNegativeInt(bad, 'max-terms'), `--max-terms must be an integer ≥ 0 (got '${bad}').`);
    refused(() => positiveInt(bad, 'k'), `--k must be a positive integer (got '${bad}').`);
    refused(() => nonNegativeNumber(bad, 'temperature'), `--temperature must be a number ≥ 0 (got '${bad}').`);
    refused(
      () => fractionOption(bad, 'valid-fraction'),
      `--valid-fraction must be a fraction in [0, 1) (got '${bad}').`,
    );
    refused(() => unitIntervalOption(bad, 'b'), `--b must be a number in [0, 1] (got '${bad}').`);
    refused(
      () => positiveNumber(bad, 'max-seconds', 'a number of seconds'),
      `--max-seconds must be a number of seconds > 0 (got '${bad}').`,
    );
  }
  for (const bad of ['', '1x', '1.5'])
    refused(
      () => numberOption(bad, 'level', 'an integer', Number.isInteger),
      `--level must be an integer (got '${bad}').`,
    );
  refused(() => intAtLeast('1', 'steps', 2), "--steps must be an integer ≥ 2 (got '1').");
  refused(() => nonNegativeInt('2.5', 'seed'), "--seed must be an integer ≥ 0 (got '2.5').");
  refused(() => fractionOption('1', 'valid-fraction'), "--valid-fraction must be a fraction in [0, 1) (got '1').");
  refused(() => positiveNumber('0', 'shard-mb'), "--shard-mb must be a number > 0 (got '0').");
  refused(() => positiveInt('0', '-k'), "-k must be a positive integer (got '0').");
  assert.equal(nonNegativeInt('0', 'seed'), 0);
  assert.equal(nonNegativeInt(' 7 ', 'seed'), 7);
  assert.equal(intAtLeast('2', 'steps', 2), 2);
  assert.equal(fractionOption('0.05', 'valid-fraction'), 0.05);
  refused(() => unitIntervalOption('1.5', 'b'), "--b must be a number in [0, 1] (got '1.5').");
  assert.equal(unitIntervalOption('0', 'b'), 0);
  assert.equal(unitIntervalOption('1', 'b'), 1);
  assert.equal(positiveNumber('0.5', 'shard-mb'), 0.5);
  assert.equal(numberOption('-2', 'level', 'an integer', Number.isInteger), -2);
  assert.equal(nonNegativeInt(undefined, 'seed'), undefined);
  assert.equal(positiveNumber(undefined, 'shard-mb'), undefined);
});

test('commands refuse an empty number option in one sentence before any work, not as 0', () => {
  const out = path.join(os.tmpdir(), `args-test-${process.pid}`);
  const cases: Array<[string[], string]> = [
    [['corpus', 'pairs', '--out', `${out}.jsonl`, '--max-terms', ''], "--max-terms must be an integer ≥ 0 (got '')."],
    [['corpus', 'pairs', '--out', `${out}.jsonl`, '--seed', '1x'], "--seed must be an integer ≥ 0 (got '1x')."],
    [
      ['corpus', 'build', '--data', sharedData, '--out', out, '--valid-fraction', ''],
      "--valid-fraction must be a fraction in [0, 1) (got '').",
    ],
    [['corpus', 'build', '--data', sharedData, '--out', out, '--seed', ''], "--seed must be an integer ≥ 0 (got '')."],
    [
      ['corpus', 'build', '--data', sharedData, '--out', out, '--shard-mb', ''],
      "--shard-mb must be a number > 0 (got '').",
    ],
    [
      ['tokenizer', 'train', '--input', sharedData, '--vocab-size', '1000', '--min-frequency', '', '--out', out],
      "--min-frequency must be a positive integer (got '').",
    ],
  ];
  for (const [args, sentence] of cases) {
    const r = runCli(args, { SEARCH_R3_BACKEND: 'js' });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, `search-r3: ${sentence}\n`, args.join(' '));
  }
});
