/**
 * A process racing others for one PidLock, for the takeover test: reads commands from stdin, one a line.
 * `go <file> <ms>` waits until the clock reads <ms> (performance.timeOrigin + now, the same instant for
 * every racer), then tries to take the lock <file> and prints `won` or `refused <pid>`, holding the lock if
 * it won; `release` releases it and prints `released`. Ends when stdin ends. Does nothing unless started
 * with the argument `race` (the test runner may load every file under dist/test).
 *
 * With a second argument `no-hard-links`, link() fails in this process as it does on a file system without hard
 * links (FAT, some network shares: EPERM), so that PidLock creates its locks the other way, empty and then
 * written. No such file system can be mounted where the tests run (vfat needs root and a kernel module), and
 * the answer of one call is all that differs there: everything else is the real file system.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { createInterface } from 'node:readline';
import { PidLock } from '../../src/io/pid-lock.js';

if (process.argv[2] === 'race' && process.argv[3] === 'no-hard-links') {
  fs.linkSync = (existing: fs.PathLike, newPath: fs.PathLike): void => {
    const e = new Error(`EPERM: operation not permitted, link '${String(existing)}' -> '${String(newPath)}'`);
    throw Object.assign(e, { code: 'EPERM', errno: -1, syscall: 'link', path: existing, dest: newPath });
  };
  syncBuiltinESMExports(); // PidLock's `import { linkSync }` now names it
}

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
