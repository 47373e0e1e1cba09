/**
 * One line of a JSON-lines file (a BEIR corpus or queries file, embeddings, documents to index) read as the JSON
 * object it must hold, or the sentence that says why it holds none, for each reader to raise in its own error class.
 */

export type JsonLine = { obj: Record<string, unknown> } | { problem: string };

/** `what` (a JSON array, ...) where a JSON object was expected, and what to do; `record` names a line's object. */
const notJsonLines = (what: string, record: string): string =>
  `${what}, where JSON lines hold one object per line; write each ${record} on its own line ` +
  "(jq -c '.[]' turns an array into JSON lines)";

/**
 * The object on line `line`, or the problem: not JSON, or JSON other than an object. A JSON array, or the first line
 * of one JSON document written over many (an indented array or object), is told apart, since JSON lines are then
 * what the file should have been.
 */
export function jsonLineObject(text: string, line: number, record: string): JsonLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    if (line === 1 && /^\s*(\[|\{\s*$)/.test(text)) {
      return { problem: notJsonLines('one JSON document spread over lines (an array or an indented object)', record) };
    }
    return { problem: `not valid JSON (${(e as Error).message})` };
  }
  if (Array.isArray(value)) return { problem: notJsonLines('a JSON array', record) };
  if (typeof value !== 'object' || value === null) return { problem: 'expected one JSON object per line' };
  return { obj: value as Record<string, unknown> };
}
