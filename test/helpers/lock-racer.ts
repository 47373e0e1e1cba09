/**
 * A process racing others for one PidLock, for the takeover test: reads commands from stdin, one a line.
 * `go <file> <ms>` waits until the clock reads <ms> (performance.timeOrigin + now, the same instant for
 * every racer), then tries to take the lock <file> and prints `won` or `refused <pid>`, holding the lock if
 * it won; `release` releases it and prints `released`. Ends when stdin ends. Does nothing unless started
 * with the argument `race` (the test runner may load every file under dist/test).
 */
import { createInterface } from 'node:readline';
import { PidLock } from '../../src/io/pid-lock.js';

if (process.argv[2] === 'race') {
  let held: PidLock | undefined;
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, file, at] = line.split(' ');
    if (command === 'go') {
      while (performance.timeOrigin + performance.now() < Number(at)) {
        // spins: a timer would wake each racer up to a millisecond apart
      }
      try {
        held = PidLock.acquire(file!, (pid) => Object.assign(new Error('refused'), { pid }));
        process.stdout.write('won\n');
      } catch (e) {
        process.stdout.write(`refused ${(e as { pid?: number }).pid}\n`);
      }
    } else if (command === 'release') {
      held?.release();
      held = undefined;
      process.stdout.write('released\n');
    }
  });
}
