/** The widest a help line is made: text composed from lists (packages, sources) is wrapped to it. */
export const HELP_WIDTH = 110;

/** `text` broken between words into lines of at most `width` characters (a longer word stays whole). */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** A help paragraph: `text` wrapped to HELP_WIDTH, each line after `indent`. */
export function helpParagraph(text: string, indent = ''): string {
  return wrapWords(text, HELP_WIDTH - indent.length)
    .map((l) => indent + l)
    .join('\n');
}

/** Help lines for options shared by several commands, wrapped so descriptions start at one column. */
export function optionHelp(flags: readonly (readonly [string, string])[], column: number): string {
  const width = HELP_WIDTH - column;
  return flags
    .map(([flag, text]) => {
      const lines = wrapWords(text, width);
      const head = `  ${flag}`;
      const indent = ' '.repeat(column);
      const first = head.length < column ? `${head.padEnd(column)}${lines[0]}` : `${head}\n${indent}${lines[0]}`;
      return [first, ...lines.slice(1).map((l) => `${indent}${l}`)].join('\n');
    })
    .join('\n');
}

/**
 * What every command that loads a model takes as a model folder: loadModelFolder loads a whole model, or a
 * LoRA adapter folder (such as a LoRA run's final/) onto the base its adapter_config.json records.
 */
export const MODEL_FOLDER_HELP =
  "a whole model folder (config.json, tokenizer.json, *.safetensors) or a LoRA run's final/ " +
  '(adapter_config.json; loaded onto the base it records)';

/** A model option's help line: `what` the command does with the model, then what the folder may be. */
export function modelHelp(column: number, what: string, flag = '--model <dir>'): string {
  return optionHelp([[flag, `${what}: ${MODEL_FOLDER_HELP}`]], column);
}
