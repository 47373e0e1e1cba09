/**
 * The one way options are checked (library, CLI, server): how a range is said, and which values it takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NON_NEGATIVE_INTEGER,
  NON_NEGATIVE_NUMBER,
  POSITIVE_INTEGER,
  SEED_RANGE,
  UNIT_INTERVAL,
  checkChoice,
  checkFlag,
  checkNumber,
  describeRange,
  inRange,
} from '../../src/io/option-checks.js';

test('a range is said as the CLI has always said it', () => {
  assert.equal(describeRange(POSITIVE_INTEGER), 'a positive integer');
  assert.equal(describeRange(NON_NEGATIVE_INTEGER), 'an integer ≥ 0');
  assert.equal(describeRange({ integer: true, min: 2 }), 'an integer ≥ 2');
  assert.equal(describeRange(NON_NEGATIVE_NUMBER), 'a number ≥ 0');
  assert.equal(describeRange(UNIT_INTERVAL), 'a number in [0, 1]');
  assert.equal(describeRange(SEED_RANGE), 'an integer in [0, 4294967295]');
  assert.equal(describeRange({ integer: true }), 'an integer');
  assert.equal(describeRange({ max: 5 }), 'a number ≤ 5');
});

test('NaN, infinities, fractions for integers, unsafe integers and non-numbers are out of every range', () => {
  for (const v of [NaN, Infinity, -Infinity, '1', null, undefined, 2 ** 53])
    assert.ok(!inRange(v, { integer: true }), String(v));
  for (const v of [NaN, Infinity, '0.5']) assert.ok(!inRange(v, NON_NEGATIVE_NUMBER), String(v));
  assert.ok(!inRange(1.5, POSITIVE_INTEGER));
  assert.ok(!inRange(0, POSITIVE_INTEGER));
  assert.ok(inRange(0, UNIT_INTERVAL) && inRange(1, UNIT_INTERVAL) && !inRange(1.01, UNIT_INTERVAL));
  const fail = (m: string): Error => new TypeError(m);
  assert.equal(checkNumber(undefined, "'k'", POSITIVE_INTEGER, fail), undefined);
  assert.equal(checkNumber(3, "'k'", POSITIVE_INTEGER, fail), 3);
  assert.throws(
    () => checkNumber(NaN, "'k'", POSITIVE_INTEGER, fail),
    (e: unknown) => e instanceof TypeError && e.message === "'k' must be a positive integer (got NaN).",
  );
  assert.throws(
    () => checkFlag('yes', "'hybrid'", fail),
    /^TypeError: 'hybrid' must be true or false \(got 'yes'\)\.$/,
  );
  assert.throws(
    () => checkChoice({}, "'reasoning'", ['on', 'off'], fail),
    /^TypeError: 'reasoning' must be 'on' or 'off' \(got an object\)\.$/,
  );
  assert.equal(checkChoice('on', "'reasoning'", ['on', 'off'], fail), 'on');
});
