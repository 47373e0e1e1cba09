/**
 * OpenAI's chat completions with the served model (one choice), run in the model worker, so a generic
 * OpenAI-compatible client (RemoteEmbedder's 'openai' protocol, or anything else) can get the model's
 * query analysis. A stop that names a special token (e.g. <|embed_token|>) stops at that token; a stop
 * that is text ends the generation at the token whose text completes it, and the content is cut before
 * it, as OpenAI does. `stopReason` says which stop ended the text, as vLLM reports it. A streamed completion
 * sends its content as it grows, holding back what a stop could still claim.
 */
import path from 'node:path';
import { assistantEndTokens, type Embedder } from '../embed/index.js';
import { ChatRenderError, type ChatMessage } from '../model/chat-template.js';
import { type Steps, generateSteps } from '../model/generate.js';
import { ModelFileError } from '../model/model-file-error.js';
import { StreamingDecoder } from '../model/streaming-decoder.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { HttpError, badRequest } from './http-error.js';
import { type ChatJob, type ChatResult, MAX_COMPLETION_TOKENS } from './worker-protocol.js';

export interface PreparedChat {
  prompt: number[];
  maxNewTokens: number;
  /** Token id → the stop it stands for ('' for the tokenizer's EOS when no stop names it). */
  stopIds: Map<number, string>;
  /** Stops that are text, applied to the decoded completion. */
  textStops: string[];
}

/**
 * Tokens the completion may have: the context left after the prompt, within the prompt cut and the
 * model's positions, as vLLM counts it (prompt + completion ≤ context: the last token is generated, never fed).
 */
export function completionRoom(promptTokens: number, maxLength: number, contextLength: number): number {
  return Math.min(maxLength - promptTokens, contextLength - promptTokens, MAX_COMPLETION_TOKENS);
}

const renders = (tok: Tokenizer, messages: readonly ChatMessage[]): string =>
  tok.renderChat(messages, { addGenerationPrompt: true });

/**
 * The conversation as the model's chat template renders it. What the template says when it fails reaches the
 * client without the machine's paths: when it still renders a plain question, the fault is these messages'
 * (a template may refuse an order of roles), a 400 naming `messages`; else the model folder's, a 500 naming
 * its file by name alone.
 */
function renderConversation(tok: Tokenizer, messages: readonly ChatMessage[]): string {
  try {
    return renders(tok, messages);
  } catch (e) {
    if (!(e instanceof ModelFileError)) throw e;
    if (e instanceof ChatRenderError && rendersPlainQuestion(tok)) {
      throw badRequest(`the model's chat template cannot render these messages (${e.reason}).`, 'messages');
    }
    const message = `internal error: the model's ${path.basename(e.file)}: ${e.problem}`;
    throw new HttpError(500, message, 'internal_error');
  }
}

function rendersPlainQuestion(tok: Tokenizer): boolean {
  try {
    renders(tok, [{ role: 'user', content: 'What is this?' }]);
    return true;
  } catch {
    return false;
  }
}

/** Renders and tokenizes the conversation and checks it against the context (400s name `messages`). */
export function prepareChat(embedder: Embedder, job: ChatJob): PreparedChat {
  const tok = embedder.tokenizer;
  const prompt = tok.encode(renderConversation(tok, job.messages));
  const room = completionRoom(prompt.length, embedder.maxLength, embedder.model.config.maxPositionEmbeddings);
  if (room < 1) {
    const message =
      `the prompt has ${prompt.length} tokens, which leaves no room for a completion in the context of ` +
      `${embedder.maxLength}; shorten the messages.`;
    throw badRequest(message, 'messages', 'context_length_exceeded');
  }
  if (job.maxTokens !== undefined && job.maxTokens > room) {
    const field = job.maxTokensField ?? 'max_tokens';
    const message =
      `the prompt has ${prompt.length} tokens; with ${field} ${job.maxTokens} it exceeds the context ` +
      `of ${embedder.maxLength} (at most ${room} tokens are left; leave ${field} out to get them).`;
    throw badRequest(message, 'messages', 'context_length_exceeded');
  }
  const { stopIds, textStops } = sortStops(tok, job.stops);
  return { prompt, maxNewTokens: job.maxTokens ?? room, stopIds, textStops };
}

/** The turn-ending tokens always stop; a requested stop that is a special token stops at that token. */
function sortStops(tok: Tokenizer, stops: readonly string[]): { stopIds: Map<number, string>; textStops: string[] } {
  const stopIds = new Map(assistantEndTokens(tok));
  const textStops: string[] = [];
  for (const s of stops) {
    const id = tok.tokenToId(s);
    if (id !== undefined && tok.isSpecial(id)) stopIds.set(id, s);
    else textStops.push(s);
  }
  return { stopIds, textStops };
}

/**
 * Whether generated tokens have come to contain one of `stops` in their text. Only the tail the last token
 * can complete a stop in is decoded: a stop of L characters is at most 4L bytes, hence 4L byte-level tokens,
 * and 4 more tokens cover a character cut at the tail's start. Special tokens (skipped in the text) do not count.
 */
function textStopper(tok: Tokenizer, stops: readonly string[]): (row: number, tokens: readonly number[]) => boolean {
  const window = 4 * Math.max(...stops.map((s) => s.length)) + 4;
  return (_row, tokens) => {
    let start = tokens.length;
    for (let kept = 0; start > 0 && kept < window;) if (!tok.isSpecial(tokens[--start])) kept++;
    const tail = tok.decode(tokens.slice(start), { skipSpecialTokens: true });
    return stops.some((s) => tail.includes(s));
  };
}

/** The first stop string in `content` and where it starts (the earliest, as OpenAI cuts). */
function firstStop(content: string, stops: readonly string[]): { at: number; stop: string } | null {
  let first: { at: number; stop: string } | null = null;
  for (const stop of stops) {
    const at = content.indexOf(stop);
    if (at >= 0 && (first === null || at < first.at)) first = { at, stop };
  }
  return first;
}

/**
 * What of the text generated so far may be sent to a client that streams: the text before the first stop,
 * less a tail that could still grow into a stop (the next tokens tell), and less a character whose bytes
 * have not all come yet (decoded as U+FFFD). Each call's answer extends the one before, as the text grows.
 */
export function sendableContent(text: string, stops: readonly string[]): string {
  const cut = firstStop(text, stops);
  if (cut) return text.slice(0, cut.at);
  const end = text.replace(/\uFFFD+$/u, '').length;
  let held = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, end); k > held; k--) {
      if (text.startsWith(stop.slice(0, k), end - k)) {
        held = k;
        break;
      }
    }
  }
  return text.slice(0, end - held);
}

/**
 * Sends the content in pieces as tokens come (`token`), and what is left once the completion is known
 * (`end`). A piece is sent only when the text extends what was sent, which a decoder that cleans up
 * spaces (clean_up_tokenization_spaces) may not do at every token.
 */
function contentSender(
  tok: Tokenizer,
  stops: readonly string[],
  send: (piece: string) => void,
): { token: (row: number, token: number) => void; end: (content: string) => void } {
  const text = new StreamingDecoder(tok);
  let sent = '';
  const offer = (content: string): void => {
    if (content.length <= sent.length || !content.startsWith(sent)) return;
    send(content.slice(sent.length));
    sent = content;
  };
  return {
    token: (_row, token) => {
      if (!tok.isSpecial(token)) offer(sendableContent(text.push(token), stops));
    },
    end: offer,
  };
}

/**
 * Generates the completion, one forward pass per step (the model work, run in turn with the embedding batches).
 * `onContent`: sees the content in pieces as it is generated (a streamed completion), all of it before
 * the steps return.
 */
export function* chatSteps(
  embedder: Embedder,
  job: ChatJob,
  p: PreparedChat,
  onContent?: (piece: string) => void,
): Steps<ChatResult> {
  const tok = embedder.tokenizer;
  const sender = onContent ? contentSender(tok, p.textStops, onContent) : undefined;
  const [g] = yield* generateSteps(embedder.model, [p.prompt], {
    maxNewTokens: p.maxNewTokens,
    temperature: job.temperature,
    topP: job.topP,
    seed: job.seed,
    stopTokens: [...p.stopIds.keys()],
    ...(p.textStops.length > 0 ? { stopWhen: textStopper(tok, p.textStops) } : {}),
    ...(sender ? { onToken: sender.token } : {}),
  });
  let finish: 'stop' | 'length' = g.finish;
  let stopReason: string | null = null;
  let tokens = g.tokens;
  const last = tokens[tokens.length - 1];
  if (g.finish === 'stop' && p.stopIds.has(last)) {
    stopReason = p.stopIds.get(last) || null;
    tokens = tokens.slice(0, -1);
  }
  let content = tok.decode(tokens, { skipSpecialTokens: true });
  const cut = firstStop(content, p.textStops);
  if (cut) {
    content = content.slice(0, cut.at);
    finish = 'stop';
    stopReason = cut.stop;
  }
  sender?.end(content);
  // the tokens generated, up to and including the one that completed a stop
  return { content, finish, stopReason, promptTokens: p.prompt.length, completionTokens: g.tokens.length };
}
