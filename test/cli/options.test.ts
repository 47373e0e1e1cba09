/**
 * The command line itself: an unknown option, an option without its value (or with one it does not
 * take, such as a negative number) and a stray word are one sentence naming it and the command's help,
 * exit code 2, for every command (main.ts turns node's parseArgs errors into that sentence in one place).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commands } from '../../src/cli/commands.js';
import { MODEL_FOLDER_HELP } from '../../src/cli/option-help.js';
import { type CliResult, runCliAsync } from '../helpers/cli.js';
import { inPool } from '../helpers/pool.js';

/**
 * Each command line in its own process, two at a time (each one loads its command's modules, most of its time: CI
 * has two cores); results in order.
 */
function runAll(lines: readonly string[][], env: Record<string, string> = {}): Promise<CliResult[]> {
  return inPool(lines, (line) => runCliAsync(line, env));
}

test(
  'unknown or incomplete options: one sentence naming the option and the command, exit code 2, on every ' + 'command',
  async () => {
    // [the command line, the command it names, what is wrong]
    const cases: [string, string, string][] = [
      ['search --foo', 'search', "unknown option '--foo'"],
      ['index --out', 'index', "option '--out' needs a value"],
      ['search -k', 'search', "option '--k' needs a value"],
      ['serve --port', 'serve', "option '--port' needs a value"],
      ['eval --dataset x stray', 'eval', "unexpected argument 'stray'"],
      ['export gguf --model m --out x.gguf stray', 'export gguf', "unexpected argument 'stray'"],
      ['export merged --model m stray', 'export merged', "unexpected argument 'stray'"],
      ['corpus build --data x stray', 'corpus build', "unexpected argument 'stray'"],
      ['demo --nope', 'demo', "unknown option '--nope'"],
      ['train sft --foo', 'train sft', "unknown option '--foo'"],
      ['train lm --config', 'train lm', "option '--config' needs a value"],
      ['train rl --quiet=1', 'train rl', "option '--quiet' takes no value"],
      ['rlenv audit --bogus', 'rlenv audit', "unknown option '--bogus'"],
      ['export gguf --model', 'export gguf', "option '--model' needs a value"],
      ['recipe evaluate --foo', 'recipe evaluate', "unknown option '--foo'"],
      ['mine --x', 'mine', "unknown option '--x'"],
      ['search -k -3 q', 'search', '-k -3: a negative number is not a value it takes'],
      ['search --max-reasoning -1 q', 'search', '--max-reasoning -1: a negative number is not a value it takes'],
      [
        'search --max-reasoning-tokens -1 q',
        'search',
        '--max-reasoning-tokens -1: a negative number is not a value it takes',
      ],
    ];
    // the JS backend: no note about the native one can come before the sentence
    const runs = await runAll(
      cases.map(([line]) => line.split(' ')),
      { SEARCH_R3_BACKEND: 'js' },
    );
    cases.forEach(([line, command, what], i) => {
      const r = runs[i];
      assert.equal(r.status, 2, `${line}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `search-r3 ${command}: ${what} (see search-r3 ${command} --help)\n`, line);
    });
  },
);

test('SEARCH_R3_BACKEND naming no backend: --help still prints, a command is one sentence, exit code 2', async () => {
  const env = { SEARCH_R3_BACKEND: 'bogus' };
  const said =
    "search-r3: SEARCH_R3_BACKEND must be 'js', 'native' or 'webgpu', not 'bogus'; set it to one of them, " +
    'or unset it.\n';
  const helps = [['--help'], ['search', '--help']];
  const lines = [['corpus', 'build', '--data', 'x'], ['device'], ['search', '--index', 'x', 'q']];
  const runs = await runAll([...helps, ...lines], env);
  for (const r of runs.slice(0, helps.length)) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^search-r3/);
  }
  lines.forEach((line, i) => {
    const r = runs[helps.length + i];
    assert.equal(r.status, 2, `${line.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, said, line.join(' '));
    assert.equal(r.stdout, '');
  });
});

test(
  'a group command without its sub-command, or with an unknown one: one sentence naming them, ' + 'exit code 2',
  async () => {
    const see = (group: string): string => `(see search-r3 ${group} --help).\n`;
    // [the command line, what it says]
    const cases: [string[], string][] = [
      [['recipe'], `recipe needs a sub-command: default or evaluate ${see('recipe')}`],
      [['recipe', 'foo'], `recipe: unknown sub-command 'foo'; choose default or evaluate ${see('recipe')}`],
      [['rlenv'], `rlenv needs a sub-command: audit ${see('rlenv')}`],
      [['rlenv', 'foo'], `rlenv: unknown sub-command 'foo'; choose audit ${see('rlenv')}`],
      [['export'], `export needs a sub-command: gguf or merged ${see('export')}`],
      [['export', '--model', 'm'], `export needs a sub-command: gguf or merged ${see('export')}`],
      [['tokenizer'], `tokenizer needs a sub-command: train ${see('tokenizer')}`],
      [['tokenizer', 'encode'], `tokenizer: unknown sub-command 'encode'; choose train ${see('tokenizer')}`],
      [
        ['tokenizer', '--out', 'x', 'encode'],
        `tokenizer: unknown sub-command 'encode'; choose train ${see('tokenizer')}`,
      ],
      [['corpus'], `corpus needs a sub-command: build or pairs ${see('corpus')}`],
      [['corpus', 'foo'], `corpus: unknown sub-command 'foo'; choose build or pairs ${see('corpus')}`],
      [['train'], `train needs a stage: lm, sft or rl ${see('train')}`],
    ];
    const refusals = await runAll(
      cases.map(([line]) => line),
      { SEARCH_R3_BACKEND: 'js' },
    );
    cases.forEach(([line, said], i) => {
      const r = refusals[i];
      assert.equal(r.status, 2, `${line.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '', line.join(' '));
      assert.equal(r.stderr, `search-r3: ${said}`, line.join(' '));
    });
    const groups = ['recipe', 'rlenv', 'export', 'tokenizer', 'corpus', 'train'];
    const subs = [
      ['export', 'merged', '-h'],
      ['tokenizer', 'train', '--help'],
      ['corpus', 'pairs', '--help'],
    ];
    const [bare, ...helps] = await runAll([[], ...groups.map((g) => [g, '--help']), ...subs]);
    // no command at all: the usage, where errors go
    assert.equal(bare.status, 2);
    assert.equal(bare.stdout, '');
    assert.match(bare.stderr, /^search-r3 — .*\n\nusage: search-r3 <command> \[options\]/);
    // each group's help is still its help, and each sub-command's its own
    groups.forEach((group, i) => {
      const help = helps[i];
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^search-r3 ${group}\\b`));
    });
    subs.forEach((line, i) => {
      const help = helps[groups.length + i];
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^search-r3 ${line[0]} ${line[1]} —`), line.join(' '));
    });
  },
);

test('--help after an unknown sub-command is refused as the sub-command is, not answered with a help', async () => {
  const cases: [string[], string][] = [
    [['tokenizer', 'encode', '--help'], "tokenizer: unknown sub-command 'encode'; choose train"],
    [['export', 'foo', '--help'], "export: unknown sub-command 'foo'; choose gguf or merged"],
    [['corpus', 'foo', '-h'], "corpus: unknown sub-command 'foo'; choose build or pairs"],
    [['train', 'dpo', '--help'], "train: unknown stage 'dpo'; choose lm, sft or rl"],
  ];
  const runs = await runAll(
    cases.map(([line]) => line),
    { SEARCH_R3_BACKEND: 'js' },
  );
  cases.forEach(([line, said], i) => {
    const r = runs[i];
    assert.equal(r.status, 2, `${line.join(' ')}: ${r.stdout}`);
    assert.equal(r.stdout, '', line.join(' '));
    assert.equal(r.stderr, `search-r3: ${said} (see search-r3 ${line[0]} --help).\n`, line.join(' '));
  });
});

test('rlenv audit --help gives the least --steps it takes', async () => {
  const [help, r] = await Promise.all([
    runCliAsync(['rlenv', 'audit', '--help']),
    runCliAsync(['rlenv', 'audit', '--config', 'c.json', '--steps', '1'], { SEARCH_R3_BACKEND: 'js' }),
  ]);
  assert.match(help.stdout, /--steps <n> +steps to run \(default 20; at least 2,/);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, "search-r3: --steps must be an integer ≥ 2 (got '1').\n");
});

test("a command that loads a model says its --model may be a LoRA run's final/ or a whole model", async () => {
  const said = (help: string, flag: string): string => {
    // the option's description: its lines up to the next option, joined
    const lines = help.split('\n');
    const at = lines.findIndex((l) => l.startsWith(`  ${flag} `));
    assert.ok(at >= 0, `no ${flag} line`);
    const end = lines.findIndex((l, i) => i > at && /^ {2}-/.test(l));
    return lines
      .slice(at, end < 0 ? undefined : end)
      .join(' ')
      .replace(/\s+/g, ' ');
  };
  const loading: [string, string][] = [
    ['index', '--model <dir>'],
    ['worker', '--model <dir>'],
    ['serve', '--model <dir>'],
    ['search', '--model <dir>'],
    ['mine', '--model <dir>'],
    ['demo', '--model <dir>'],
    ['eval', '--retriever <model-dir>'],
  ];
  for (const [name, flag] of loading) {
    const entry = commands.find((c) => c.name === name);
    assert.ok(entry, name);
    assert.ok(said((await entry.load()).help, flag).includes(MODEL_FOLDER_HELP), `${name} ${flag}`);
  }
});

test('every help fits a 120-column terminal, the lists of packages and sources wrapped like the rest', async () => {
  for (const entry of commands) {
    const command = await entry.load();
    const helps = [command.help, ...(command.subcommands ?? []).map((s) => command.helpOf?.(s) ?? '')];
    for (const help of helps)
      for (const line of help.split('\n'))
        assert.ok(line.length <= 120, `search-r3 ${entry.name} --help: a line of ${line.length}: ${line}`);
  }
});
