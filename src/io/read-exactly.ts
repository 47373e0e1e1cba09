import { readSync } from 'node:fs';

/** The most one fs.read moves is 2 GiB − 1 bytes; pieces of 1 GiB stay below it. */
const MAX_READ_BYTES = 1 << 30;

/**
 * Fills `target` from the open file `fd` at `position`, in pieces one read accepts, so a target over 2 GiB is
 * read as well (readFileSync refuses such a file). False when the file ends before `target` is full.
 */
export function readExactlySync(fd: number, target: Uint8Array, position: number): boolean {
  let got = 0;
  while (got < target.length) {
    const n = readSync(fd, target, got, Math.min(target.length - got, MAX_READ_BYTES), position + got);
    if (n === 0) return false;
    got += n;
  }
  return true;
}
