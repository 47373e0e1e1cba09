/**
 * Training sequences of the Search-R3 protocol: the whole chat with the assistant turn written out
 * ("The embedding is <|embed_token|>.<|im_end|>"). One forward pass gives both the embedding (hidden
 * state at <|embed_token|>) and the response logits for L_SFT/L_KL; tokens after the embed token cannot
 * change its hidden state under causal attention, so the embedding equals the one inference computes.
 */
import { type PromptKind, type PromptTemplates, embedTokenId, encodePrompt } from '../../embed/index.js';
import type { Tokenizer } from '../../model/tokenizer.js';

export interface TrainSequence {
  ids: number[];
  /** Position of <|embed_token|>. */
  embedAt: number;
  /** Inputs at positions respFrom..respTo−1 predict ids[t+1]: the assistant response, <|im_end|> included. */
  respFrom: number;
  respTo: number;
  /** Tokens of the text cut to fit maxLength. */
  truncated: number;
}

export class SequenceEncoder {
  /** Response tokens before the embed token ("The embedding is"). */
  private readonly headLen: number;
  /** Response tokens after it, through <|im_end|> (".<|im_end|>"). */
  private readonly tail: number[];
  private readonly cache = new Map<string, TrainSequence>();

  constructor(
    readonly tokenizer: Tokenizer,
    readonly templates: PromptTemplates,
    readonly maxLength: number,
  ) {
    const embedId = embedTokenId(tokenizer);
    const imEnd = tokenizer.tokenToId('<|im_end|>');
    if (imEnd === undefined)
      throw new Error('the tokenizer has no <|im_end|>; stage-1 training needs a Qwen2 chat tokenizer');
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
  }

  /** Tokens every sequence spends on the response after the embed token. */
  get tailLength(): number {
    return this.tail.length;
  }

  encode(text: string, kind: PromptKind): TrainSequence {
    const key = `${kind}\u0000${text}`;
    let s = this.cache.get(key);
    if (!s) {
      const p = encodePrompt(this.tokenizer, text, kind, this.templates, this.maxLength - this.tail.length);
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
