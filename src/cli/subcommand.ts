import { UserError } from './command.js';

/** 'a', 'a or b', 'a, b or c'. */
function either(names: readonly string[]): string {
  return names.length < 2 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/**
 * The sentence for a group command (train, recipe, corpus, ...) whose first word is none of its sub-commands:
 * none given (or an option first), or another word, which is named. `noun` is what the group calls them
 * ('stage' for train).
 */
export function subcommandError(
  group: string,
  given: string | undefined,
  names: readonly string[],
  noun = 'sub-command',
): UserError {
  const see = `(see search-r3 ${group} --help)`;
  return new UserError(
    given === undefined || given.startsWith('-')
      ? `${group} needs a ${noun}: ${either(names)} ${see}.`
      : `${group}: unknown ${noun} '${given}'; choose ${either(names)} ${see}.`,
  );
}

/**
 * Refuses words after a group command's sub-command (`positionals[0]`) where it takes none: shaped as node's
 * parseArgs refuses a stray word, so that it is said in the one sentence every command says it in.
 */
export function refuseExtraArguments(positionals: readonly string[]): void {
  if (positionals.length <= 1) return;
  const refused = new TypeError(`Unexpected argument '${positionals[1]}'. This command does not take it`);
  throw Object.assign(refused, { code: 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' });
}
