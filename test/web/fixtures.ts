/**
 * The playground tests' server: a slice of the shipped SciFact (three test claims, the abstracts judged for
 * them and the first 40 others) indexed by a tiny random model, served with SciFact test's judgments.
 * SEARCH_R3_SCREENSHOTS=docs uses the shipped default model instead, so the screenshots in docs/ show a
 * trained model's analysis (a slice of 300 abstracts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readBeirDataset } from '../../src/eval/beir.js';
import { subsetDevSet } from '../../src/eval/dev-eval.js';
import type { Qrels } from '../../src/eval/qrels.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { type ModelFusion, writeModelFusion } from '../../src/search-index/model-fusion.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { Judgments } from '../../src/serve/judgments.js';
import { type RunningServer, startSearchServer } from '../../src/serve/server.js';
import { repoRoot } from '../helpers/repo.js';
import { tinyModelDir } from '../search-index/fixtures.js';

export const SCIFACT = path.join(repoRoot, 'demo', 'scifact');
/** SciFact test claims with their relevant abstracts in the corpus (the demo's examples). */
export const CLAIMS = ['36', '641', '1100'];

export interface Playground {
  server: RunningServer;
  index: SearchIndex;
  queries: Map<string, string>;
  qrels: Qrels;
  close(): Promise<void>;
}

/** `fusion`: the weights the tiny model stores for hybrid search (the shipped model of docs mode has its own). */
export async function startPlayground(
  dir: string,
  opts: { apiKey?: string; fusion?: ModelFusion } = {},
): Promise<Playground> {
  const docsMode = process.env.SEARCH_R3_SCREENSHOTS === 'docs';
  const shipped = path.join(repoRoot, 'models', 'search-r3-default');
  const modelDir = docsMode && existsSync(shipped) ? shipped : await tinyModelDir(dir);
  if (opts.fusion && modelDir !== shipped) await writeModelFusion(modelDir, opts.fusion);
  const ds = await readBeirDataset(SCIFACT, 'test');
  const queries = new Map(CLAIMS.map((id) => [id, ds.queries.get(id)!]));
  const docs = subsetDevSet({ ...ds, queries }, 0, docsMode ? 300 : 40).corpus;
  const backend = await LocalBackend.fromModelDir(modelDir, { maxLength: 256 });
  const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
  await index.addDocuments(docs);
  const judgments = await Judgments.load(SCIFACT, 'test');
  const server = await startSearchServer({ backend, index, port: 0, judgments, apiKey: opts.apiKey });
  return {
    server,
    index,
    queries,
    qrels: ds.qrels,
    close: async () => {
      await server.close();
      await index.close();
    },
  };
}
