import type { Tokenizer } from './tokenizer.js';

/**
 * The text of a sequence that grows a token at a time (a streamed generation), special tokens left out, equal at
 * every token to decoding the whole sequence. Where the tokenizer decodes by bytes, the text up to the last whole
 * character is kept and only the tokens after it are decoded (one or a few), so a completion of n tokens costs
 * O(n), not O(n²); a token that ends inside a character (decoded as U+FFFD) stays in the tail until a later one
 * completes it. Any other decoder decodes the whole sequence at each token.
 */
export class StreamingDecoder {
  private readonly ids: number[] = [];
  private readonly byBytes: boolean;
  /** ids[0..settled) decode to `settledText`, which ends on a whole character. */
  private settled = 0;
  private settledText = '';
  private text = '';

  constructor(private readonly tok: Tokenizer) {
    this.byBytes = tok.decodesByBytes;
  }

  /** Adds a token and returns the whole text so far. */
  push(id: number): string {
    if (this.tok.isSpecial(id)) return this.text;
    this.ids.push(id);
    if (!this.byBytes) return (this.text = this.tok.decode(this.ids, { skipSpecialTokens: true }));
    const tail = this.tok.decode(this.ids.slice(this.settled));
    this.text = this.settledText + tail;
    // U+FFFD at the end may be a character the next token completes; anything else is final
    if (!tail.endsWith('\uFFFD')) {
      this.settled = this.ids.length;
      this.settledText = this.text;
    }
    return this.text;
  }
}
