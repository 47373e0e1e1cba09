/**
 * The number options' parsers every command shares: an empty or blank value, trailing letters and a value
 * outside the range are refused in one sentence naming the option, never read as 0 (Number('') is 0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  fractionOption,
  intAtLeast,
  intInRange,
  nonNegativeInt,
  nonNegativeNumber,
  numberOption,
  positiveInt,
  positiveNumber,
  seedOption,
  unitIntervalOption,
} from '../../src/cli/args.js';
import { UserError } from '../../src/cli/command.js';
import { parseArgs } from '../../src/cli/parse-options.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot, sharedData } from '../helpers/repo.js';

const SEEDS = 'an integer in [0, 4294967295]';

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
  assert.equal(seedOption('4294967295'), 4294967295);
  refused(() => seedOption('-1'), `--seed must be ${SEEDS} (got '-1').`);
  assert.equal(intInRange('60000', 'batch-wait-ms', 0, 60_000), 60_000);
  refused(
    () => intInRange('1e12', 'batch-wait-ms', 0, 60_000),
    "--batch-wait-ms must be an integer in [0, 60000] (got '1e12').",
  );
  assert.equal(positiveNumber(undefined, 'shard-mb'), undefined);
});

test('commands refuse an empty number option in one sentence before any work, not as 0', () => {
  const out = path.join(os.tmpdir(), `args-test-${process.pid}`);
  const cases: Array<[string[], string]> = [
    [['corpus', 'pairs', '--out', `${out}.jsonl`, '--max-terms', ''], "--max-terms must be an integer ≥ 0 (got '')."],
    [['corpus', 'pairs', '--out', `${out}.jsonl`, '--seed', '1x'], `--seed must be ${SEEDS} (got '1x').`],
    [
      ['corpus', 'build', '--data', sharedData, '--out', out, '--valid-fraction', ''],
      "--valid-fraction must be a fraction in [0, 1) (got '').",
    ],
    [['corpus', 'build', '--data', sharedData, '--out', out, '--seed', ''], `--seed must be ${SEEDS} (got '').`],
    // taken modulo 2³², a larger seed would draw what a smaller one does
    [
      ['corpus', 'build', '--data', sharedData, '--out', out, '--seed', '4294967296'],
      `--seed must be ${SEEDS} (got '4294967296').`,
    ],
    [
      ['corpus', 'build', '--data', sharedData, '--out', out, '--shard-mb', ''],
      "--shard-mb must be a number > 0 (got '').",
    ],
    // before the config and its data are read
    [
      ['mine', '--config', `${out}.json`, '--out', `${out}.jsonl`, '--negatives', '2.5'],
      "--negatives must be an integer ≥ 0 (got '2.5').",
    ],
    [
      ['mine', '--config', `${out}.json`, '--out', `${out}.jsonl`, '--window', '1:1e9'],
      "--window must be 'a:b', two whole numbers in digits, 1 ≤ a ≤ b (got '1:1e9').",
    ],
    [['search', '--index', out, ' '], 'the query is empty; give the words to search for.'],
    // with --reasoning off it also said that the value it then refused had no effect
    [['search', '--index', out, '--temperature', 'NaN', 'q'], "--temperature must be a number ≥ 0 (got 'NaN')."],
    [['search', '--index', out, '--reasoning', 'off', '--seed', '1x', 'q'], `--seed must be ${SEEDS} (got '1x').`],
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

test('an input given twice with two values is refused by name, nothing of the run made; others take the last', () => {
  const options = {
    input: { type: 'string' },
    k: { type: 'string', short: 'k' },
    delete: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  } as const;
  const parse = (args: string[]) => parseArgs({ args, options, allowPositionals: true });
  refused(
    () => parse(['--input', 'a.jsonl', '--input=b.jsonl']),
    "--input is given twice ('a.jsonl' and 'b.jsonl') and takes one value; give it once.",
  );
  // a wrapper appends an option to override its default
  assert.equal(parse(['-k', '3', '--k', '5']).values.k, '5');
  // the same value twice, a flag twice and a `multiple` option mean one thing each
  const { values, positionals } = parse([
    '--k',
    '3',
    '-k',
    '3',
    '--json',
    '--json',
    '--delete',
    'a',
    '--delete',
    'b',
    'q',
  ]);
  assert.deepEqual({ ...values }, { k: '3', json: true, delete: ['a', 'b'] });
  assert.deepEqual(positionals, ['q']);
  assert.equal('tokens' in parse([]), false);

  const out = path.join(os.tmpdir(), `args-twice-${process.pid}`);
  const r = runCli(['index', '--model', out, '--input', 'a.jsonl', '--input', 'b.jsonl', '--out', out]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(
    r.stderr,
    "search-r3: --input is given twice ('a.jsonl' and 'b.jsonl') and takes one value; give it once.\n",
  );
  assert.equal(existsSync(out), false);
  // every option that names what a command reads: eval read only the last --dataset of two
  const twice: [string[], string][] = [
    [['eval', '--dataset', 'a', '--dataset', 'b', '--retriever', 'bm25'], 'dataset'],
    [['eval', '--qrels', 'a', '--run', 'r1', '--run', 'r2'], 'run'],
    [['search', '--index', 'a', '--index', 'b', 'q'], 'index'],
    [['mine', '--config', 'a.json', '--config', 'b.json', '--out', 'm.jsonl'], 'config'],
  ];
  for (const [args, option] of twice) {
    const twiceRun = runCli(args, { SEARCH_R3_BACKEND: 'js' });
    assert.equal(twiceRun.status, 2, args.join(' '));
    assert.match(twiceRun.stderr, new RegExp(`^search-r3: --${option} is given twice \\('`), args.join(' '));
  }
});

test('--version prints the version of package.json', () => {
  const r = runCli(['--version']);
  assert.equal(r.status, 0, r.stderr);
  const { version } = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.equal(r.stdout, `search-r3 ${version}\n`);
});
