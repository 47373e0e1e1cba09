#!/usr/bin/env node
import { commands } from './commands.js';
import { nativeBackendError } from '../tensor/index.js';

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 4);
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'search-r3 — reasoning-reinforced search embeddings (train, evaluate, index, serve)',
    '',
    'usage: search-r3 <command> [options]   (search-r3 <command> --help for details)',
    '',
    'commands:',
    ...lines,
  ].join('\n');
}

/** Says once, at start, when models will run on the slow pure-TypeScript backend and why. */
function warnIfNoNativeBackend(): void {
  if (process.env.SEARCH_R3_BACKEND === 'js') return;
  const why = nativeBackendError();
  if (why) console.error(`search-r3: the native backend is unavailable (${why}); using the pure-TypeScript backend, which is much slower.`);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 1 : 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`search-r3: unknown command '${name}'.\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(cmd.help);
    return 0;
  }
  warnIfNoNativeBackend();
  return cmd.run(rest);
}

/**
 * Errors whose message is written for the user (they name the file, field or limit and what to do):
 * printed as one line. Anything else is a bug and keeps its stack trace.
 */
const userFacing = new Set(['UserError', 'ModelFileError', 'EvalInputError', 'ConfigError', 'DataError', 'IndexError', 'RemoteError', 'TensorError', 'PromptTooLongError']);

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    const forUser = err instanceof Error && userFacing.has(err.name);
    if (forUser) console.error(`search-r3: ${err.message}`);
    else console.error(err);
    process.exitCode = forUser ? 2 : 1;
  },
);
