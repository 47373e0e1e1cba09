/**
 * `search-r3 train`: one command whose stages (lm, sft, rl) each explain themselves, and whose group help
 * lists them all; a stage that does not exist or a missing config is one line naming what to do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.js';

const TITLES = {
  lm: 'search-r3 train lm — pretrain a small Qwen2 language model',
  sft: 'search-r3 train sft — stage 1',
  rl: 'search-r3 train rl — stage 2',
};

test("train --help lists the three stages; train <stage> --help (or -h) is that stage's help alone", () => {
  const group = runCli(['train', '--help'], { SEARCH_R3_BACKEND: 'js' });
  assert.equal(group.status, 0, group.stderr);
  for (const stage of ['lm', 'sft', 'rl']) assert.match(group.stdout, new RegExp(`^  ${stage} +\\S`, 'm'), stage);
  for (const title of Object.values(TITLES)) assert.ok(!group.stdout.includes(title), 'no stage help inside the list');
  for (const [stage, title] of Object.entries(TITLES)) {
    for (const flag of ['--help', '-h']) {
      const r = runCli(['train', stage, flag], { SEARCH_R3_BACKEND: 'js' });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.startsWith(title), `${stage} ${flag}: ${r.stdout.slice(0, 80)}`);
      assert.match(r.stdout, new RegExp(`usage: search-r3 train ${stage} --config`));
      const others = Object.entries(TITLES)
        .filter(([s]) => s !== stage)
        .map(([, t]) => t);
      for (const t of others) assert.ok(!r.stdout.includes(t), `${stage} ${flag} shows only its own help`);
    }
  }
});

test('train: an unknown stage, or a stage without --config, is one line and exit code 2', () => {
  const unknown = runCli(['train', 'pretrain'], { SEARCH_R3_BACKEND: 'js' });
  assert.equal(unknown.status, 2);
  assert.equal(
    unknown.stderr,
    "search-r3: train: unknown stage 'pretrain'; choose lm, sft or rl (see search-r3 train --help).\n",
  );
  for (const stage of ['lm', 'sft', 'rl']) {
    const r = runCli(['train', stage, '--quiet'], { SEARCH_R3_BACKEND: 'js' });
    assert.equal(r.status, 2, r.stderr);
    const said = `search-r3: train ${stage} needs --config <file.json> (see search-r3 train ${stage} --help).\n`;
    assert.equal(r.stderr, said);
  }
});

test('each stage help lists --max-seconds, which every stage takes, as the train help does', () => {
  for (const line of [['train'], ['train', 'lm'], ['train', 'sft'], ['train', 'rl']]) {
    const r = runCli([...line, '--help'], { SEARCH_R3_BACKEND: 'js' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\[--max-seconds <n>\]/, `${line.join(' ')} usage`);
    assert.match(r.stdout, /^ {2}--max-seconds <n> {2}end this session within n seconds of wall time/m, line.join(' '));
  }
  // and takes it: refused by its value, not as an unknown option
  for (const stage of ['lm', 'sft', 'rl']) {
    const r = runCli(['train', stage, '--config', 'c.json', '--max-seconds', '0'], { SEARCH_R3_BACKEND: 'js' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, "search-r3: --max-seconds must be a number of seconds > 0 (got '0').\n", stage);
  }
});
