import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from './command.js';

/**
 * node's util.parseArgs, refusing an option that takes one value given twice with two values (`--input a.jsonl
 * --input b.jsonl`): parseArgs keeps the last and drops the other without a word, so the run would index, search
 * or train on half of what the command line names. The same value twice, and a flag twice, mean one thing and
 * are taken; options declared `multiple` collect every value as before.
 */
export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  const parsed = nodeParseArgs({ ...config, tokens: true });
  const first = new Map<string, string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || token.value === undefined) continue;
    if (config.options?.[token.name]?.multiple === true) continue;
    const earlier = first.get(token.name);
    if (earlier === undefined) first.set(token.name, token.value);
    else if (earlier !== token.value) {
      throw new UserError(
        `--${token.name} is given twice ('${earlier}' and '${token.value}') and takes one value; give it once.`,
      );
    }
  }
  if (config.tokens !== true) delete (parsed as { tokens?: unknown }).tokens;
  return parsed as ReturnType<typeof nodeParseArgs<T>>;
}
