import {
  type NumberRange,
  NON_NEGATIVE_NUMBER,
  POSITIVE_INTEGER,
  SEED_RANGE,
  UNIT_INTERVAL,
  checkChoice,
  describeRange,
  inRange,
} from '../io/option-checks.js';
import { UserError } from './command.js';
import { originProblem } from '../serve/cors.js';

/**
 * An optional number option that `ok` accepts; undefined when not given. Refused in one sentence naming the
 * option and `want` ("an integer ≥ 0") otherwise, an empty or blank value included: Number('') is 0, which
 * no one means by it. `name` is the option without its dashes ('seed' for --seed), or as written ('-k').
 */
export function numberOption(
  v: string | undefined,
  name: string,
  want: string,
  ok: (n: number) => boolean,
): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!ok(n)) throw new UserError(`${name.startsWith('-') ? name : `--${name}`} must be ${want} (got '${v}').`);
  return n;
}

/** An optional --name value in `r` (the ranges the library's options take); undefined when not given. */
export function rangeOption(v: string | undefined, name: string, r: NumberRange): number | undefined {
  return numberOption(v, name, describeRange(r), (n) => inRange(n, r));
}

/** An optional --name value that must be a positive integer; undefined when not given. */
export function positiveInt(v: string | undefined, name: string): number | undefined {
  return rangeOption(v, name, POSITIVE_INTEGER);
}

/** An optional --name value that must be an integer ≥ `min`; undefined when not given. */
export function intAtLeast(v: string | undefined, name: string, min: number): number | undefined {
  return rangeOption(v, name, { integer: true, min });
}

/** An optional --name value that must be an integer ≥ 0 (a count, a seed); undefined when not given. */
export function nonNegativeInt(v: string | undefined, name: string): number | undefined {
  return intAtLeast(v, name, 0);
}

/** An optional --seed: an integer in [0, 2³² − 1], the seeds the generators take. */
export function seedOption(v: string | undefined): number | undefined {
  return rangeOption(v, 'seed', SEED_RANGE);
}

/** An optional --name value that must be an integer in [min, max]; undefined when not given. */
export function intInRange(v: string | undefined, name: string, min: number, max: number): number | undefined {
  return rangeOption(v, name, { integer: true, min, max });
}

/** An optional --name value that must be a finite number ≥ 0; undefined when not given. */
export function nonNegativeNumber(v: string | undefined, name: string): number | undefined {
  return rangeOption(v, name, NON_NEGATIVE_NUMBER);
}

/** An optional --name value that must be a finite number > 0 (`what` names it: "a number of seconds"). */
export function positiveNumber(v: string | undefined, name: string, what = 'a number'): number | undefined {
  return numberOption(v, name, `${what} > 0`, (n) => Number.isFinite(n) && n > 0);
}

/** An optional --name value that must be a fraction in [0, 1); undefined when not given. */
export function fractionOption(v: string | undefined, name: string): number | undefined {
  return numberOption(v, name, 'a fraction in [0, 1)', (n) => n >= 0 && n < 1);
}

/** An optional --name value that must be a number in [0, 1], both ends included; undefined when not given. */
export function unitIntervalOption(v: string | undefined, name: string): number | undefined {
  return rangeOption(v, name, UNIT_INTERVAL);
}

/** An optional --name value that must be one of `choices` (the values the library's option takes). */
export function choiceOption<T extends string>(
  v: string | undefined,
  name: string,
  choices: readonly T[],
): T | undefined {
  return checkChoice(v, name.startsWith('-') ? name : `--${name}`, choices, (m) => new UserError(m));
}

/** A --port value: an integer in [0, 65535] (0 picks a free port); 8080 when not given. */
export function portOption(v: string | undefined): number {
  if (v === undefined) return 8080;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new UserError(`--port must be an integer in [0, 65535] (got '${v}').`);
  return n;
}

/**
 * A --host value: the address a server listens on; 127.0.0.1 when not given. An empty one is refused:
 * Node would take it as every interface, the opposite of what leaving the option out means.
 */
export function hostOption(v: string | undefined): string {
  if (v === undefined) return '127.0.0.1';
  if (v.trim() === '') {
    throw new UserError('--host is empty; give the address to listen on (e.g. 127.0.0.1, or 0.0.0.0 for all).');
  }
  return v;
}

/**
 * A warning for a server that anyone on the network may use (undefined for none): listening beyond this machine
 * (not a loopback address) with no API key. Said, not refused: a trusted network or a proxy that authenticates
 * may be why.
 */
export function openServerWarning(host: string, apiKey: string | undefined, what: string): string | undefined {
  if (apiKey !== undefined || isLoopback(host)) return undefined;
  return (
    `${what} listens on ${host} without an API key: anyone who can reach this machine can use it; give --api-key ` +
    '(or SEARCH_R3_API_KEY) unless the network or a proxy in front of it decides who may.'
  );
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

/** The origins --cors-origin names (undefined when none): each as a browser sends its Origin, or *. */
export function corsOriginsOption(given: string[] | undefined): string[] | undefined {
  for (const origin of given ?? []) {
    const problem = originProblem(origin);
    if (problem) throw new UserError(`--cors-origin: ${problem}.`);
  }
  return given;
}

/** The --cors-origin lines of a server's --help, their text starting at column `col`. */
export function corsOriginHelp(col: number): string {
  const label = '  --cors-origin <origin>';
  const pad = ''.padEnd(col);
  const head = label.length < col ? label.padEnd(col) : `${label}\n${pad}`;
  return (
    `${head}let web pages at <origin> (http://localhost:3000) call it from a\n` +
    `${pad}browser (repeatable; * for any page); by default no page of another origin may`
  );
}

/**
 * The key a server requires: --api-key, else $SEARCH_R3_API_KEY when set; undefined for none. A key that is
 * empty or padded with whitespace is refused: no Authorization header can carry it (its token is read
 * trimmed), so the server could authorize no one. The variable set but empty is refused too, rather than
 * read as unset: a secret that came out empty would otherwise open the server to anyone who reaches it.
 */
export function apiKeyOption(v: string | undefined): string | undefined {
  const [key, from] = v !== undefined ? [v, '--api-key'] : [process.env.SEARCH_R3_API_KEY, '$SEARCH_R3_API_KEY'];
  if (key === undefined) return undefined;
  if (key.trim() === '') {
    const what = key === '' ? 'empty' : 'only whitespace';
    const without = v !== undefined ? 'leave it out' : 'unset it';
    throw new UserError(
      `${from} is ${what}, so no request could be authorized; give a key, or ${without} to serve without one.`,
    );
  }
  if (key.trim() !== key) {
    throw new UserError(
      `${from} begins or ends with whitespace, which no Authorization header can carry; give the key without it.`,
    );
  }
  return key;
}

/** A comma-separated list of names (--only a,b); undefined when not given, refused when it names none. */
export function namesOption(v: string | undefined, name: string): string[] | undefined {
  const names = v
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names?.length === 0) throw new UserError(`--${name} names no source; list them separated by commas.`);
  return names;
}

/** Says, on stderr, that an option given has no effect in this run and why (`why`: a clause, no full stop). */
export function noEffect(option: string, value: string | boolean | undefined, why: string): void {
  if (value === undefined) return;
  const given = typeof value === 'string' ? `${option} ${value}` : option;
  process.stderr.write(`search-r3: ${given} has no effect: ${why}.\n`);
}
