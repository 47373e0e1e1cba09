import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { choiceOption, noEffect, nonNegativeInt, nonNegativeNumber, positiveInt, seedOption } from './args.js';
import { REASONING_MODES } from '../embed/index.js';
import type { EmbeddingBackend } from '../search-index/embedding-backend.js';
import { DEVICE_OPTION, deviceHelp, refuseDevice, selectDevice } from './device-option.js';
import { modelHelp } from './option-help.js';
import { recordedModelFolder } from './index-model.js';
import { oneLine } from '../io/one-line.js';
import { ENGINE_OPTIONS, engineHelp, engineMismatch, openEngineBackend, parseEngine } from './engine-options.js';
import { SearchIndex, readIndexManifest } from '../search-index/search-index.js';
import { reasoningJson, searchHitJson } from '../search-index/search-json.js';
import { connectRemote } from './remote-option.js';

const HELP = `search-r3 search — rank the documents of an index for a query

usage: search-r3 search --index <dir> [options] "query"

Embeds the query with the index's model (the folder recorded in index.json, or --model / --remote),
optionally letting the model reason about the query first, and prints the ranked documents. The index
is only read (a damaged vectors.usearch or index.json is rebuilt in memory from docs.sqlite, and said
so), but for bm25.bin: --hybrid keeps the BM25 index it builds there for the next search, where the
folder is writable.

options:
  --index <dir>          index folder built by 'search-r3 index'
${modelHelp(25, "the index's model, where it moved since the index was built (it must be the same model)")}
  --remote <urls>        embed the query on search-r3 servers instead (comma-separated base URLs)
  --api-key <key>        bearer token for --remote (default: $SEARCH_R3_API_KEY)
  --reasoning on|off     let the model analyse the query before embedding (default off)
  --max-reasoning-tokens <n>
                         reasoning budget in tokens (default 128; the embed token is forced after it)
  --temperature <t>      sampling temperature of the reasoning (default 0: greedy)
  --seed <n>             sampling seed
  -k <n>                 documents to return (default 10)
  --hybrid               fuse with BM25 by reciprocal rank, weighted as the model's search-r3.json says
                         (chosen on dev splits by the recipe); without one, equal weights and k = 60
${engineHelp(25)}
${deviceHelp(25)}
  --json                 print one JSON object, with the fields of POST /v1/search: query; reasoning and forced
                         (only with --reasoning on); data (rank, id, score, title, text, metadata, and dense_score
                         and bm25_score from each ranking that found the hit); timings
  -h, --help             this help`;

export const searchCommand: Command = {
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        index: { type: 'string' },
        model: { type: 'string' },
        remote: { type: 'string' },
        'api-key': { type: 'string' },
        reasoning: { type: 'string' },
        'max-reasoning-tokens': { type: 'string' },
        // the name this option had before it took the one eval, demo and recipe evaluate use
        'max-reasoning': { type: 'string' },
        temperature: { type: 'string' },
        seed: { type: 'string' },
        k: { type: 'string', short: 'k' },
        hybrid: { type: 'boolean' },
        json: { type: 'boolean' },
        ...ENGINE_OPTIONS,
        ...DEVICE_OPTION,
      },
    });
    if (!values.index) throw new UserError('--index <dir> is required (see search-r3 search --help).');
    if (positionals.length !== 1)
      throw new UserError('give exactly one query (quote it: search-r3 search --index idx "my query").');
    if (positionals[0].trim() === '') throw new UserError('the query is empty; give the words to search for.');
    if (values['max-reasoning'] !== undefined) {
      if (values['max-reasoning-tokens'] !== undefined)
        throw new UserError('give --max-reasoning-tokens once; --max-reasoning is its old name.');
      process.stderr.write(
        'search-r3: --max-reasoning is now called --max-reasoning-tokens (as in eval and demo); the old name ' +
          'still works.\n',
      );
    }
    const budgetOption = values['max-reasoning'] !== undefined ? 'max-reasoning' : 'max-reasoning-tokens';
    const budget = values['max-reasoning-tokens'] ?? values['max-reasoning'];
    const reasoning = choiceOption(values.reasoning, 'reasoning', REASONING_MODES) ?? 'off';
    // checked before anything is said of them, and before the model loads
    const analysis = {
      maxReasoningTokens: nonNegativeInt(budget, budgetOption),
      temperature: nonNegativeNumber(values.temperature, 'temperature'),
      seed: seedOption(values.seed),
    };
    if (reasoning === 'off') {
      for (const o of ['temperature', 'seed', budgetOption] as const)
        noEffect(`--${o}`, values[o], 'it shapes the analysis, and --reasoning is off');
    }
    const k = positiveInt(values.k, '-k') ?? 10;
    const indexDir = values.index;
    const engine = parseEngine(values);
    if (values.remote && engine.kind !== 'search-r3') {
      throw new UserError('--engine runs a local model; drop it with --remote.');
    }
    if (values.remote) refuseDevice(values.device, '--remote');
    if (values.model && values.remote) throw new UserError('give one of --model <dir> or --remote <urls>, not both.');
    return (async () => {
      const manifest = readIndexManifest(indexDir);
      if (!values.remote && engine.kind === 'search-r3') selectDevice(values.device);
      const backend: EmbeddingBackend = values.remote
        ? await connectRemote(values.remote, values['api-key'])
        : await openEngineBackend(values.model ?? recordedModelFolder(manifest, indexDir, true), engine, {
            maxLength: manifest.maxLength,
            templates: manifest.templates,
          });
      const why = engineMismatch(manifest, backend);
      if (why) {
        await backend.close?.();
        throw new UserError(why);
      }
      const index = await SearchIndex.open(indexDir, { backend, saveBm25: true });
      try {
        for (const note of index.notes) process.stderr.write(`search-r3: ${note}\n`);
        const said = index.notes.length;
        const line = pendingLine(index.stats());
        if (line) process.stderr.write(`search-r3: ${line}\n`);
        const res = await index.search(positionals[0], {
          k,
          hybrid: values.hybrid ?? false,
          reasoning,
          ...analysis,
        });
        // what hybrid search found of bm25.bin (damaged, or a folder it may not write)
        for (const note of index.notes.slice(said)) process.stderr.write(`search-r3: ${note}\n`);
        if (res.truncated > 0) {
          const room = reasoning === 'on' ? 'its prompt and analysis budget' : 'its prompt';
          const lower = reasoning === 'on' ? ', or lower --max-reasoning-tokens' : '';
          process.stderr.write(
            `search-r3: the query was cut by ${res.truncated} tokens to fit ${room} in the model's cut length ` +
              `of ${backend.maxLength} tokens; shorten it${lower} to search with all of it.\n`,
          );
        }
        if (values.json) {
          console.log(
            JSON.stringify({
              query: positionals[0],
              ...reasoningJson(reasoning, res),
              data: res.hits.map((h, i) => searchHitJson(h, i + 1)),
              timings: { embed_ms: res.embedMs, search_ms: res.searchMs },
            }),
          );
        } else {
          if (reasoning === 'on') {
            const said = oneLine(res.reasoning) || '(none)';
            console.log(`reasoning${res.forced ? ' (embed token forced)' : ''}: ${said}\n`);
          }
          res.hits.forEach((h, i) => {
            const title = oneLine(h.title);
            console.log(
              `${String(i + 1).padStart(3)}. ${h.score.toFixed(4)}  ${oneLine(h.id)}${title ? `  ${title}` : ''}\n ` +
                `    ${oneLine(h.text, 161)}`,
            );
          });
          if (res.hits.length === 0) console.log('(no documents)');
        }
      } finally {
        await index.close();
        await backend.close?.();
      }
      return 0;
    })();
  },
};

/** What a search does not see yet while documents wait for their vectors, as one sentence (none when none wait). */
function pendingLine(s: { documents: number; pending: number; outdated: number }): string | undefined {
  if (s.pending === 0) return undefined;
  const n = (x: number): string => x.toLocaleString('en');
  const fresh = s.pending - s.outdated;
  const waiting = [
    fresh > 0 ? `${n(fresh)} documents of this index are not encoded yet` : '',
    s.outdated > 0 ? `${n(s.outdated)} changed documents are not encoded again yet` : '',
  ].filter((c) => c !== '');
  const before = s.outdated > 0 ? ', the changed ones as they were before the update' : '';
  return (
    `${waiting.join(' and ')} (an index run that stopped or is still running); the results rank the ` +
    `${n(s.documents)} that are indexed${before}`
  );
}
