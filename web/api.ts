/**
 * What both pages share: the API key (kept in this tab's sessionStorage, sent as a Bearer token), calls
 * to the server whose failures become one sentence for the page, server-sent events, and the message box.
 * Paths (here and in the pages' links) are relative: both pages sit at the server's top level, so they
 * resolve to the same routes, and under a reverse proxy that serves the server at a path of its own
 * (https://host/search/) they stay under that path.
 */
const KEY_ITEM = 'search-r3-api-key';

export function apiKey(): string {
  return sessionStorage.getItem(KEY_ITEM) ?? '';
}

/** An API failure, said as the page shows it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

function headers(json: boolean): Record<string, string> {
  const key = apiKey();
  return {
    ...(json ? { 'content-type': 'application/json' } : {}),
    ...(key ? { authorization: `Bearer ${key}` } : {}),
  };
}

/** One sentence for a failed answer: the server's own message when it sent one. */
async function failure(res: Response): Promise<ApiError> {
  let message = `the server answered ${res.status} ${res.statusText}`.trim() + '.';
  try {
    const body = (await res.json()) as { error?: { message?: string }; reason?: string };
    // an API error's message, or /health's reason when the server is not ready
    if (body.error?.message) message = body.error.message;
    else if (body.reason) message = body.reason;
  } catch {
    // not JSON: the status says it
  }
  if (res.status === 401)
    message = apiKey()
      ? 'The server refused this API key. Enter the right key under “API key”.'
      : 'This server needs an API key. Enter it under “API key”.';
  return new ApiError(message, res.status);
}

async function send(path: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(`The server cannot be reached (${(e as Error).message}). Is search-r3 still running?`, 0);
  }
  if (!res.ok) throw await failure(res);
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await send(path, { headers: headers(false) })).json()) as T;
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  return (await (await send(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body) })).json()) as T;
}

/** POSTs a body and calls `onEvent` for each server-sent event of the answer, until the stream ends. */
export async function postEvents(
  path: string,
  body: unknown,
  onEvent: (name: string, data: unknown) => void,
): Promise<void> {
  const res = await send(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body) });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let name = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')));
    }
  }
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

/** Shows one message (an error unless `kind` says otherwise); null hides it. */
export function showMessage(text: string | null, kind: 'error' | 'note' = 'error'): void {
  const box = byId('message');
  box.hidden = text === null;
  box.textContent = text ?? '';
  box.className = `message ${kind}`;
}

/** The API key form in the header: a wrong key is said by the first call that fails. */
export function setUpKeyForm(onChange: () => void): void {
  const input = byId<HTMLInputElement>('api-key');
  input.value = apiKey();
  byId<HTMLFormElement>('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value) sessionStorage.setItem(KEY_ITEM, input.value);
    else sessionStorage.removeItem(KEY_ITEM);
    byId<HTMLDetailsElement>('key-box').open = false;
    onChange();
  });
}

/**
 * Opens the key form when a call failed for the key, so the fix is one step away, and puts the cursor
 * there unless the user is typing elsewhere: a check that fails in the background must not send the
 * rest of a query being typed into the key field.
 */
export function offerKey(e: unknown): void {
  if (e instanceof ApiError && e.status === 401) {
    byId<HTMLDetailsElement>('key-box').open = true;
    if (!typingElsewhere()) byId<HTMLInputElement>('api-key').focus();
  }
}

/** Whether the focus is in a text field other than the key's. */
function typingElsewhere(): boolean {
  const a = document.activeElement;
  if (a === null || a.id === 'api-key') return false;
  return a instanceof HTMLTextAreaElement || (a instanceof HTMLInputElement && /^(text|search|)$/.test(a.type));
}

export function errorText(e: unknown): string {
  return e instanceof ApiError ? e.message : `Something went wrong in this page: ${(e as Error).message ?? e}`;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}
