/** Numbers from the environment: a bad value is refused by name, unset or empty is the default. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SettingError, dawnFlagsSetting, positiveIntSetting, switchSetting } from '../../src/io/env-settings.js';
import { runCliAsync } from '../helpers/cli.js';

test('a positive integer, or undefined when unset or empty; anything else is refused by name', () => {
  assert.equal(positiveIntSetting('N', { N: '3' }), 3);
  assert.equal(positiveIntSetting('N', {}), undefined);
  assert.equal(positiveIntSetting('N', { N: ' ' }), undefined);
  for (const bad of ['abc', '0', '-5', '1.5', '1e30', 'NaN']) {
    assert.throws(
      () => positiveIntSetting('N', { N: bad }),
      (e: unknown) =>
        e instanceof SettingError &&
        e.message === `N must be a positive integer, not '${bad}'; set it to one, or unset it.`,
    );
  }
});

test('a command refuses a bad SEARCH_R3_THREADS or SEARCH_R3_GPU_*_MS before it starts', async () => {
  // a wait longer than a timer holds was taken as 1 ms: the GPU memory given back after every request
  const timer = ' up to 2147483647';
  for (const [name, value, upTo] of [
    ['SEARCH_R3_THREADS', 'abc', ''],
    ['SEARCH_R3_GPU_TIMEOUT_MS', '0', ''],
    ['SEARCH_R3_GPU_IDLE_RELEASE_MS', '30s', timer],
    ['SEARCH_R3_GPU_IDLE_RELEASE_MS', '99999999999', timer],
  ] as const) {
    const r = await runCliAsync(['device', '--device', 'cpu'], { [name]: value });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      `search-r3: ${name} must be a positive integer${upTo}, not '${value}'; set it to one, or unset it.\n`,
    );
    assert.equal(r.stdout, '');
  }
});

test('a switch is 0 or 1; a command refuses SEARCH_R3_CHECK_FINITE=false or SEARCH_R3_GPU_PROFILE=true', async () => {
  assert.equal(switchSetting('S', { S: '0' }), false);
  assert.equal(switchSetting('S', { S: '1' }), true);
  assert.equal(switchSetting('S', { S: '' }), undefined);
  // the backends turn the check off only on '0': 'false' would have left it on without a word
  for (const [name, value] of [
    ['SEARCH_R3_CHECK_FINITE', 'false'],
    ['SEARCH_R3_CHECK_FINITE', 'off'],
    ['SEARCH_R3_GPU_PROFILE', 'true'],
  ] as const) {
    const r = await runCliAsync(['device', '--device', 'cpu'], { [name]: value });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, `search-r3: ${name} must be 0 or 1, not '${value}'; set it to one of them, or unset it.\n`);
    assert.equal(r.stdout, '');
  }
});

test('SEARCH_R3_DAWN_FLAGS is name=value flags; a command refuses one without a name or a value', async () => {
  const flags = { SEARCH_R3_DAWN_FLAGS: ' adapter=llvmpipe  enable-dawn-features=disable_robustness ' };
  assert.deepEqual(dawnFlagsSetting(flags), ['adapter=llvmpipe', 'enable-dawn-features=disable_robustness']);
  assert.deepEqual(dawnFlagsSetting({}), []);
  // Dawn took these without a word, and opened the first adapter it found
  for (const bad of ['adapter=', '===', 'adapter']) {
    const r = await runCliAsync(['device', '--device', 'cpu'], { SEARCH_R3_DAWN_FLAGS: `adapter=x ${bad}` });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      `search-r3: SEARCH_R3_DAWN_FLAGS holds '${bad}', which is no name=value flag (adapter=<name>, ` +
        'enable-dawn-features=<toggles>); set it to such flags separated by spaces, or unset it.\n',
    );
  }
});
