/**
 * The server's API key check: `Authorization: Bearer <key>`, the scheme in any case (RFC 9110), the key
 * compared in constant time. Both sides are hashed first, so keys of different lengths compare in the
 * same time as equal-length ones and timingSafeEqual always gets equal-length inputs.
 */
import { isUtf8 } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * The credentials of a Bearer authorization header, or null when it has none. Only HTTP's whitespace (space,
 * tab) surrounds them: the header is read as Latin-1, where U+00A0 is the second byte of a UTF-8 'à'.
 */
export function bearerToken(header: string | undefined): string | null {
  const m = /^[ \t]*bearer[ \t]+([^ \t].*?)[ \t]*$/i.exec(header ?? '');
  return m ? m[1] : null;
}

/**
 * What a header's token may stand for. Node reads a header's bytes as Latin-1, and clients send a key beyond
 * ASCII either way: curl as the UTF-8 it was typed in, Python's clients as Latin-1, Node's as either (UTF-8 when
 * the header goes out with a string body). So both readings are the key; for an ASCII key they are one.
 */
function tokenReadings(token: string): string[] {
  const bytes = Buffer.from(token, 'latin1');
  const utf8 = isUtf8(bytes) ? bytes.toString('utf8') : token;
  return utf8 === token ? [token] : [token, utf8];
}

export class ApiKey {
  private readonly want: Buffer;

  constructor(key: string) {
    this.want = digest(key);
  }

  /** Whether the Authorization header carries this key. */
  accepts(authorization: string | undefined): boolean {
    const token = bearerToken(authorization);
    if (token === null) return false;
    // every reading is compared, so the time taken does not tell which one matched
    return tokenReadings(token)
      .map((t) => timingSafeEqual(digest(t), this.want))
      .includes(true);
  }
}
