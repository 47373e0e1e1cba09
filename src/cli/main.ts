#!/usr/bin/env node
import { commands } from './commands.js';
import { fileSystemSentence } from './file-system-error.js';
import { searchR3Version } from './package-paths.js';
import { subcommandError } from './subcommand.js';
import { checkSettings } from '../io/env-settings.js';
import { watchParent } from './parent-watch.js';
import { terminalSafe } from '../io/one-line.js';
import type { Command } from './command.js';
import {
  GpuError,
  checkBackendChoice,
  gpuSizeSentence,
  isGpuDeviceFailure,
  nativeBackendError,
} from '../tensor/index.js';

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 4);
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'search-r3 — reasoning-reinforced search embeddings (train, evaluate, index, serve)',
    '',
    'usage: search-r3 <command> [options]   (search-r3 <command> --help for details; --version)',
    '',
    'commands:',
    ...lines,
  ].join('\n');
}

/** Says once, at start, when models will run on the slow pure-TypeScript backend and why. */
function warnIfNoNativeBackend(): void {
  if (process.env.SEARCH_R3_BACKEND === 'js') return;
  const why = nativeBackendError();
  if (why)
    console.error(
      `search-r3: the native backend is unavailable (${why}); using the pure-TypeScript backend, which is much slower.`,
    );
}

async function main(argv: string[]): Promise<number> {
  // a recipe's step that outlived its recipe (SIGKILL) stops as on Ctrl-C
  watchParent();
  const [name, ...rest] = argv;
  if (name === undefined) {
    // no command is a usage error: the usage goes where errors go
    console.error(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(`search-r3 ${searchR3Version()}`);
    return 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    console.error(`search-r3: unknown command '${name}'.\n\n${usage()}`);
    return 2;
  }
  const cmd = await entry.load();
  // an option may come before the sub-command where the command parses for it; a word there must name one,
  // with --help as well (the group's help would read as that word's)
  const [sub] = rest;
  const subs = cmd.subcommands;
  if (subs && sub !== undefined && !sub.startsWith('-') && !subs.includes(sub))
    throw subcommandError(name, sub, subs, cmd.subcommandNoun);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log((sub !== undefined ? cmd.helpOf?.(sub) : undefined) ?? cmd.help);
    return 0;
  }
  if (subs && sub === undefined) throw subcommandError(name, sub, subs, cmd.subcommandNoun);
  checkBackendChoice();
  checkSettings();
  warnIfNoNativeBackend();
  try {
    return await cmd.run(rest);
  } catch (caught) {
    const err = withSizeSettings(caught, cmd, rest[0]);
    // the device's sentence ends at the device; each command knows what its user does next
    if (isGpuDeviceFailure(err))
      throw new GpuError(`${(err as Error).message}; ${cmd.afterGpuFailure ?? RUN_AGAIN}`, true);
    const sentence = optionErrorSentence(err, commandLabel(name, cmd.subcommands, rest), rest);
    if (sentence === null) throw err;
    console.error(terminalSafe(sentence));
    return 2;
  }
}

/** A GpuError about the size of the work, said again with the settings that size this command's work. */
function withSizeSettings(err: unknown, cmd: Command, subcommand: string | undefined): unknown {
  if (!(err instanceof GpuError) || err.sizeRefusal === null) return err;
  const smaller = cmd.gpuSizeSettings?.(subcommand);
  return smaller ? new GpuError(gpuSizeSentence(err.sizeRefusal, smaller), err.deviceFailed, err.sizeRefusal) : err;
}

/** The next step after a failed GPU device, for a command that names none of its own (Command.afterGpuFailure). */
const RUN_AGAIN = 'run the command again, on this device or with --device cpu';

/** `train sft` for `search-r3 train sft ...`, `search` for `search-r3 search ...`. */
function commandLabel(name: string, subcommands: readonly string[] | undefined, rest: readonly string[]): string {
  return rest[0] !== undefined && subcommands?.includes(rest[0]) ? `${name} ${rest[0]}` : name;
}

/**
 * node's util.parseArgs refusing the command line (an unknown option, an option without its value or
 * with one it does not take, a stray word), as one sentence naming it; null for any other error. A
 * negative number after an option (-k -3) reads to parseArgs as an option of its own, so the value seems
 * missing: that case is named as the value it is.
 */
function optionErrorSentence(err: unknown, command: string, argv: readonly string[]): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (!(err instanceof TypeError) || typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return null;
  // node quotes what it refuses: '--out <value>', '-k, --k <value>', '--quiet', or the stray word
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? '';
  const option = /--?[^\s,<]+(?=[^,]*$)/.exec(quoted)?.[0] ?? quoted;
  const given = argv.findIndex((a) => a === option || quoted.startsWith(`${a},`) || quoted.startsWith(`${a} `));
  const negative = given >= 0 && /^-\d/.test(argv[given + 1] ?? '') ? argv[given + 1] : undefined;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && negative !== undefined) {
    const what = `${argv[given]} ${negative}: a negative number is not a value it takes`;
    return `search-r3 ${command}: ${what} (see search-r3 ${command} --help)`;
  }
  const what =
    code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
      ? `unknown option '${option}'`
      : code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'
        ? `unexpected argument '${quoted}'`
        : /does not take an argument/.test(err.message)
          ? `option '${option}' takes no value`
          : `option '${option}' needs a value`;
  return `search-r3 ${command}: ${what} (see search-r3 ${command} --help)`;
}

/**
 * The one place that decides how an error reaches the user. The classes named here carry messages
 * written for the user (they name the file, field or limit and what to do), whichever layer throws them:
 * printed as one line, exit code 2. Anything else is a bug and keeps its stack trace (exit code 1).
 * Matched by name, so an error that crossed a worker thread (its class rebuilt there) counts as well.
 */
const userFacing = new Set([
  'UserError',
  'ModelFileError',
  'EvalInputError',
  'ConfigError',
  'DataError',
  'IndexError',
  'RemoteError',
  'TensorError',
  'PromptTooLongError',
  'InputFileError',
  'RunFolderError',
  'TrainingDiverged',
  'TableTooLargeError',
  'RecipeError',
  'RecipeFolderError',
  'RecipeConfigError',
  'EngineError',
  'QueueError',
  'GpuError',
  'BackendChoiceError',
  'BackendUnavailableError',
  'SettingError',
]);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const argv = process.argv.slice(2);
    const again =
      argv[0] === 'train' && !argv.includes('--resume')
        ? 'run the same command again with --resume once the run has a checkpoint (else as it was)'
        : undefined;
    const sentence = err instanceof Error && userFacing.has(err.name) ? err.message : fileSystemSentence(err, again);
    if (sentence !== null) console.error(`search-r3: ${terminalSafe(sentence)}`);
    else console.error(err);
    process.exitCode = sentence !== null ? 2 : 1;
  },
);
