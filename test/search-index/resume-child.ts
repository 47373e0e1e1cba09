/**
 * Child process for resume.test.ts: indexes a corpus with small chunks, printing a line after each
 * committed chunk and pausing briefly so the parent's SIGKILL lands mid-run. Does nothing unless run
 * with --child (node --test also loads every file under test/).
 */
import { SearchIndex } from '../../src/search-index/search-index.js';
import { corpus, tinyBackend } from './fixtures.js';

async function main(modelDir: string, indexDir: string, n: number, chunkSize: number, pauseMs: number): Promise<void> {
  const backend = await tinyBackend(modelDir);
  const index = await SearchIndex.open(indexDir, { backend, create: {} });
  await index.addDocuments(corpus(n), {
    chunkSize,
    onChunkCommitted: async (p) => {
      process.stdout.write(`chunk ${p.chunks} ${p.done}/${p.total}\n`);
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    },
  });
  await index.close();
  process.stdout.write('done\n');
}

if (process.argv[2] === '--child') {
  const [modelDir, indexDir, n, chunk, pause] = process.argv.slice(3);
  main(modelDir, indexDir, Number(n), Number(chunk), Number(pause)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
