import http from 'node:http';

export interface OpenAIErrorBody {
  error?: { message: string; type: string; param: string | null; code: string | null };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body as sent (empty for HEAD). */
  raw: Buffer;
  /** The body parsed as JSON ({} when empty or not JSON). */
  body: OpenAIErrorBody & Record<string, unknown>;
  /** Milliseconds from sending the request to the end of the answer. */
  ms: number;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Send without Content-Length (chunked), so the server only learns the size while reading. */
  chunked?: boolean;
}

/** Raw HTTP, so malformed, compressed and chunked bodies go out exactly as written. */
export function request(
  url: string,
  method: string,
  path: string,
  body?: string | Buffer,
  opts: RequestOptions = {},
): Promise<Reply> {
  const started = performance.now();
  const length = body !== undefined && !opts.chunked ? { 'content-length': String(Buffer.byteLength(body)) } : {};
  const headers = { 'content-type': 'application/json', ...length, ...opts.headers };
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(parts);
        let parsed: unknown = {};
        try {
          parsed = JSON.parse(raw.toString() || '{}');
        } catch {
          /* not JSON: raw has it */
        }
        const ms = performance.now() - started;
        resolve({ status: res.statusCode!, headers: res.headers, raw, body: parsed as Reply['body'], ms });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** POST a JSON body. */
export function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(url, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body), { headers });
}

/** POST /v1/embeddings for model 'search-r3', with the `search_r3` extension when given. */
export function postEmbeddings(url: string, input: unknown, ext?: Record<string, unknown>): Promise<Reply> {
  return post(url, '/v1/embeddings', { model: 'search-r3', input, ...(ext ? { search_r3: ext } : {}) });
}

/** POSTs a JSON body and goes away once the first bytes of the answer come: a client leaving a stream. */
export function leaveAfterFirstBytes(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
    });
    req.on('response', (res) =>
      res.once('data', () => {
        req.destroy();
        resolve();
      }),
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
