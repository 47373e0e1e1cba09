/** dictd dictionaries written by tests: the index's base-64 offsets and lengths, a 00-database header. */
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

const b64 = (n: number): string => {
  let s = '';
  do {
    s = B64[n % 64] + s;
    n = Math.floor(n / 64);
  } while (n > 0);
  return s;
};

/** A dictd dictionary (index, dict) of entries, two headwords pointing at the first. */
export function dictd(entries: Array<[string, string]>): { index: string; dict: Buffer } {
  const head = '00-database-short\n     A test dictionary\n';
  let text = head,
    index = `00-database-short\t${b64(0)}\t${b64(head.length)}\n`;
  for (const [word, body] of entries) {
    index += `${word}\t${b64(Buffer.byteLength(text))}\t${b64(Buffer.byteLength(body))}\n`;
    if (word === entries[0][0])
      index += `${word.toUpperCase()}\t${b64(Buffer.byteLength(text))}\t${b64(Buffer.byteLength(body))}\n`;
    text += body;
  }
  return { index, dict: Buffer.from(text) };
}
