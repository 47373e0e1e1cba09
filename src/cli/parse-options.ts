import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from './command.js';

/**
 * The options that name what a command reads: given twice, the user meant both, where parseArgs would read the
 * last alone and the run index, search or train on half of what the command line names. Any other option given
 * twice takes its last value, as in most command lines, so that a wrapper may append an option to override its
 * default.
 */
const READS = new Set([
  'input',
  'data',
  'dataset',
  'qrels',
  'run',
  'compare',
  'query-embeddings',
  'doc-embeddings',
  'excluded-ids',
  'index',
  'config',
  'delete-file',
]);

/**
 * node's util.parseArgs, refusing an option of READS given twice with two values (`--input a.jsonl --input
 * b.jsonl`). The same value twice means one thing and is taken; options declared `multiple` collect every value.
 */
export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  const parsed = nodeParseArgs({ ...config, tokens: true });
  const first = new Map<string, string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || token.value === undefined) continue;
    if (!READS.has(token.name) || config.options?.[token.name]?.multiple === true) continue;
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
