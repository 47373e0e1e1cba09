/**
 * kill-fuzz, as the README shows it, refuses a bad command line in one sentence with exit code 2 before it
 * starts any run (a typo in --only threw a stack trace; a count that is not one ran zero rounds and passed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';

function killFuzz(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const script = path.join(repoRoot, 'dist', 'scripts', 'kill-fuzz.js');
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('kill-fuzz refuses an unknown command, option or count in one sentence, exit code 2, running nothing', () => {
  for (const [args, said] of [
    [['--only', 'index,nope'], 'no command named nope'],
    [['--only', 'nope', '--bogus'], "Unknown option '--bogus'"],
    [['--only', 'nope', '--rounds'], "Option '--rounds <value>' argument missing"],
    [['--rounds', 'x', '--only', 'nope'], 'no command named nope'],
  ] as const) {
    const r = killFuzz(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, `kill-fuzz: ${said} (see --help).\n`, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
  const r = killFuzz('--rounds', '0', '--only', 'index');
  assert.equal(r.stderr, "kill-fuzz: --rounds must be a positive integer (got '0') (see --help).\n");
  assert.equal(r.status, 2);
});
