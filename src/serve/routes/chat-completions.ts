/**
 * POST /v1/chat/completions: OpenAI's chat completions with the served model (one choice), so a generic
 * OpenAI-compatible client can get the model's query analysis. The generation runs in the model worker in
 * turn with the embedding batches (../chat.ts). With `"stream": true` the answer is OpenAI's stream of
 * `chat.completion.chunk` events: the role, the content in pieces as it is generated, the finish (and,
 * with `stream_options.include_usage`, a last chunk with the usage), then `data: [DONE]`.
 */
import type http from 'node:http';
import { eventWriter, lateError } from '../event-stream.js';
import { badRequest } from '../http-error.js';
import { charsBeyond } from '../input-limits.js';
import { parseChatDelivery, parseChatFields } from '../request-fields.js';
import type { ServerContext } from '../server-context.js';
import type { ChatJob, ChatResult } from '../worker-protocol.js';

/** Checks the request's fields and its length (400s name the field) before any model work. */
function parseChat(ctx: ServerContext, body: Record<string, unknown>): ChatJob {
  if (body.model === undefined || body.model === null) {
    throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
  }
  ctx.checkModel(body.model);
  const job = parseChatFields(body);
  const context = ctx.model.maxLength;
  // a chat template opens each turn with a token of its own, and the completion needs one more: many empty
  // messages, which the count of characters below lets through, would be rendered in the worker to be refused
  if (job.messages.length >= context) {
    const message =
      `the conversation has ${job.messages.length} messages, and each takes at least one of the ${context} ` +
      'tokens of the context, which leaves no room for a completion; send fewer.';
    throw badRequest(message, 'messages', 'context_length_exceeded');
  }
  const chars = job.messages.reduce((a, m) => a + m.content.length, 0);
  if (chars > charsBeyond(context, ctx.tokenChars)) {
    const message =
      `the messages have ${chars} characters, more than the ${context} tokens of the context ` +
      'can hold; shorten them.';
    throw badRequest(message, 'messages', 'context_length_exceeded');
  }
  return job;
}

/** The answer's identity: its id and creation time, which every chunk of a stream repeats. */
function completionIdentity(ctx: ServerContext): { id: string; created: number; model: string } {
  const id = `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  return { id, created: Math.floor(Date.now() / 1000), model: ctx.modelName };
}

const usage = (r: ChatResult): Record<string, number> => ({
  prompt_tokens: r.promptTokens,
  completion_tokens: r.completionTokens,
  total_tokens: r.promptTokens + r.completionTokens,
});

export async function chatCompletions(
  ctx: ServerContext,
  body: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<unknown> {
  const job = parseChat(ctx, body);
  parseChatDelivery(body);
  const r = await ctx.queue(1, () => ctx.model.chat(job, signal));
  return {
    ...completionIdentity(ctx),
    object: 'chat.completion',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: r.content },
        finish_reason: r.finish,
        stop_reason: r.stopReason,
        logprobs: null,
      },
    ],
    usage: usage(r),
  };
}

/**
 * The streamed answer. The head and the first chunk go out with the first piece of content (or the finish),
 * so a prompt the model worker finds too long is still a JSON 400. An error after that is one last
 * `data: {"error": ...}` event before `data: [DONE]`, as vLLM sends it (OpenAI's clients raise it).
 */
export async function chatCompletionsStream(
  ctx: ServerContext,
  body: Record<string, unknown>,
  res: http.ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const job = parseChat(ctx, body);
  const { includeUsage } = parseChatDelivery(body);
  const identity = completionIdentity(ctx);
  const write = eventWriter(res, () => ctx.draining);
  const data = (value: unknown): void => write(`data: ${JSON.stringify(value)}\n\n`);
  // with include_usage every chunk carries usage: null, and a last one with no choices carries the usage
  const chunk = (choices: unknown[], usageField: Record<string, number> | null = null): void =>
    data({ ...identity, object: 'chat.completion.chunk', choices, ...(includeUsage ? { usage: usageField } : {}) });
  const choice = (delta: Record<string, string>, finish: Partial<ChatResult> = {}): Record<string, unknown> => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finish.finish ?? null,
    ...(finish.finish ? { stop_reason: finish.stopReason } : {}),
  });
  let begun = false;
  const begin = (): void => {
    if (!begun) chunk([choice({ role: 'assistant', content: '' })]);
    begun = true;
  };
  try {
    const onContent = (piece: string): void => {
      begin();
      chunk([choice({ content: piece })]);
    };
    const r = await ctx.queue(1, () => ctx.model.chat(job, signal, onContent));
    begin();
    chunk([choice({}, r)]);
    if (includeUsage) chunk([], usage(r));
  } catch (e) {
    data(lateError(e, res, signal).body());
  }
  write('data: [DONE]\n\n');
  res.end();
}
