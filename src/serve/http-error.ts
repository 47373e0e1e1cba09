/**
 * Errors a request can get, in OpenAI's shape: {"error": {"message", "type", "param", "code"}}, so the
 * official clients surface them as typed errors (BadRequestError, RateLimitError, ...).
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Headers the answer carries (a 405's Allow). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }

  get type(): string {
    if (this.status === 401) return 'authentication_error';
    if (this.status === 404 && this.code === 'model_not_found') return 'invalid_request_error';
    if (this.status === 429) return 'rate_limit_error';
    if (this.status >= 500) return 'server_error';
    return 'invalid_request_error';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code = 'invalid_value'): HttpError =>
  new HttpError(400, message, code, param);
