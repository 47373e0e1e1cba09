/**
 * The server's API key check: `Authorization: Bearer <key>`, the scheme in any case (RFC 9110), the key
 * compared in constant time. Both sides are hashed first, so keys of different lengths compare in the
 * same time as equal-length ones and timingSafeEqual always gets equal-length inputs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The credentials of a Bearer authorization header, or null when it has none. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^\s*bearer\s+(\S.*?)\s*$/i.exec(header ?? '');
  return m ? m[1] : null;
}

export class ApiKey {
  private readonly want: Buffer;

  constructor(key: string) {
    this.want = digest(key);
  }

  /** Whether the Authorization header carries this key. */
  accepts(authorization: string | undefined): boolean {
    const token = bearerToken(authorization);
    return token !== null && timingSafeEqual(digest(token), this.want);
  }
}
