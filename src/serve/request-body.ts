/**
 * Reading a request body: at most `limit` bytes, by Content-Length or while streaming, and for a gzip
 * body (Content-Encoding: gzip) at most `limit` bytes once decompressed, so a small body that inflates
 * to gigabytes is refused at the limit without inflating the rest.
 */
import { isUtf8 } from 'node:buffer';
import type http from 'node:http';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { HttpError, badRequest } from './http-error.js';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';

/** The body's encoding: 'identity' or 'gzip'; anything else is refused (415). */
function bodyEncoding(req: http.IncomingMessage): 'identity' | 'gzip' {
  const e = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (e === 'identity' || e === '') return 'identity';
  if (e === 'gzip' || e === 'x-gzip') return 'gzip';
  const message = `Content-Encoding '${e}' is not supported; send the body uncompressed or gzip-compressed.`;
  throw new HttpError(415, message, 'unsupported_encoding');
}

/** Reads the whole body, refusing (413) more than `limit` bytes without buffering them. */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let encoding: 'identity' | 'gzip';
    try {
      encoding = bodyEncoding(req);
    } catch (e) {
      req.resume();
      reject(e);
      return;
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume();
      reject(new HttpError(413, `the request body is ${declared} bytes; the limit is ${limit}.`, 'request_too_large'));
      return;
    }
    const gzip = encoding === 'gzip';
    const source: Readable = gzip ? req.pipe(zlib.createGunzip()) : req;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const stop = (e: HttpError): void => {
      if (settled) return;
      settled = true;
      if (gzip) {
        req.unpipe();
        source.destroy();
      }
      // read and discard what still comes until the connection closes after the answer (the handler sends it
      // with Connection: close), so a client still writing does not stall before it reads the answer
      req.resume();
      reject(e);
    };
    source.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        const message = `the request body exceeds the limit of ${limit} bytes${gzip ? ' once decompressed' : ''}.`;
        stop(new HttpError(413, message, 'request_too_large'));
      } else if (!settled) chunks.push(c);
    });
    const invalid = (why: string): HttpError => badRequest(why, null, 'invalid_body');
    req.on('error', (e) => stop(invalid(`the request body could not be read (${e.message}).`)));
    if (gzip) source.on('error', (e) => stop(invalid(`the body is not valid gzip (${e.message}).`)));
    source.on('end', () => {
      if (!settled) {
        settled = true;
        resolve(Buffer.concat(chunks));
      }
    });
  });
}

/**
 * The body as a JSON object (400 invalid_json otherwise). JSON on the wire is UTF-8 (RFC 8259): a body in another
 * encoding (a Latin-1 'café') is refused, where decoded to U+FFFD it would be searched or embedded as other text
 * without a word. A leading byte-order mark, which some clients write and the RFC lets a parser ignore, is.
 */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  if (!isUtf8(body)) {
    throw badRequest('the body is not UTF-8; send the JSON encoded as UTF-8.', null, 'invalid_json');
  }
  const text = body.toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(withoutByteOrderMark(text));
  } catch (e) {
    throw badRequest(`the body is not valid JSON (${(e as Error).message}).`, null, 'invalid_json');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw badRequest('the body must be a JSON object.', null, 'invalid_json');
  }
  return v as Record<string, unknown>;
}
