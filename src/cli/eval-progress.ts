import type { ProgressFn } from '../eval/retriever.js';

/**
 * Progress of long evaluation work on stderr: a redrawn bar per stage when stderr is a terminal, otherwise one line
 * every few seconds (and when a stage ends), so that logs stay readable. A stage whose total is not known yet
 * (Infinity: a corpus streamed from its file) shows the count so far.
 */
export function evalProgress(stream: NodeJS.WriteStream = process.stderr, lineEveryMs = 5000): ProgressFn {
  const tty = stream.isTTY === true;
  let stage = '';
  let stageStart = 0;
  let lastLine = 0;
  return (name, done, total) => {
    const now = performance.now();
    if (name !== stage) {
      stage = name;
      stageStart = now;
      lastLine = now;
    }
    const finished = done >= total;
    if (!tty && !finished && now - lastLine < lineEveryMs) return;
    lastLine = now;
    const secs = ((now - stageStart) / 1000).toFixed(1);
    if (total === Infinity) {
      stream.write(tty ? `\r${name.padEnd(10)} ${done} so far ${secs}s\x1b[K` : `${name}: ${done} so far ${secs}s\n`);
      return;
    }
    const pct = total > 0 ? (100 * done) / total : 100;
    if (tty) {
      const width = 30;
      const filled = Math.round((width * pct) / 100);
      stream.write(
        `\r${name.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${secs}s\x1b[K` +
          (finished ? '\n' : ''),
      );
    } else {
      stream.write(`${name}: ${done}/${total} (${pct.toFixed(0)}%) ${secs}s\n`);
    }
  };
}
