/**
 * Whether a model fits in this machine's memory, asked before any weight is read: a load that does not
 * fit would be killed by the operating system minutes later, with no word about why.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { ModelFileError } from './model-file-error.js';

/**
 * Bytes this process can still take without swapping: Linux's MemAvailable (free memory plus the page
 * cache it can drop), elsewhere what the operating system reports as free.
 */
export function availableMemoryBytes(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

/** A byte count for people: 6.17 GB, 812 MB. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(0)} MB`;
  return `${(n / 1e3).toFixed(0)} kB`;
}

/** Refuses, naming `source`, when `what` needs more than `available` bytes. */
export function checkFitsInMemory(
  source: string,
  what: string,
  bytes: number,
  available = availableMemoryBytes(),
): void {
  if (bytes <= available) return;
  const need = `${what} need ${formatBytes(bytes)} (${bytes} bytes) of memory`;
  throw new ModelFileError(
    source,
    `${need}, more than the ${formatBytes(available)} available on this machine; ` +
      'free memory or use a machine with more.',
  );
}
