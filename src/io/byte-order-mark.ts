/**
 * A byte-order mark at the start of a text file (Windows editors write one) is no part of what it says: left in,
 * it would be part of the first id of a list, or stop JSON.parse at an invisible character.
 */
export function withoutByteOrderMark(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
