import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { parseArgs } from './parse-options.js';
import path from 'node:path';
import { UserError, type Command } from './command.js';
import { choiceOption, noEffect, positiveInt } from './args.js';
import { ProgressReporter } from './index-progress.js';
import { DEVICE_OPTION, deviceHelp, refuseDevice, selectDevice } from './device-option.js';
import { modelHelp } from './option-help.js';
import { oneLine } from '../io/one-line.js';
import { withoutByteOrderMark } from '../io/byte-order-mark.js';
import { OTHER_KIND, streamDocuments, type SkipReason } from '../search-index/document-source.js';
import { recordedModelFolder } from './index-model.js';
import type { EmbeddingBackend } from '../search-index/embedding-backend.js';
import {
  ENGINE_OPTIONS,
  engineHelp,
  type EngineChoice,
  engineMismatch,
  openEngineBackend,
  parseEngine,
} from './engine-options.js';
import { MANIFEST_FILE, type IndexManifest, STORE_KINDS, VECTOR_DTYPES } from '../search-index/manifest.js';
import { DOCS_FILE } from '../search-index/document-table.js';
import { DOCUMENTS_PER_COMMIT } from '../search-index/commit-chunk.js';
import { SearchIndex, readIndexManifest } from '../search-index/search-index.js';
import { connectRemote } from './remote-option.js';
import type { AddResult, DocumentInput } from '../search-index/search-index.js';
import type { DeadJob, QueuedIndexOptions } from '../queue/coordinator.js';
import { DEFAULT_QUEUE_NAME, queueNameOption } from '../queue/index-job.js';
import { QueueError } from '../queue/queue-error.js';
import { counted, wasOrWere } from '../io/counted.js';

const HELP = `search-r3 index — build or update a search index

usage: search-r3 index --model <dir> --input <path> --out <index-dir> [options]
       search-r3 index --remote <url,url,...> --input <path> --out <index-dir> [options]
       search-r3 index --input <path> --out <existing-index-dir> [options]     (the index's own model)
       search-r3 index --queue redis://<host>:<port> --model <dir> --input <path> --out <index-dir> [options]
       search-r3 index --out <index-dir> --delete <id,id,...> [--delete-file <file>]

Encodes documents with the Search-R3 model (document prompt, no reasoning) in length-sorted
chunks and stores texts, metadata and vectors in <index-dir>:
  index.json        manifest: model identity, prompt templates, dimension, dtype, counts, checksum
  docs.sqlite       documents with their exact f32 vectors, documents waiting to be encoded, checksums
  vectors.usearch   HNSW graph (or a LanceDB table with --store lancedb), checksummed

Running it again on the same --out adds new documents, re-encodes changed ones and skips unchanged
ones; a changed document is searched as it was until its new vector is committed. Ctrl-C (or
SIGTERM) stops a run at its last commit (exit code 130, or 143); a stopped or killed run continues
where it stopped (at most --commit-every documents are encoded again). Documents of the
index that are no longer in --input are reported, and deleted with --prune. An index built with one
model (or prompt set) refuses vectors from another; without --model or --remote, the model the index
was built with is used. A damaged vectors.usearch or index.json is rebuilt from docs.sqlite; a
missing docs.sqlite means every document is encoded again.

With --queue, the pending documents are cut into jobs (one per --commit-every documents) on a BullMQ
queue in Redis; 'search-r3 worker' processes on any number of machines encode them, and this command
stores their vectors as they arrive, with a progress bar over all workers (see docs/scale.md). It is
the one writer of the index, so the folder (and --store-uri) must be where replicas can read it.

options:
${modelHelp(25, 'the model (default for an existing index: the one it was built with)')}
  --remote <urls>        encode on OpenAI-compatible search-r3 servers instead (comma-separated base
                         URLs, e.g. http://10.0.0.5:8080); requests are spread round-robin with retries
  --api-key <key>        bearer token for --remote (default: $SEARCH_R3_API_KEY)
  --input <path>         BEIR folder (corpus.jsonl), JSON-lines file (_id|id, title, text, metadata),
                         or a folder of .txt/.md files (other files, links leading outside it, files over
                         64 MiB, binary and non-UTF-8 files, and names that are not UTF-8 are skipped and
                         counted; BEIR corpora in its sub-folders are named)
  --out <dir>            index folder (created if missing)
  --dtype f32|f16|i8     HNSW vector storage (default f32; fixed when the index is created); a LanceDB
                         store keeps f32
  --store local|lancedb  vector store (default local = usearch HNSW; fixed when the index is created)
  --store-uri <uri>      LanceDB location (local path or s3://...; implies --store lancedb), default
                         <out>/vectors.lance (fixed when the index is created)
  --commit-every <n>     documents per commit: encoded, then written durably together (default 256);
                         a kill loses at most this many documents' work
  --max-length <n>       longest prompt in tokens (default: the model's context, at most 8192; a value
                         above the context is lowered to it); longer documents are cut and counted
  --batch-tokens <n>     tokens per forward batch, padding included (default 4096)
${engineHelp(25)}
${deviceHelp(25)}
  --queue <url>          encode on 'search-r3 worker' processes through Redis (redis://host:port[/db]);
                         the store is LanceDB (--store lancedb is implied for a new index)
  --queue-name <name>    the BullMQ queue, shared with the workers (default ${DEFAULT_QUEUE_NAME}); one
                         index run per queue at a time: a second run on a queue in use is refused
  --queue-wait <s>       how long Redis may be unreachable, at start or mid-run, before the run stops
                         (default 60); a Redis restart within it is ridden out
  --prune                delete indexed documents that are not in --input
  --delete <ids>         delete these document ids and exit: comma-separated, spaces around each id
                         ignored, \\, for a comma within an id (e.g. --delete 'notes/meeting\\, 2024.md');
                         repeatable
  --delete-file <file>   delete the ids in <file> and exit: one id per line, exactly as written (spaces
                         and commas kept; only the line break is removed); - reads them from stdin
  -h, --help             this help`;

export const indexCommand: Command = {
  help: HELP,
  // the chunks committed before the failure stay; a run resumes with the documents still pending
  afterGpuFailure:
    'run the same command again to encode the documents still pending, on this device or with --device cpu',
  gpuSizeSettings: () => 'a smaller --batch-tokens or --max-length',
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        model: { type: 'string' },
        remote: { type: 'string' },
        'api-key': { type: 'string' },
        input: { type: 'string' },
        out: { type: 'string' },
        dtype: { type: 'string' },
        store: { type: 'string' },
        'store-uri': { type: 'string' },
        'commit-every': { type: 'string' },
        'chunk-size': { type: 'string' },
        'max-length': { type: 'string' },
        'batch-tokens': { type: 'string' },
        prune: { type: 'boolean' },
        delete: { type: 'string', multiple: true },
        'delete-file': { type: 'string' },
        queue: { type: 'string' },
        'queue-name': { type: 'string' },
        'queue-wait': { type: 'string' },
        ...ENGINE_OPTIONS,
        ...DEVICE_OPTION,
      },
    });
    if (!values.out) throw new UserError('--out <index-dir> is required (see search-r3 index --help).');
    const out = values.out;
    return (async () => {
      if (values.delete !== undefined || values['delete-file'] !== undefined) {
        sayIgnoredByDelete(values);
        const listed = values.delete ? listedIds(values.delete) : [];
        const file = values['delete-file'];
        return deleteIds(out, [...new Set([...listed, ...(file !== undefined ? idsInFile(file) : [])])]);
      }
      // left out, an existing index keeps its own (a new one gets f32)
      const dtype = choiceOption(values.dtype, 'dtype', VECTOR_DTYPES);
      const store =
        choiceOption(values.store, 'store', STORE_KINDS) ?? (values.queue || values['store-uri'] ? 'lancedb' : 'local');
      if (store === 'local' && values['store-uri'])
        throw new UserError('--store-uri names a LanceDB table; drop it, or give --store lancedb.');
      if (values.queue && store !== 'lancedb')
        throw new UserError('--queue writes to a LanceDB store that replicas share; drop --store local.');
      if (store === 'lancedb' && dtype !== undefined && dtype !== 'f32')
        throw new UserError(
          `--dtype ${dtype} is the local HNSW store's; a LanceDB store (--store lancedb, --store-uri, --queue) ` +
            'keeps float32 vectors: drop --dtype.',
        );
      if (values.queue && values.remote) throw new UserError('give one of --queue <url> or --remote <urls>, not both.');
      // ioredis takes longer to load (70 ms) than the rest of a small run's work: only a queued run waits for it
      const target = values.queue ? (await import('../queue/redis-link.js')).parseRedisUrl(values.queue) : undefined;
      const queueName = queueNameOption(values['queue-name']);
      const queueWait = positiveInt(values['queue-wait'], 'queue-wait') ?? 60;
      if (!values.input) throw new UserError('--input <path> is required (see search-r3 index --help).');
      if (values.model && values.remote) throw new UserError('give one of --model <dir> or --remote <urls>, not both.');
      if (values['chunk-size'] !== undefined) {
        process.stderr.write(
          'search-r3: --chunk-size is now called --commit-every (documents per commit); the old name still works.\n',
        );
      }
      const perCommit = positiveInt(
        values['commit-every'] ?? values['chunk-size'],
        values['commit-every'] !== undefined ? 'commit-every' : 'chunk-size',
      );
      const maxLength = positiveInt(values['max-length'], 'max-length');
      const backend = await openBackend(out, values, maxLength, parseEngine(values));
      if (maxLength !== undefined && maxLength > backend.maxLength) {
        process.stderr.write(
          `search-r3: --max-length ${maxLength} is above the model's context; texts are cut at ` +
            `${backend.maxLength} tokens.\n`,
        );
      }
      const skipped = new Map<string, number>();
      const input = values.input;
      // read twice, holding one document at a time: first every document is checked and its id kept, so that a
      // bad line is refused before the index is written; then the documents are staged as they are read again
      const keep = new Set<string>();
      const corpora: string[] = [];
      const onSkip = (file: string, why: SkipReason): void => {
        skipped.set(why, (skipped.get(why) ?? 0) + 1);
        if (why === OTHER_KIND && /^corpus\.jsonl(\.gz)?$/.test(path.basename(file)))
          corpora.push(path.relative(input, file));
      };
      for await (const d of streamDocuments(input, { onSkip })) keep.add(d.id);
      // the first pass refused a repeated id by its line; staging refuses one that the file gained since
      const docs = streamDocuments(input, { refuseDuplicateIds: false });
      const index = await SearchIndex.open(out, {
        backend,
        // left out, an existing index keeps its own; given, they must be its own (fixed when it was created)
        create: {
          ...(dtype ? { dtype } : {}),
          ...(values.store !== undefined || !holdsIndex(out) ? { store } : {}),
          ...(values['store-uri'] ? { storeUri: values['store-uri'] } : {}),
        },
      });
      const keepSignals = stopAtLastCommit();
      try {
        for (const note of index.notes) process.stderr.write(`search-r3: ${note}\n`);
        index.lockForWriting();
        const before = index.stats();
        if (before.pending > 0)
          process.stderr.write(`resuming: ${counted(before.pending, 'document')} left pending by an earlier run\n`);
        if (target && index.info.store !== 'lancedb')
          throw new UserError(
            `${out} keeps its vectors in a local HNSW file, which replicas cannot share; --queue needs an index ` +
              `on the LanceDB store: build a new one in another folder.`,
          );
        // pruned first, so that documents left pending by an earlier run and no longer in --input are not encoded
        const pruned = values.prune
          ? (await index.deleteDocuments(index.documentIds().filter((id) => !keep.has(id)))).length
          : 0;
        const progress = new ProgressReporter(target ? 'encoding on the queue' : 'encoding');
        const onProgress = (done: number, total: number): void => progress.update(done, total);
        const r: AddResult & { dead?: DeadJob[] } = target
          ? await indexThroughQueue(index, docs, {
              target,
              queueName,
              documentsPerCommit: perCommit ?? DOCUMENTS_PER_COMMIT,
              batchTokens: positiveInt(values['batch-tokens'], 'batch-tokens') ?? null,
              waitMs: queueWait * 1000,
              onProgress,
              log: (line) => process.stderr.write(`search-r3: ${line}\n`),
            })
          : await index.addDocuments(docs, {
              documentsPerCommit: perCommit,
              onProgress: (p) => onProgress(p.done, p.total),
            });
        const gone = index.documentIds().filter((id) => !keep.has(id));
        const s = index.stats();
        console.log(
          `${path.resolve(out)}: ${counted(s.documents, 'document')} indexed (${r.encoded} encoded now, ` +
            `${r.counts.unchanged} unchanged${values.prune ? `, ${pruned} pruned` : ''}).`,
        );
        if (r.counts.repaired > 0)
          console.log(
            `${counted(r.counts.repaired, 'document')} whose stored copy was damaged ` +
              `${wasOrWere(r.counts.repaired)} encoded again from --input.`,
          );
        if (r.removedDamaged)
          console.log(
            `${counted(r.removedDamaged.length, 'damaged document')} not in --input ` +
              `${wasOrWere(r.removedDamaged.length)} deleted ` +
              `(${firstIds(r.removedDamaged)}${r.removedDamaged.length > 3 ? ', ...' : ''}).`,
          );
        if (r.truncated)
          console.log(
            `${r.truncated} of the ${counted(r.encoded, 'document')} encoded now ${wasOrWere(r.truncated)} longer ` +
              `than ${backend.maxLength} tokens and ${wasOrWere(r.truncated)} cut to fit.`,
          );
        if (skipped.size > 0)
          console.log(`skipped in ${values.input}: ${[...skipped].map(([why, n]) => `${n} ${why}`).join(', ')}.`);
        // a folder holding BEIR datasets was given for one of them: its corpus files were left out unread
        if (corpora.length > 0)
          console.log(
            `${values.input} was read as a folder of .txt/.md files, and holds BEIR corpora it did not read ` +
              `(${corpora.slice(0, 3).join(', ')}${corpora.length > 3 ? ', ...' : ''}); to index one, give its ` +
              `folder as --input (--input ${path.join(input, path.dirname(corpora[0]!))}).`,
          );
        if (!values.prune && gone.length > 0) {
          console.log(
            gone.length === 1
              ? `1 document of the index is not in --input (${firstIds(gone)}); it stays searchable — rerun ` +
                  'with --prune to delete it.'
              : `${gone.length} documents of the index are not in --input (e.g. ${firstIds(gone)}); they stay ` +
                  'searchable — rerun with --prune to delete them.',
          );
        }
        if (r.dead && r.dead.length > 0) throw deadLetterError(r.dead);
      } finally {
        keepSignals();
        await index.close();
        await backend.close?.();
      }
      return 0;
    })();
  },
};

/**
 * Ctrl-C, or a plain kill, while the index is written. Node's default ends the process wherever it is, inside
 * an SQLite transaction too (leaving a journal that readers cannot roll back), and says nothing. A handler runs
 * between JavaScript tasks, never inside a commit, so the index is as its last commit left it and the same
 * command continues from there. Returns what gives the signals back to Node.
 */
function stopAtLastCommit(): () => void {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const stop = (signal: NodeJS.Signals): void => {
    const below = process.stderr.isTTY ? '\n' : ''; // a progress bar may hold the line
    process.stderr.write(
      `${below}search-r3: ${signal}: stopped at the last commit (what it committed stays indexed and ` +
        `searchable); run the same command again to continue.\n`,
    );
    process.exit(128 + osConstants.signals[signal]);
  };
  for (const s of signals) process.on(s, stop);
  return () => {
    for (const s of signals) process.off(s, stop);
  };
}

/** addDocuments' work with the encoding done by queue workers: stage here, encode there, store here. */
async function indexThroughQueue(
  index: SearchIndex,
  docs: DocumentInput,
  opts: QueuedIndexOptions,
): Promise<AddResult & { dead: DeadJob[] }> {
  const staged = await index.stageDocuments(docs);
  // BullMQ takes longer to load than the rest of the command (0.15 s): only a queued run waits for it
  const { indexOnQueue } = await import('../queue/coordinator.js');
  const q = await indexOnQueue(index, opts);
  if (q.requeued > 0)
    process.stderr.write(`search-r3: ${q.requeued} jobs that Redis lost (it restarted) were queued again.\n`);
  return { ...staged, encoded: q.encoded, truncated: q.truncated, dead: q.dead };
}

/** Dead-lettered jobs, named, once everything else is stored. */
function deadLetterError(dead: readonly DeadJob[]): QueueError {
  const named = dead
    .slice(0, 3)
    .map((d) => `job ${d.id}, documents ${d.first} … ${d.last}: ${d.reason}`)
    .join('; ');
  return new QueueError(
    `${dead.length} jobs were dead-lettered (${named}${dead.length > 3 ? '; …' : ''}); every other document is ` +
      `stored, and theirs stay pending: run the same command again to retry them.`,
  );
}

/**
 * The model that encodes: --model, --remote, or for an existing index the model it was built with
 * (with the index's cut length and prompts, which must not change).
 */
interface BackendValues {
  model?: string;
  remote?: string;
  'api-key'?: string;
  'batch-tokens'?: string;
  device?: string;
}

async function openBackend(
  out: string,
  values: BackendValues,
  maxLength: number | undefined,
  engine: EngineChoice,
): Promise<EmbeddingBackend> {
  const batchTokens = positiveInt(values['batch-tokens'], 'batch-tokens');
  if (values.remote) {
    if (engine.kind !== 'search-r3') {
      throw new UserError('--engine runs a local model; give --model <dir> instead of --remote.');
    }
    refuseDevice(values.device, '--remote');
    return connectRemote(values.remote, values['api-key']);
  }
  const existing = existingManifest(out);
  const model = values.model ?? (existing && recordedModelFolder(existing, out, true));
  if (!model) throw new UserError('give --model <dir> (or --remote <urls>): a new index needs a model.');
  if (engine.kind === 'search-r3') selectDevice(values.device);
  // the model lowers a --max-length above its context to it: the index's cut length is compared with that
  const opts = existing
    ? { maxLength: maxLength ?? existing.maxLength, templates: existing.templates, batchTokens }
    : { maxLength, batchTokens };
  const backend = await openEngineBackend(model, engine, opts);
  const why = existing && (otherCutLength(existing, maxLength, backend.maxLength) ?? engineMismatch(existing, backend));
  if (why) {
    await backend.close?.();
    throw new UserError(why);
  }
  return backend;
}

/** Why --max-length `given`, which the model cuts at `cut` tokens, does not fit the index `m`; null when it does. */
function otherCutLength(m: IndexManifest, given: number | undefined, cut: number): string | null {
  if (given === undefined || cut === m.maxLength) return null;
  const lowered = cut !== given ? ` (lowered to the model's context, ${cut})` : '';
  return (
    `--max-length ${given}${lowered} differs from the ${m.maxLength} tokens this index cuts texts at; build a new ` +
    `index to change it.`
  );
}

/** Whether `out` holds an index (its manifest or its document table), whole or not. */
function holdsIndex(out: string): boolean {
  return existsSync(path.join(out, MANIFEST_FILE)) || existsSync(path.join(out, DOCS_FILE));
}

/** The manifest of an index already in `out`, or undefined (none, or unreadable: opening it says why). */
function existingManifest(out: string): IndexManifest | undefined {
  if (!holdsIndex(out)) return undefined;
  try {
    return readIndexManifest(out);
  } catch {
    return undefined;
  }
}

/**
 * The ids of --delete values: each value a comma-separated list whose ids are trimmed of the spaces around
 * them, as a list typed by hand has them; a backslash before a comma (or a backslash) makes it part of the id.
 */
export function listedIds(values: readonly string[]): string[] {
  const ids: string[] = [];
  for (const value of values) {
    let id = '';
    for (let i = 0; i < value.length; i++) {
      const c = value[i];
      if (c === '\\' && (value[i + 1] === ',' || value[i + 1] === '\\')) id += value[++i];
      else if (c === ',') {
        ids.push(id);
        id = '';
      } else id += c;
    }
    ids.push(id);
  }
  return ids.map((id) => id.trim()).filter((id) => id !== '');
}

/**
 * --delete-file: one id per line, as written (an id may have spaces or commas at any place), but for a byte-order
 * mark before the first; '-' is stdin.
 */
function idsInFile(file: string): string[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file === '-' ? 0 : file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new UserError(`--delete-file ${file}: cannot read it (${why}); give a file of ids, one per line.`);
  }
  let text: string;
  try {
    // strict: an id decoded with U+FFFD in place of a bad byte would match no document, or the wrong one
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`--delete-file ${file} is not UTF-8 text; save it as UTF-8, one id per line.`);
  }
  return withoutByteOrderMark(text)
    .split(/\r?\n/)
    .filter((id) => id !== '');
}

/**
 * --delete and --delete-file delete and exit: an option of an indexing run given with them (--input, --prune) is
 * said, by name only (--api-key's value is a secret), so that a run that indexed nothing does not pass for one
 * that did.
 */
function sayIgnoredByDelete(values: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(values))
    if (value !== undefined && !DELETE_OPTIONS.includes(name))
      noEffect(`--${name}`, true, '--delete and --delete-file delete and exit, indexing nothing');
}

const DELETE_OPTIONS = ['out', 'delete', 'delete-file'];

async function deleteIds(out: string, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) throw new UserError('--delete (or --delete-file) needs at least one document id.');
  // opening for writing would make docs.sqlite in a folder that holds no index
  if (!holdsIndex(out)) throw new UserError(`--out ${out}: no search-r3 index there to delete from.`);
  const index = await SearchIndex.open(out, { writable: true });
  try {
    for (const note of index.notes) process.stderr.write(`search-r3: ${note}\n`);
    const deleted = await index.deleteDocuments(ids);
    // an id the list could not tell apart from its neighbours (a comma, spaces at its ends) is quoted
    const shown = (id: string): string => (/^\s|\s$|,/.test(id) ? JSON.stringify(id) : id);
    const gone = new Set(deleted);
    const missing = ids.filter((id) => !gone.has(id)).map(shown);
    const notThere = missing.length > 0 ? `; not in the index: ${missing.join(', ')}` : '';
    console.log(`deleted ${counted(deleted.length, 'document')}${notThere}.`);
  } finally {
    await index.close();
  }
  return 0;
}

/** The first three of `ids`, for a line on the terminal (a stored id may hold control characters). */
function firstIds(ids: readonly string[]): string {
  return ids
    .slice(0, 3)
    .map((id) => oneLine(id))
    .join(', ');
}
