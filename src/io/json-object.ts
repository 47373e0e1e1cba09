/** Whether a parsed JSON value is an object: neither an array nor null, which typeof calls objects too. */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
