import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { ChatTemplate, chatTemplateSource, type ChatMessage, type RenderChatOptions } from './chat-template.js';
import { ModelFileError } from './model-file-error.js';
import { isTextCut, nextTextCut, previousTextCut, textCutRules, type TextCutRules } from './text-cut.js';
import {
  CHAT_TEMPLATE_JINJA,
  checkTokenizerConfig,
  checkTokenizerJson,
  mergePairs,
  readTokenizerFolder,
  specialAddedToken,
  specialTokenContent,
  TOKENIZER_CONFIG_JSON,
  TOKENIZER_JSON,
  type AddedTokenJson,
  type TokenizerConfig,
  type TokenizerFolderFiles,
  type TokenizerJson,
} from './tokenizer-json.js';
import { makeFolder } from '../io/make-folder.js';

export interface EncodeOptions {
  /**
   * Let the post-processor add its special tokens (BOS/EOS), as HF's `add_special_tokens`. Qwen2's
   * post-processor adds none, so for Qwen this changes nothing. Default true, as in HF.
   */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out added tokens marked `special` (<|im_end|>, <|embed_token|>, ...), as HF does. Default false. */
  skipSpecialTokens?: boolean;
}

/** What `addSpecialTokens` did: the id of each requested token, and how many of them are new. */
export interface AddedSpecialTokens {
  ids: number[];
  /** Number of tokens that did not exist before; the model's embedding (and untied head) needs this many more rows. */
  added: number;
}

/** A tokenizer built from objects, not read from a folder: messages name its files by their usual names. */
const BARE_NAMES: TokenizerFolderFiles = { json: TOKENIZER_JSON, config: TOKENIZER_CONFIG_JSON, chatTemplate: null };

/**
 * A Hugging Face byte-level BPE tokenizer (the Qwen2 family) read from `tokenizer.json`,
 * `tokenizer_config.json` and, where there is one, `chat_template.jinja`. The engine is
 * @huggingface/tokenizers, which we checked against the Rust `tokenizers` crate on Qwen2's pre-tokenizer
 * (its JS translation of the Oniguruma regex matches where a plain JS RegExp does not, e.g. on U+FEFF).
 * This class adds what the rest of the project needs on top: loading with clear errors, special-token ids
 * from the config, adding special tokens, saving, and the chat template.
 *
 * `fromJSON` takes the two objects as they are and never mutates them: changes (added tokens) make
 * new top-level objects, so the caller's copies stay valid.
 */
export class Tokenizer {
  private engine: HfTokenizer;
  private json: TokenizerJson;
  private config: TokenizerConfig;
  private specialIds: Set<number>;
  private size: number;
  private template: ChatTemplate | null = null;
  private cutRules: TextCutRules | null;

  /** `files` names where the two came from, for messages. */
  private constructor(
    json: TokenizerJson,
    config: TokenizerConfig,
    private readonly files: TokenizerFolderFiles = BARE_NAMES,
  ) {
    this.json = json;
    this.config = config;
    this.engine = Tokenizer.buildEngine(json, config, files.json);
    this.specialIds = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));
    this.size = Tokenizer.countVocab(json);
    this.cutRules = textCutRules(json, config);
    // Resolve now so that a config naming a token the vocabulary lacks fails at load time.
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const) this.configTokenId(key);
  }

  /** Loads `tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` (if any) from a model folder. */
  static async fromFolder(dir: string): Promise<Tokenizer> {
    const { tokenizerJson, tokenizerConfig, files } = await readTokenizerFolder(dir);
    return new Tokenizer(tokenizerJson, tokenizerConfig, files);
  }

  /** Builds a tokenizer from the parsed contents of the two files. */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown): Tokenizer {
    return new Tokenizer(checkTokenizerJson(tokenizerJson), checkTokenizerConfig(tokenizerConfig));
  }

  private static buildEngine(json: TokenizerJson, config: TokenizerConfig, file: string): HfTokenizer {
    // Byte-level BPE decodes exactly; HF's "clean up tokenization spaces" (" ." -> ".") would break
    // decode(encode(s)) = s, so it is only applied when the config asks for it (Qwen's says false).
    const engineConfig = { ...config, clean_up_tokenization_spaces: config.clean_up_tokenization_spaces === true };
    let engine: HfTokenizer;
    try {
      engine = new HfTokenizer(json, engineConfig);
    } catch (err) {
      throw new ModelFileError(file, `cannot be used: ${(err as Error).message}`);
    }
    installWordCache(engine);
    return engine;
  }

  private static countVocab(json: TokenizerJson): number {
    let max = -1;
    for (const id of Object.values(json.model.vocab)) if (id > max) max = id;
    for (const t of json.added_tokens) if (t.id > max) max = t.id;
    return max + 1;
  }

  /** Number of token ids, added tokens included (one more than the largest id). */
  get vocabSize(): number {
    return this.size;
  }

  /**
   * Token ids of `text`. Added and special tokens written in the text (e.g. "<|im_start|>") become single tokens, as in
   * HF.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (text.length === 0) return [];
    return this.engine.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /**
   * encode(text).slice(0, n), encoding only as much of a long text as that needs: a prefix ending at a cut
   * (see text-cut.ts), grown until it gives n tokens. A tokenizer without cut rules encodes the whole text.
   */
  encodeHead(text: string, n: number): number[] {
    if (n <= 0) return [];
    // a first guess of the characters n tokens take (about 4 for English); short texts are encoded whole
    let chars = n * HEAD_CHARS_PER_TOKEN + HEAD_SLACK_CHARS;
    while (this.cutRules !== null && chars < text.length) {
      const at = nextTextCut(text, chars, this.cutRules);
      if (at < 0) break;
      const ids = this.encode(text.slice(0, at));
      if (ids.length >= n) return ids.slice(0, n);
      chars = Math.max(2 * at, Math.ceil(((at * n) / Math.max(1, ids.length)) * 1.25));
    }
    return this.encode(text).slice(0, n);
  }

  /**
   * The text of the first tokens of `text`, as many as re-encode to at most `n` (a cut that ends inside a
   * character decodes to U+FFFD, which may take more tokens: a token fewer is tried then), and its token count.
   */
  headText(text: string, n: number): { text: string; tokens: number } {
    const head = this.encodeHead(text, n);
    for (let k = head.length; k >= 1; k--) {
      const cut = this.decode(head.slice(0, k));
      const tokens = this.countTokens(cut);
      if (tokens <= n) return { text: cut, tokens };
    }
    return { text: '', tokens: 0 };
  }

  /**
   * encode(text).length, encoding a long text a piece at a time between cuts (see text-cut.ts), so that the
   * tokens of no more than one piece are held at once.
   */
  countTokens(text: string): number {
    let count = 0;
    let rest = text;
    while (this.cutRules !== null && rest.length > COUNT_PIECE_CHARS) {
      const at = nextTextCut(rest, COUNT_PIECE_CHARS, this.cutRules);
      if (at < 0) break;
      count += this.encode(rest.slice(0, at)).length;
      rest = rest.slice(at);
    }
    return count + this.encode(rest).length;
  }

  /** True when encode(text) = encode(text.slice(0, at)) ++ encode(text.slice(at)) is known (text-cut.ts). */
  isCut(text: string, at: number): boolean {
    return this.cutRules !== null && isTextCut(text, at, this.cutRules);
  }

  /** The first position at or after `from` (and before `to`) that isCut, or -1. */
  nextCut(text: string, from: number, to = text.length): number {
    return this.cutRules === null ? -1 : nextTextCut(text, from, this.cutRules, to);
  }

  /** The last position at or before `before` (and not before `downTo`) that isCut, or -1. */
  previousCut(text: string, before: number, downTo = 1): number {
    return this.cutRules === null ? -1 : previousTextCut(text, before, this.cutRules, downTo);
  }

  /** Token strings (byte-level alphabet, e.g. "Ġworld") of `text`. */
  tokenize(text: string): string[] {
    if (text.length === 0) return [];
    return this.engine.encode(text, { add_special_tokens: false }).tokens;
  }

  /**
   * Text of `ids`. Bytes that do not form valid UTF-8 (a partial character) decode to U+FFFD, as HF's errors="replace".
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    let kept = ids;
    if (options.skipSpecialTokens) kept = ids.filter((id) => !this.specialIds.has(id));
    for (const id of kept) {
      if (!Number.isInteger(id) || id < 0 || id >= this.size || this.engine.id_to_token(id) === undefined) {
        throw new RangeError(`Token id ${id} is not in the vocabulary (ids 0..${this.size - 1}).`);
      }
    }
    if (kept.length === 0) return '';
    return this.engine.decode(kept as number[], { skip_special_tokens: false });
  }

  tokenToId(token: string): number | undefined {
    return this.engine.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.engine.id_to_token(id);
  }

  /**
   * True when the text of ids a + b is the text of a followed by the text of b, wherever a's bytes end on a
   * whole character: a byte-level decoder joins its tokens' bytes and reads them as UTF-8 (added tokens as
   * they are written), with nothing else applied. Cleaning up spaces (" ." -> ".") breaks it, as does any other
   * decoder (a metaspace one drops the first token's leading space).
   */
  get decodesByBytes(): boolean {
    const decoder = this.json.decoder as { type?: unknown } | null;
    return decoder?.type === 'ByteLevel' && this.config.clean_up_tokenization_spaces !== true;
  }

  /** True for added tokens marked special (those `decode` skips with skipSpecialTokens). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The added tokens (special or not), in id order. */
  get addedTokens(): readonly Readonly<AddedTokenJson>[] {
    return [...this.json.added_tokens].sort((a, b) => a.id - b.id);
  }

  /** Every token string by id (added tokens included); for GGUF export. Ids with no token are ''. */
  vocabulary(): string[] {
    const tokens = new Array<string>(this.size).fill('');
    for (const [token, id] of Object.entries(this.json.model.vocab)) tokens[id] = token;
    for (const t of this.json.added_tokens) tokens[t.id] = t.content;
    return tokens;
  }

  /**
   * The most UTF-16 units of text one token can stand for: a byte-level token at most as many as it has
   * bytes (its length in the byte alphabet), an added token its content. A text of n units (after
   * normalization) therefore has at least n / longestTokenChars tokens, which is known without encoding it.
   */
  longestTokenChars(): number {
    let longest = 1;
    for (const t of this.vocabulary()) if (t.length > longest) longest = t.length;
    return longest;
  }

  /** The BPE merges in rank order; for GGUF export (write them as `${a} ${b}`). */
  merges(): Array<[string, string]> {
    return mergePairs(this.json.model);
  }

  get bosTokenId(): number | null {
    return this.configTokenId('bos_token');
  }

  get eosTokenId(): number | null {
    return this.configTokenId('eos_token');
  }

  get padTokenId(): number | null {
    return this.configTokenId('pad_token');
  }

  get unkTokenId(): number | null {
    return this.configTokenId('unk_token');
  }

  private configTokenId(key: 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token'): number | null {
    const content = specialTokenContent(this.config[key]);
    if (content === null) return null;
    const id = this.engine.token_to_id(content);
    if (id === undefined) {
      const why = `${key} is ${JSON.stringify(content)}, which is not a token of tokenizer.json.`;
      throw new ModelFileError(this.files.config, why);
    }
    return id;
  }

  /**
   * Adds special tokens (e.g. "<|embed_token|>") that are not yet in the vocabulary, with ids after the
   * current last id, as HF's `add_special_tokens` does. Tokens already known keep their id (a known
   * added token is marked special). The caller that owns the model weights must then grow the
   * embedding (and an untied LM head) to `vocabSize` rows; `added` says by how many.
   */
  addSpecialTokens(tokens: readonly string[]): AddedSpecialTokens {
    const addedTokens = this.json.added_tokens.map((t) => ({ ...t }));
    const decoder = { ...(this.config.added_tokens_decoder ?? {}) };
    const additional = [...(this.config.additional_special_tokens ?? [])];
    const ids: number[] = [];
    let next = this.size;
    let added = 0;
    for (const content of tokens) {
      if (content.length === 0) throw new RangeError('A special token cannot be the empty string.');
      let entry = addedTokens.find((t) => t.content === content);
      if (entry === undefined) {
        const existing = this.json.model.vocab[content];
        entry = specialAddedToken(existing ?? next, content);
        addedTokens.push(entry);
        if (existing === undefined) {
          next += 1;
          added += 1;
        }
      }
      entry.special = true;
      const { id, ...rest } = entry;
      decoder[String(id)] = rest;
      if (!additional.includes(content)) additional.push(content);
      ids.push(id);
    }
    const json: TokenizerJson = { ...this.json, added_tokens: addedTokens.sort((a, b) => a.id - b.id) };
    const config: TokenizerConfig = {
      ...this.config,
      added_tokens_decoder: sortById(decoder),
      additional_special_tokens: additional,
    };
    this.engine = Tokenizer.buildEngine(json, config, this.files.json);
    this.json = json;
    this.config = config;
    this.specialIds = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));
    this.size = Tokenizer.countVocab(json);
    this.cutRules = textCutRules(json, config);
    return { ids, added };
  }

  /** The two files' contents as they would be saved (shared, not copied: do not mutate). */
  toJSON(): { tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfig } {
    return { tokenizerJson: this.json, tokenizerConfig: this.config };
  }

  /**
   * Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed), each through a temp file and
   * rename. A chat template read from chat_template.jinja is written back there, as transformers saves it.
   */
  async save(dir: string): Promise<void> {
    await makeFolder(dir);
    // tokenizer.json is large (11 MB for Qwen); written compact. The config is small and meant to be read.
    await writeTextFileAtomically(path.join(dir, TOKENIZER_JSON), JSON.stringify(this.json));
    const jinja = path.join(dir, CHAT_TEMPLATE_JINJA);
    const { chat_template: template, ...rest } = this.config;
    const fromJinja = this.files.chatTemplate !== null && typeof template === 'string';
    const config = fromJinja ? rest : this.config;
    await writeTextFileAtomically(path.join(dir, TOKENIZER_CONFIG_JSON), JSON.stringify(config, null, 2) + '\n');
    if (fromJinja) await writeTextFileAtomically(jinja, template);
    // a chat_template.jinja left there would replace the config's template when the folder is loaded again
    else await fsp.rm(jinja, { force: true });
  }

  /**
   * The chat template: chat_template.jinja's when the folder has one, else the config's (its default one when it has
   * several); null when there is none.
   */
  get chatTemplateSource(): string | null {
    return chatTemplateSource(this.config);
  }

  /** The file the chat template is read from (chat_template.jinja, else tokenizer_config.json), for messages. */
  get chatTemplateFile(): string {
    return this.files.chatTemplate ?? this.files.config;
  }

  /**
   * Renders a conversation with the config's chat template, as HF's
   * `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`.
   */
  renderChat(messages: readonly ChatMessage[], options: RenderChatOptions = {}): string {
    if (this.template === null) {
      const source = chatTemplateSource(this.config);
      if (source === null) {
        const jinja = `there is no ${CHAT_TEMPLATE_JINJA} beside it`;
        const why = `has no chat_template, and ${jinja}; add the model's chat template to render conversations.`;
        throw new ModelFileError(this.files.config, why);
      }
      this.template = new ChatTemplate(
        source,
        {
          bos_token: specialTokenContent(this.config.bos_token),
          eos_token: specialTokenContent(this.config.eos_token),
          pad_token: specialTokenContent(this.config.pad_token),
          unk_token: specialTokenContent(this.config.unk_token),
        },
        this.chatTemplateFile,
      );
    }
    return this.template.render(messages, options);
  }
}

/** encodeHead's first guess: this many characters per token wanted, plus a few. */
const HEAD_CHARS_PER_TOKEN = 4;
const HEAD_SLACK_CHARS = 64;
/** countTokens encodes a long text in pieces of about this many characters. */
const COUNT_PIECE_CHARS = 1 << 16;

/**
 * The engine caches the BPE of each pre-tokenized word in a 10,000-entry LRU whose bookkeeping (a
 * Map delete + set on every hit) costs more than it saves, and which is too small for a corpus:
 * SciFact has 51k distinct words. A plain Map of up to WORD_CACHE_LIMIT words, emptied when full,
 * roughly doubles encode speed. The cache is an internal of @huggingface/tokenizers (pinned); when a
 * version lacks it, the engine's own cache stays and only speed changes.
 */
const WORD_CACHE_LIMIT = 1 << 17;

function installWordCache(engine: HfTokenizer): void {
  const model = engine.model as unknown as { cache?: { get?: unknown; put?: unknown; clear?: unknown } } | null;
  if (!model || typeof model.cache?.get !== 'function' || typeof model.cache?.put !== 'function') return;
  const words = new Map<string, string[]>();
  model.cache = {
    get: (word: string) => words.get(word),
    put: (word: string, tokens: string[]) => {
      if (words.size >= WORD_CACHE_LIMIT) words.clear();
      words.set(word, tokens);
    },
    clear: () => words.clear(),
  };
}

function sortById<T>(byId: Record<string, T>): Record<string, T> {
  const sorted: Record<string, T> = {};
  for (const key of Object.keys(byId).sort((a, b) => Number(a) - Number(b))) sorted[key] = byId[key] as T;
  return sorted;
}
