import { Template } from '@huggingface/jinja';
import { ModelFileError } from './model-file-error.js';
import { TOKENIZER_CONFIG_JSON, type TokenizerConfig } from './tokenizer-json.js';

/** One turn of a conversation, as HF chat templates expect it. Extra fields (tool_calls, ...) pass through. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  content: string;
  [key: string]: unknown;
}

export interface RenderChatOptions {
  /** Append the opening of an assistant turn (`<|im_start|>assistant\n` for Qwen), as HF's add_generation_prompt. */
  addGenerationPrompt?: boolean;
  /** Tool (function) descriptions, passed as the template's `tools`. */
  tools?: readonly unknown[];
  /** Further template variables (e.g. `enable_thinking`), as HF's extra `apply_chat_template` kwargs. */
  variables?: Readonly<Record<string, unknown>>;
}

/** A chat template that parses failed on a conversation; `reason` is the template's (or Jinja's) own words. */
export class ChatRenderError extends ModelFileError {
  constructor(
    file: string,
    readonly reason: string,
  ) {
    super(file, `chat_template cannot render this conversation (${reason}).`);
  }
}

/** The special tokens HF passes to every chat template. */
export interface ChatTemplateSpecialTokens {
  bos_token?: string | null;
  eos_token?: string | null;
  pad_token?: string | null;
  unk_token?: string | null;
}

/**
 * The chat template of tokenizer_config.json: a string, or a list of named templates of which
 * "default" is used (as HF does). Null when the config has none.
 */
export function chatTemplateSource(config: TokenizerConfig, name = 'default'): string | null {
  const template = config.chat_template;
  if (template === undefined || template === null) return null;
  if (typeof template === 'string') return template;
  const found = template.find((t) => t.name === name);
  return found ? found.template : null;
}

/**
 * A compiled Jinja chat template, rendered with @huggingface/jinja (which, like transformers, uses
 * trim_blocks and lstrip_blocks), given the same variables transformers gives it.
 */
export class ChatTemplate {
  private readonly template: Template;

  /** `file` names the file the template was read from (tokenizer_config.json or chat_template.jinja) in messages. */
  constructor(
    readonly source: string,
    private readonly specialTokens: ChatTemplateSpecialTokens = {},
    private readonly file = TOKENIZER_CONFIG_JSON,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ModelFileError(file, `chat_template is not a valid Jinja template (${(err as Error).message}).`);
    }
  }

  render(messages: readonly ChatMessage[], options: RenderChatOptions = {}): string {
    if (messages.length === 0) throw new RangeError('A chat needs at least one message.');
    const variables: Record<string, unknown> = {
      ...this.specialTokens,
      ...(options.variables ?? {}),
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    if (options.tools !== undefined && options.tools.length > 0) variables.tools = options.tools;
    try {
      return this.template.render(variables);
    } catch (err) {
      // a template that parses can still fail on these messages (a damaged file, or one for other inputs)
      throw new ChatRenderError(this.file, (err as Error).message);
    }
  }
}
