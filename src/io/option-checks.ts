/**
 * What an option accepts, said once for every edge that reads it: the library's options, the CLI's flags and
 * the server's request fields refuse a bad value in the same words ("<name> must be <what it takes> (got
 * <value>)."), each as its own error class. Pure: no I/O, no state.
 */

/** The numbers an option accepts: whole ones only when `integer`, within [min, max] (bounds included). */
export interface NumberRange {
  integer?: boolean;
  min?: number;
  max?: number;
}

export const POSITIVE_INTEGER: NumberRange = { integer: true, min: 1 };
export const NON_NEGATIVE_INTEGER: NumberRange = { integer: true, min: 0 };
export const NON_NEGATIVE_NUMBER: NumberRange = { min: 0 };
export const UNIT_INTERVAL: NumberRange = { min: 0, max: 1 };
/** The seeds the generators take: a larger one would be taken modulo 2³², so two seeds would draw the same. */
export const SEED_RANGE: NumberRange = { integer: true, min: 0, max: 2 ** 32 - 1 };

/** The longest wait a Node timer takes, in ms: a longer one fires after 1 ms, with a TimeoutOverflowWarning. */
export const TIMER_MAX_MS = 2 ** 31 - 1;

/** Makes the error an edge throws for a refused value, from the sentence that says why. */
export type Refuse = (message: string) => Error;

/**
 * Whether `v` is a number in `r`. Integers must be safe ones (a larger one has no exact neighbour, and a count
 * that large is a mistake); any number must be finite (NaN and ±Infinity compare false with every bound).
 */
export function inRange(v: unknown, r: NumberRange): v is number {
  if (typeof v !== 'number' || !(r.integer ? Number.isSafeInteger(v) : Number.isFinite(v))) return false;
  return v >= (r.min ?? -Infinity) && v <= (r.max ?? Infinity);
}

/** "a positive integer", "an integer ≥ 0", "an integer in [0, 4096]", "a number in [0, 1]", "a number ≥ 0". */
export function describeRange(r: NumberRange): string {
  const kind = r.integer ? 'integer' : 'number';
  const a = r.integer ? 'an' : 'a';
  if (r.min !== undefined && r.max !== undefined) return `${a} ${kind} in [${r.min}, ${r.max}]`;
  if (r.integer && r.min === 1 && r.max === undefined) return 'a positive integer';
  if (r.min !== undefined) return `${a} ${kind} ≥ ${r.min}`;
  if (r.max !== undefined) return `${a} ${kind} ≤ ${r.max}`;
  return r.integer ? 'an integer' : 'a finite number';
}

/** A value as a refusal shows it: strings quoted (and cut), numbers as JavaScript writes them, else their kind. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return 'an array';
  // an async factory's result passed without await: the most likely wrong object, so named as what it is
  if (typeof (v as { then?: unknown } | null)?.then === 'function') return 'a promise';
  return `${typeof v === 'object' ? 'an' : 'a'} ${typeof v}`;
}

/** "'on' or 'off'", "'f32', 'f16' or 'i8'" (`quote` false: "on or off", as flags are written). */
export function listChoices(choices: readonly string[], quote = true): string {
  const q = choices.map((c) => (quote ? `'${c}'` : c));
  return q.length === 1 ? q[0] : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}

/** The sentence refusing `v` for the option `name`, which must be `want`. */
export function refusal(name: string, want: string, v: unknown): string {
  return `${name} must be ${want} (got ${showValue(v)}).`;
}

/** An optional number option: undefined when left out, the number when in `r`, else refused by `fail`. */
export function checkNumber(v: unknown, name: string, r: NumberRange, fail: Refuse): number | undefined {
  if (v === undefined) return undefined;
  if (!inRange(v, r)) throw fail(refusal(name, describeRange(r), v));
  return v;
}

/** An optional boolean option: undefined when left out, else refused by `fail` unless true or false. */
export function checkFlag(v: unknown, name: string, fail: Refuse): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw fail(refusal(name, 'true or false', v));
  return v;
}

/** An optional option that takes one of `choices`: undefined when left out, else refused unless one of them. */
export function checkChoice<T extends string>(
  v: unknown,
  name: string,
  choices: readonly T[],
  fail: Refuse,
): T | undefined {
  if (v === undefined) return undefined;
  if (!(choices as readonly unknown[]).includes(v)) throw fail(refusal(name, listChoices(choices), v));
  return v as T;
}

/**
 * A file or folder argument: a non-empty string. path.resolve('') is the working directory, which would be opened
 * (or written) in place of a path the caller failed to fill in, and a number fails inside node:path.
 */
export function checkPathArgument(v: unknown, name: string, fail: Refuse): string {
  if (typeof v !== 'string' || v === '') throw fail(refusal(name, 'a path (a non-empty string)', v));
  return v;
}

/** Refuses keys of `o` that `known` does not list: a misspelt option would otherwise be dropped silently. */
export function checkKnownKeys(o: Record<string, unknown>, name: string, known: readonly string[], fail: Refuse): void {
  const other = Object.keys(o).find((k) => !known.includes(k) && o[k] !== undefined);
  if (other !== undefined) throw fail(`${name} has no option '${other}'; it takes ${listChoices(known)}.`);
}

/** An options argument: undefined (none given) or a plain object, else refused by `fail`. */
export function checkOptionsObject(v: unknown, name: string, fail: Refuse): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(refusal(name, 'an object', v));
  return v as Record<string, unknown>;
}
