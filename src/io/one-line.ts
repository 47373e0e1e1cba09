/**
 * Stored text shown on a terminal line: whitespace runs as one space, control characters dropped, cut to `max`
 * characters. Documents come from anywhere, and an escape sequence in one (ESC [2J, an OSC title) would act on the
 * terminal rather than show.
 */
export function oneLine(s: string, max = Infinity): string {
  const t = s
    .replace(/\s+/g, ' ')
    .replace(/\p{Cc}/gu, '')
    .trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/**
 * A message for the terminal whose words may quote input (an id, a file name, a field): control characters
 * dropped but for line and tab breaks, so that an escape sequence in a document cannot act on the terminal.
 */
export function terminalSafe(s: string): string {
  return s.replace(/[^\P{Cc}\n\t]/gu, '');
}
