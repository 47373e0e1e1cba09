/**
 * POST /v1/chat/completions: OpenAI's chat completions with the served model (one choice, no streaming),
 * so a generic OpenAI-compatible client can get the model's query analysis. The generation runs in the
 * model worker in turn with the embedding batches (../chat.ts).
 */
import { badRequest } from '../http-error.js';
import { charsBeyond } from '../input-limits.js';
import { parseChatFields } from '../request-fields.js';
import type { ServerContext } from '../server-context.js';

export async function chatCompletions(
  ctx: ServerContext,
  body: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<unknown> {
  if (body.model === undefined) throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
  ctx.checkModel(body.model);
  const job = parseChatFields(body);
  const chars = job.messages.reduce((a, m) => a + m.content.length, 0);
  if (chars > charsBeyond(ctx.model.maxLength, ctx.tokenChars)) {
    const message =
      `the messages have ${chars} characters, more than the ${ctx.model.maxLength} tokens of the context ` +
      'can hold; shorten them.';
    throw badRequest(message, 'messages', 'context_length_exceeded');
  }
  const r = await ctx.queue(1, () => ctx.model.chat(job, signal));
  return {
    id: `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelName,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: r.content },
        finish_reason: r.finish,
        stop_reason: r.stopReason,
        logprobs: null,
      },
    ],
    usage: {
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      total_tokens: r.promptTokens + r.completionTokens,
    },
  };
}
