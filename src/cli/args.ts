import { UserError } from './command.js';

/** An optional --name value that must be a positive integer; undefined when not given. */
export function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`--${name} must be a positive integer (got '${v}').`);
  return n;
}
