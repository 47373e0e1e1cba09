// What bm25.bin saves a hybrid search: building the BM25 index from every indexed text (what each `search --hybrid`
// paid before) against reading it back from the file, on SciFact's texts, copied under new ids up to n documents.
// Checks that the read index ranks as the built one, bit for bit. Usage (after npm run build):
//   node scripts/bench-bm25-file.mjs [corpus file] [n ...]
//   ("" takes the default: demo/scifact/corpus.jsonl.gz; n defaults to the corpus size and 50000)
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAnalyzer } from '../dist/src/eval/analyzer.js';
import { Bm25Index } from '../dist/src/eval/bm25.js';
import { readBm25File, writeBm25File } from '../dist/src/eval/bm25-file.js';
import { documentText, readDocuments } from '../dist/src/search-index/document-source.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const [corpusArg, ...sizes] = process.argv.slice(2);
const corpus = await readDocuments(corpusArg || path.join(root, 'demo', 'scifact', 'corpus.jsonl.gz'));
const work = mkdtempSync(path.join(tmpdir(), 'bench-bm25-file-'));
const queries = ['gene expression in breast cancer cells', 'vitamin D deficiency', 'T cell receptor signalling'];
const ms = (t0) => (performance.now() - t0).toFixed(0);
try {
  for (const n of sizes.length > 0 ? sizes.map(Number) : [corpus.length, 50000]) {
    const docs = Array.from({ length: n }, (_, i) => {
      const d = corpus[i % corpus.length];
      return { id: `${d.id}-${Math.floor(i / corpus.length)}`, text: documentText(d) };
    });
    const file = path.join(work, `bm25-${n}.bin`);
    const key = { generation: 1, source: 'bench', documents: n };
    let t0 = performance.now();
    const built = Bm25Index.build(docs, createAnalyzer());
    const buildMs = ms(t0);
    t0 = performance.now();
    writeBm25File(file, built, key, createAnalyzer());
    const saveMs = ms(t0);
    const loads = [];
    let loaded;
    for (let i = 0; i < 3; i++) {
      // a new analyzer each time, as a new process has: its identity is computed on first use
      t0 = performance.now();
      const read = readBm25File(file, key, createAnalyzer());
      loads.push(performance.now() - t0);
      if (!('index' in read)) throw new Error(`the file was not read back: ${JSON.stringify(read)}`);
      loaded = read.index;
    }
    for (const q of queries) {
      const [a, b] = [built.search(q, 1000), loaded.search(q, 1000)];
      if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`'${q}' ranks differently after the read`);
    }
    const mib = (statSync(file).size / 2 ** 20).toFixed(1);
    loads.sort((x, y) => x - y);
    console.log(
      `${n} documents: build ${buildMs} ms, save ${saveMs} ms (${mib} MiB), ` +
        `load ${loads.map((t) => t.toFixed(0)).join(' / ')} ms (min / median / max of 3); rankings identical`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
