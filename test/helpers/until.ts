import assert from 'node:assert/strict';

/**
 * Waits until `done` holds, looking every `everyMs`; fails with `what` after `ms`. Tests wait for the state
 * they assert on rather than for a fixed time, which a busy machine (CI on two cores) can outlast.
 */
export async function until(
  done: () => boolean | Promise<boolean>,
  ms: number,
  what: () => string,
  everyMs = 5,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await done())) {
    assert.ok(Date.now() < end, what());
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
