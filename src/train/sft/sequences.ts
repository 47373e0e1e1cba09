/**
 * Training sequences of the Search-R3 protocol: the whole chat with the assistant turn written out
 * ("The embedding is <|embed_token|>.<|im_end|>"). One forward pass gives both the embedding (hidden
 * state at <|embed_token|>) and the response logits for L_SFT/L_KL; tokens after the embed token cannot
 * change its hidden state under causal attention, so the embedding equals the one inference computes.
 *
 * A query can also be written in the reasoning form: the reasoning system prompt, and an assistant turn
 * that begins with an analysis ("Key concepts: ... Related: ...") before the direct response. Its response
 * (analysis included) is what L_SFT learns, and its embedding is the hidden state at the embed token after
 * the analysis: what inference with reasoning on computes when the model writes that analysis.
 */
import { type PromptKind, type PromptTemplates, UNCOUNTED_CUT, embedTokenId, encodePrompt } from '../../embed/index.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { type ConceptAnalysis, formatAnalysis, shorterAnalyses } from './analysis.js';

export interface TrainSequence {
  ids: number[];
  /** Position of <|embed_token|>. */
  embedAt: number;
  /** Inputs at positions respFrom..respTo−1 predict ids[t+1]: the assistant response, <|im_end|> included. */
  respFrom: number;
  respTo: number;
  /** Above 0 when the text was cut to fit maxLength (how many tokens it lost is not counted). */
  truncated: number;
  /** Reasoning form: the analysis written before the embed token (after any shortening to fit), else absent. */
  analysis?: string;
}

export class SequenceEncoder {
  /** Response tokens before the embed token ("The embedding is"). */
  private readonly headLen: number;
  /** Response tokens after it, through <|im_end|> (".<|im_end|>"). */
  private readonly tail: number[];
  private readonly cache = new Map<string, TrainSequence>();
  private readonly embedId: number;
  private readonly imEnd: number;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly templates: PromptTemplates,
    readonly maxLength: number,
  ) {
    const embedId = embedTokenId(tokenizer);
    const imEnd = tokenizer.tokenToId('<|im_end|>');
    if (imEnd === undefined)
      throw new Error('the tokenizer has no <|im_end|>; stage-1 training needs a Qwen2 chat tokenizer');
    this.embedId = embedId;
    this.imEnd = imEnd;
    const messages = [
      { role: 'system', content: templates.querySystem },
      { role: 'user', content: 'x' },
    ];
    const prefix = tokenizer.encode(tokenizer.renderChat(messages, { addGenerationPrompt: true }));
    const full = tokenizer.encode(
      tokenizer.renderChat([...messages, { role: 'assistant', content: templates.directResponse }]),
    );
    if (full.slice(0, prefix.length).join() !== prefix.join()) {
      throw new Error(
        'the chat template does not render the assistant turn after the generation prompt; cannot locate the response',
      );
    }
    const at = full.indexOf(embedId, prefix.length);
    if (at < 0 || full.indexOf(embedId, at + 1) >= 0)
      throw new Error('templates.directResponse must contain <|embed_token|> exactly once');
    const end = full.indexOf(imEnd, at);
    if (end < 0) throw new Error('the rendered assistant turn does not end with <|im_end|>');
    this.headLen = at - prefix.length;
    this.tail = full.slice(at + 1, end + 1);
    // prompt templates too long for maxLength fail here, before a run folder is made, not at the first batch
    for (const kind of ['query', 'document'] as const) this.encode('', kind);
  }

  /** Tokens every sequence spends on the response after the embed token. */
  get tailLength(): number {
    return this.tail.length;
  }

  /**
   * A query in the reasoning form. The analysis is shortened (related terms first, then concepts) until it
   * and the words before the embed token take at most `maxTokens`, the budget inference and stage 2 give
   * an analysis; when even none fits, the response is the direct one under the reasoning prompt.
   */
  encodeReasoning(query: string, analysis: ConceptAnalysis, maxTokens: number): TrainSequence {
    const key = `reasoning\u0000${maxTokens}\u0000${query}\u0000${JSON.stringify(analysis)}`;
    let s = this.cache.get(key);
    if (s) return s;
    let written = '',
      content = this.templates.directResponse,
      contentIds = this.tokenizer.encode(content);
    for (const a of shorterAnalyses(analysis)) {
      const text = formatAnalysis(a);
      const c = text === '' ? this.templates.directResponse : `${text} ${this.templates.directResponse}`;
      const ids = this.tokenizer.encode(c);
      if (ids.indexOf(this.embedId) <= maxTokens) {
        [written, content, contentIds] = [text, c, ids];
        break;
      }
    }
    const at = contentIds.indexOf(this.embedId);
    if (at < 0 || contentIds.indexOf(this.embedId, at + 1) >= 0)
      throw new Error(`the reasoning response must contain <|embed_token|> exactly once: ${JSON.stringify(content)}`);
    const response = [...contentIds, this.imEnd];
    const budget = this.maxLength - response.length;
    const p = encodePrompt(this.tokenizer, query, 'query', this.templates, budget, true, UNCOUNTED_CUT);
    // the check renders the query whole, so it runs on the first sequence whose query was not cut
    if (p.truncated === 0) this.checkReasoningRender(query, p.ids, content, response);
    const ids = [...p.ids, ...response];
    s = {
      ids,
      embedAt: p.ids.length + at,
      respFrom: p.ids.length - 1,
      respTo: ids.length - 1,
      truncated: p.truncated,
      ...(written !== '' ? { analysis: written } : {}),
    };
    this.cache.set(key, s);
    return s;
  }

  private reasoningChecked = false;

  /**
   * Once: the chat template renders the assistant turn right after the generation prompt, and the
   * response tokenizes the same alone as within the whole chat, so the sequence is the one the model
   * would produce by writing that response.
   */
  private checkReasoningRender(query: string, prompt: number[], content: string, response: number[]): void {
    if (this.reasoningChecked) return;
    const messages = [
      { role: 'system', content: this.templates.reasoningSystem },
      { role: 'user', content: query },
      { role: 'assistant', content },
    ];
    const full = this.tokenizer.encode(this.tokenizer.renderChat(messages));
    if (full.length >= prompt.length + response.length && full.slice(0, prompt.length).join() === prompt.join()) {
      if (full.slice(prompt.length, prompt.length + response.length).join() === response.join()) {
        this.reasoningChecked = true;
        return;
      }
    }
    throw new Error(
      'the chat template does not render the reasoning response right after the generation prompt, or it ' +
        'tokenizes differently inside the chat; cannot train the reasoning form with this tokenizer',
    );
  }

  encode(text: string, kind: PromptKind): TrainSequence {
    const key = `${kind}\u0000${text}`;
    let s = this.cache.get(key);
    if (!s) {
      const budget = this.maxLength - this.tail.length;
      const p = encodePrompt(this.tokenizer, text, kind, this.templates, budget, false, UNCOUNTED_CUT);
      const ids = [...p.ids, ...this.tail];
      s = {
        ids,
        embedAt: p.embedAt,
        respFrom: p.embedAt - this.headLen - 1,
        respTo: ids.length - 1,
        truncated: p.truncated,
      };
      this.cache.set(key, s);
    }
    return s;
  }
}
