/** Whether a parsed JSON value is an object: neither an array nor null, which typeof calls objects too. */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value at a dotted key ("optimizer.lr") of a parsed JSON object; undefined where it has none. */
export function valueAtKey(v: unknown, key: string): unknown {
  for (const part of key.split('.')) v = isJsonObject(v) ? v[part] : undefined;
  return v;
}
