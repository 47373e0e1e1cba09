/** The audit's summary says how the local side's encodes compare with exact mode's in words true at any count. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAudit, summariseAudit, type AuditStep } from '../../src/rlenv/audit.js';

const step = (n: number, localEncodes: number, exactEncodes: number): AuditStep => ({
  step: n,
  localEncodes,
  exactEncodes,
  localSeconds: 0.1,
  exactSeconds: 0.4,
  localStaleness: 1,
  localRewards: [0.5, 0.25],
  exactRewards: [0.5, 0.3],
});

const encodesLine = (steps: AuditStep[]): string =>
  formatAudit(summariseAudit(steps))
    .split('\n')
    .find((l) => l.startsWith('document encodes / step'))!;

test('a local side that encodes no document is said to, never as infinitely many times fewer', () => {
  const steps = [step(2, 0, 40), step(3, 0, 40)];
  assert.equal(encodesLine(steps), 'document encodes / step: local 0.0, exact 40.0 (the local side encodes none)');
  // audit.json holds the summary: no ratio rather than the null JSON would make of Infinity unannounced
  assert.equal(summariseAudit(steps).encodesPerStep.ratio, null);
  assert.match(encodesLine([step(2, 0, 0)]), /\(neither encodes any\)$/);
});

test('the encodes are compared as fewer, as many or more, whichever they are', () => {
  assert.match(encodesLine([step(2, 10, 40)]), /local 10\.0, exact 40\.0 \(4\.0× fewer locally\)$/);
  assert.equal(summariseAudit([step(2, 10, 40)]).encodesPerStep.ratio, 4);
  assert.match(encodesLine([step(2, 20, 20)]), /\(as many\)$/);
  assert.match(encodesLine([step(2, 40, 20)]), /\(2\.0× more locally\)$/);
  assert.match(encodesLine([step(2, 5, 0)]), /\(the exact side encodes none\)$/);
});
