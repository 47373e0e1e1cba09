import { existsSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { type Command, UserError } from './command.js';
import { subcommandError } from './subcommand.js';
import { numberOption, positiveInt } from './args.js';
import { checkNotAnInput, checkOutputFolder } from './output-path.js';
import { listInputFiles, skippedLinesText, trainBpeTokenizer } from '../model/bpe-trainer.js';
import { isBeirQueriesFile } from '../eval/beir.js';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import { makeFolder } from '../io/make-folder.js';
import { CHAT_TEMPLATE_JINJA, TOKENIZER_CONFIG_JSON, TOKENIZER_JSON } from '../model/tokenizer-json.js';
import { Tokenizer } from '../model/tokenizer.js';

const HELP = `search-r3 tokenizer train — learn a byte-level BPE tokenizer (Qwen2 style) from text

usage: search-r3 tokenizer train --input <file|dir> [--input ...] [more files ...] --vocab-size N --out <dir>
                                [--min-frequency 2] [--quiet]

Reads the inputs (files named are always read; in folders, recursively and in sorted order, only
.jsonl and .txt files): .jsonl files as one document per line
("title" and "text"; lines with neither are skipped and counted), any other file as plain
UTF-8 text (a file that is not UTF-8, such as a .gz, is refused). A BEIR folder's queries.jsonl (its test
queries among them) is refused: name its corpus.jsonl. Text is NFC-normalised and split with
Qwen2's pre-tokenizer; merges are learned by pair frequency (ties: the smaller pair of token strings),
so the same text always gives the same tokenizer. The vocabulary is the 256 byte tokens, the merges,
then <|endoftext|>, <|im_start|>, <|im_end|>, <|embed_token|> as special tokens (N counts them all).

Writes <dir>/tokenizer.json, <dir>/tokenizer_config.json (Qwen2.5 chat template, eos <|im_end|>,
pad <|endoftext|>) and <dir>/tokenizer-training.json (inputs, bytes, counts, timings).

options:
  --input <file|dir>   text to learn from (repeatable; files named after the options are read too)
  --vocab-size <n>     tokens in all, the 256 bytes and the 4 special tokens included (at least 260)
  --out <dir>          the folder to write; one holding a model or a finished tokenizer is refused
  --min-frequency <n>  a pair seen fewer times is never merged: training stops there, short of --vocab-size,
                       and says so (default 2)
  --quiet              no progress output
  -h, --help           this help`;

const SUMMARY_JSON = 'tokenizer-training.json';

/** The files tokenizer train writes into --out (chat_template.jinja: removes, as Tokenizer.save does). */
const WRITTEN = [TOKENIZER_JSON, TOKENIZER_CONFIG_JSON, CHAT_TEMPLATE_JINJA, SUMMARY_JSON];

/**
 * Refuses a folder that holds a model or a finished tokenizer: a new BPE written over a model's tokenizer
 * leaves a model that loads but reads other tokens than it learnt (and so does a tokenizer a run trains with).
 * A folder where an earlier run stopped before its tokenizer_config.json may be written again.
 */
function checkNoTokenizerThere(out: string): void {
  const holds = ['config.json', 'model.safetensors', 'tokenizer_config.json'].filter((f) =>
    existsSync(path.join(out, f)),
  );
  if (holds.length === 0) return;
  throw new UserError(
    `--out ${out} already holds ${holds.join(', ')}: a new tokenizer there would no longer match what uses it; ` +
      'name a new folder (or delete that one first).',
  );
}

/**
 * Refuses an input that gives a BEIR folder's queries.jsonl (named, or in a folder named): its test queries would
 * become the vocabulary's training text, as `train lm` refuses them for the model's.
 */
async function checkNoBeirQueries(inputs: readonly string[]): Promise<void> {
  for (const p of inputs) {
    const queries = (await listInputFiles([p])).find(isBeirQueriesFile);
    if (queries !== undefined)
      throw new UserError(
        `--input ${p} gives ${queries}, a BEIR folder's queries (its test queries among them), which no tokenizer ` +
          'is trained on: name its corpus.jsonl, or a folder of search-r3 corpus build.',
      );
  }
}

export const tokenizerCommand: Command = {
  help: HELP,
  subcommands: ['train'],
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        input: { type: 'string', multiple: true },
        'vocab-size': { type: 'string' },
        out: { type: 'string' },
        'min-frequency': { type: 'string' },
        quiet: { type: 'boolean' },
      },
    });
    if (positionals[0] !== 'train') throw subcommandError('tokenizer', positionals[0], ['train']);
    // files after the options (a shell glob such as corpus/train-*.jsonl) are inputs too
    const inputs = [...(values.input ?? []), ...positionals.slice(1)];
    if (inputs.length === 0)
      throw new UserError('--input is required: a text/JSONL file or a folder of them (repeatable).');
    for (const p of inputs) if (!existsSync(p)) throw new UserError(`--input ${p}: no such file or folder.`);
    if (values['vocab-size'] === undefined)
      throw new UserError('--vocab-size is required: an integer ≥ 260 (256 bytes + 4 special tokens).');
    const vocabSize = numberOption(
      values['vocab-size'],
      'vocab-size',
      'an integer ≥ 260 (256 bytes + 4 special tokens)',
      (n) => Number.isInteger(n) && n >= 260,
    )!;
    const minFrequency = positiveInt(values['min-frequency'], 'min-frequency') ?? 2;
    if (!values.out)
      throw new UserError('--out is required: the folder to write tokenizer.json and tokenizer_config.json to.');
    checkOutputFolder(values.out, '--out');
    checkNoTokenizerThere(values.out);
    const named = inputs.map((p) => ({ path: p, what: '--input' }));
    for (const f of WRITTEN) checkNotAnInput(path.join(values.out, f), '--out', named);
    await checkNoBeirQueries(inputs);
    const say = values.quiet
      ? (): void => {}
      : (m: string): void => {
          process.stderr.write(`${m}\n`);
        };
    const r = await trainBpeTokenizer(inputs, { vocabSize, minFrequency, onStage: say });
    // loading the result through our Tokenizer before saving proves it is usable
    const tok = Tokenizer.fromJSON(r.tokenizerJson, r.tokenizerConfig);
    // tokenizer_config.json, which marks a finished tokenizer (checkNoTokenizerThere), is written last (by save):
    // a run that fails before it (a full disk) leaves a folder the same command may write again
    await makeFolder(values.out);
    await writeTextFileAtomically(
      path.join(values.out, SUMMARY_JSON),
      JSON.stringify({ ...r.summary, files: r.summary.files.map((f) => path.resolve(f)), minFrequency }, null, 2) +
        '\n',
    );
    await tok.save(values.out);
    const size = (await fsp.stat(path.join(values.out, TOKENIZER_JSON))).size;
    console.log(
      `tokenizer: ${r.summary.vocabSize} tokens (${r.summary.merges} merges) from ` +
        `${(r.summary.bytes / 1e6).toFixed(1)} MB, ${r.summary.distinctWords} distinct words; ` +
        `counting ${r.summary.countSeconds.toFixed(1)} s, merges ${r.summary.mergeSeconds.toFixed(1)} s; ` +
        `wrote ${values.out} (tokenizer.json ${(size / 1e6).toFixed(2)} MB)` +
        (r.summary.skippedLines > 0 ? `; ${skippedLinesText(r.summary.skippedLines)}` : '') +
        (r.summary.stoppedEarly ? `; stopped early: ${r.summary.stoppedEarly}` : ''),
    );
    return 0;
  },
};
