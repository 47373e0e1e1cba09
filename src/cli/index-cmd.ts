import { parseArgs } from 'node:util';
import path from 'node:path';
import { UserError, type Command } from './command.js';
import { positiveInt } from './args.js';
import { ProgressReporter } from './index-progress.js';
import { readDocuments } from '../index/document-source.js';
import { LocalBackend, type EmbeddingBackend } from '../index/embedding-backend.js';
import { asUserErrors } from './index-user-errors.js';
import type { VectorDtype } from '../index/manifest.js';
import { SearchIndex } from '../index/search-index.js';
import { RemoteEmbedder } from '../serve/remote-embedder.js';

const HELP = `search-r3 index — build or update a search index

usage: search-r3 index --model <dir> --input <path> --out <index-dir> [options]
       search-r3 index --remote <url,url,...> --input <path> --out <index-dir> [options]
       search-r3 index --out <index-dir> --delete <id,id,...>

Encodes documents with the Search-R3 model (document prompt, no reasoning) in length-sorted
chunks and stores texts, metadata and vectors in <index-dir>:
  index.json        manifest: model identity, prompt templates, dimension, dtype, counts
  docs.sqlite       documents, their exact f32 vectors and status (pending/indexed)
  vectors.usearch   HNSW graph (or a LanceDB table with --store lancedb)

Running it again on the same --out adds new documents, re-encodes changed ones and skips unchanged
ones; a killed run continues where it stopped (at most one chunk is lost). An index built with one
model (or prompt set) refuses vectors from another.

options:
  --model <dir>          model folder (config.json, tokenizer.json, *.safetensors)
  --remote <urls>        encode on OpenAI-compatible search-r3 servers instead (comma-separated base
                         URLs, e.g. http://10.0.0.5:8080); requests are spread round-robin with retries
  --api-key <key>        bearer token for --remote (default: $SEARCH_R3_API_KEY)
  --input <path>         BEIR folder (corpus.jsonl), JSON-lines file (_id|id, title, text, metadata),
                         or a folder of .txt/.md files
  --out <dir>            index folder (created if missing)
  --dtype f32|f16|i8     HNSW vector storage (default f32; fixed when the index is created)
  --store local|lancedb  vector store (default local = usearch HNSW)
  --store-uri <uri>      LanceDB location (local path or s3://...), default <out>/vectors.lance
  --chunk-size <n>       documents per committed chunk (default 256)
  --max-length <n>       longest prompt in tokens (default: the model's context, at most 8192)
  --batch-tokens <n>     tokens per forward batch, padding included (default 4096)
  --prune                delete indexed documents that are not in --input
  --delete <ids>         delete these document ids (comma-separated) and exit
  -h, --help             this help`;

export const indexCommand: Command = {
  name: 'index',
  summary: 'build, resume or update a search index from documents',
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv, allowPositionals: false, strict: true,
      options: {
        model: { type: 'string' }, remote: { type: 'string' }, 'api-key': { type: 'string' },
        input: { type: 'string' }, out: { type: 'string' },
        dtype: { type: 'string' }, store: { type: 'string' }, 'store-uri': { type: 'string' },
        'chunk-size': { type: 'string' }, 'max-length': { type: 'string' }, 'batch-tokens': { type: 'string' },
        prune: { type: 'boolean' }, delete: { type: 'string' },
      },
    });
    if (!values.out) throw new UserError('--out <index-dir> is required (see search-r3 index --help).');
    const out = values.out;
    return asUserErrors(async () => {
      if (values.delete !== undefined) return deleteIds(out, values.delete);
      const dtype = values.dtype ?? 'f32';
      if (!['f32', 'f16', 'i8'].includes(dtype)) throw new UserError(`--dtype must be f32, f16 or i8 (got '${dtype}').`);
      const store = values.store ?? 'local';
      if (store !== 'local' && store !== 'lancedb') throw new UserError(`--store must be local or lancedb (got '${store}').`);
      if (!values.input) throw new UserError('--input <path> is required (see search-r3 index --help).');
      if (!values.model === !values.remote) throw new UserError('give exactly one of --model <dir> or --remote <urls>.');
      const backend: EmbeddingBackend = values.model
        ? await LocalBackend.fromModelDir(values.model, { maxLength: positiveInt(values['max-length'], 'max-length'), batchTokens: positiveInt(values['batch-tokens'], 'batch-tokens') })
        : await RemoteEmbedder.connect(values.remote!.split(',').map((s) => s.trim()).filter(Boolean), { apiKey: values['api-key'] ?? process.env.SEARCH_R3_API_KEY });
      const docs = await readDocuments(values.input);
      const index = await SearchIndex.open(out, {
        backend, create: { dtype: dtype as VectorDtype, store, ...(values['store-uri'] ? { storeUri: values['store-uri'] } : {}) },
      });
      try {
        const before = index.stats();
        if (before.pending > 0) process.stderr.write(`resuming: ${before.pending} documents left pending by an earlier run\n`);
        const progress = new ProgressReporter('encoding');
        const r = await index.addDocuments(docs, { chunkSize: positiveInt(values['chunk-size'], 'chunk-size'), onProgress: (p) => progress.update(p.done, p.total) });
        let pruned = 0;
        if (values.prune) {
          const keep = new Set(docs.map((d) => d.id));
          pruned = (await index.deleteDocuments(index.documentIds().filter((id) => !keep.has(id)))).length;
        }
        const s = index.stats();
        console.log(`${path.resolve(out)}: ${s.documents} documents indexed (${r.encoded} encoded now, ${docs.length - r.staged} unchanged${values.prune ? `, ${pruned} pruned` : ''}).`);
      } finally {
        await index.close();
        await backend.close?.();
      }
      return 0;
    });
  },
};

async function deleteIds(out: string, list: string): Promise<number> {
  const ids = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) throw new UserError('--delete needs at least one document id.');
  const index = await SearchIndex.open(out);
  try {
    const deleted = await index.deleteDocuments(ids);
    const missing = ids.filter((id) => !deleted.includes(id));
    console.log(`deleted ${deleted.length} documents${missing.length > 0 ? `; not in the index: ${missing.join(', ')}` : ''}.`);
  } finally {
    await index.close();
  }
  return 0;
}
