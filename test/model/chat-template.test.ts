import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatTemplate, chatTemplateSource } from '../../src/model/chat-template.js';
import { QWEN2_5_CHAT_TEMPLATE, QWEN2_5_DEFAULT_SYSTEM_PROMPT } from '../../src/model/qwen2-chat-template.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

const qwen25 = new ChatTemplate(QWEN2_5_CHAT_TEMPLATE, { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' });

// The published Qwen2.5 (ChatML) format, written out by hand: each turn is
// "<|im_start|>{role}\n{content}<|im_end|>\n".
test('Qwen2.5 template renders system + user + assistant byte-identical to the published format', () => {
  const system = 'Please represent user queries.';
  const user = 'What causes the seasons on Earth?\nAnswer briefly.';
  const assistant = 'The embedding is <|embed_token|>.';
  const rendered = qwen25.render([
    { role: 'system', content: system },
    { role: 'user', content: user },
    { role: 'assistant', content: assistant },
  ]);
  assert.equal(
    rendered,
    `<|im_start|>system\n${system}<|im_end|>\n<|im_start|>user\n${user}<|im_end|>\n` +
      `<|im_start|>assistant\n${assistant}<|im_end|>\n`,
  );
});

test('Qwen2.5 template: default system prompt when there is none, and the generation prompt', () => {
  assert.equal(QWEN2_5_DEFAULT_SYSTEM_PROMPT, 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.');
  const messages = [{ role: 'user', content: 'Hi' }];
  const head = `<|im_start|>system\n${QWEN2_5_DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n`;
  assert.equal(qwen25.render(messages), head);
  assert.equal(qwen25.render(messages, { addGenerationPrompt: false }), head);
  assert.equal(qwen25.render(messages, { addGenerationPrompt: true }), `${head}<|im_start|>assistant\n`);
  assert.equal(
    qwen25.render(
      [
        { role: 'system', content: '' },
        { role: 'user', content: 'q' },
      ],
      { addGenerationPrompt: true },
    ),
    '<|im_start|>system\n<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n',
  );
});

test('Qwen2.5 template: multi-turn, and tools in the published function-calling format', () => {
  assert.equal(
    qwen25.render(
      [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
        { role: 'user', content: 'c' },
      ],
      { addGenerationPrompt: true },
    ),
    `<|im_start|>system\n${QWEN2_5_DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\na<|im_end|>\n` +
      '<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n',
  );

  const tool = {
    type: 'function',
    function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  };
  const rendered = qwen25.render(
    [
      { role: 'user', content: 'Weather in 東京?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: '東京' } } }],
      },
      { role: 'tool', content: '{"temp": 20}' },
    ],
    { tools: [tool], addGenerationPrompt: true },
  );
  // tojson as Python's json.dumps(ensure_ascii=False): ", " and ": " separators, non-ASCII kept.
  assert.equal(
    rendered,
    `<|im_start|>system\n${QWEN2_5_DEFAULT_SYSTEM_PROMPT}\n\n# Tools\n\nYou may call one or more functions to ` +
      `assist with the user query.\n\n` +
      'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
      '{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", ' +
      '"properties": {"city": {"type": "string"}}}}}\n' +
      '</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
      '<tool_call></tool_call> XML tags:\n' +
      '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\nWeather in 東京?<|im_end|>\n' +
      '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": ' +
      '"東京"}}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
  );
});

test(
  'Tokenizer.renderChat uses the config template; the ' +
    'Search-R3 prompt tokenizes with <|embed_token|> as one token',
  () => {
    const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 600 });
    const tok = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    const text = tok.renderChat([
      { role: 'system', content: 'Please represent user queries.' },
      { role: 'user', content: 'how do vaccines work' },
      { role: 'assistant', content: 'The embedding is <|embed_token|>.' },
    ]);
    const ids = tok.encode(text);
    const embed = tok.tokenToId('<|embed_token|>')!;
    assert.equal(ids.filter((id) => id === embed).length, 1);
    assert.equal(ids.filter((id) => id === tok.tokenToId('<|im_start|>')).length, 3);
    assert.equal(ids.at(-2), tok.eosTokenId); // <|im_end|> then "\n"
    assert.equal(tok.decode(ids), text);
  },
);

test('templates: named list form, a missing template, a broken template', () => {
  assert.equal(
    chatTemplateSource({
      chat_template: [
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D' },
      ],
    }),
    'D',
  );
  assert.equal(chatTemplateSource({}), null);
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer();
  const none = Tokenizer.fromJSON(tokenizerJson, { ...tokenizerConfig, chat_template: undefined });
  assert.throws(
    () => none.renderChat([{ role: 'user', content: 'x' }]),
    /tokenizer_config\.json: has no chat_template/,
  );
  assert.throws(
    () => new ChatTemplate('{% if %}'),
    /tokenizer_config\.json: chat_template is not a valid Jinja template/,
  );
  // one flipped bit in Qwen's template (`messages` → `messagds`) still parses, and fails only when rendered
  const flipped = new ChatTemplate('{%- for message in messagds %}{{ message.content }}{%- endfor %}');
  assert.throws(
    () => flipped.render([{ role: 'user', content: 'x' }]),
    (e: Error) => e.name === 'ModelFileError' && /^tokenizer_config\.json: chat_template cannot/.test(e.message),
  );
  assert.throws(() => qwen25.render([]), /at least one message/);
});
