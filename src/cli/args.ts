import { UserError } from './command.js';

/** An optional --name value that must be a positive integer; undefined when not given. */
export function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`--${name} must be a positive integer (got '${v}').`);
  return n;
}

/** A --port value: an integer in [0, 65535] (0 picks a free port); 8080 when not given. */
export function portOption(v: string | undefined): number {
  if (v === undefined) return 8080;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new UserError(`--port must be an integer in [0, 65535] (got '${v}').`);
  return n;
}
