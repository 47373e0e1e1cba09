/**
 * Encode speed of our Tokenizer (Qwen2 vocabulary) on the SciFact corpus (5,183 documents), against
 * @lenml/tokenizers on the same tokenizer.json. Run: npx tsc -p . && node dist/bench/tokenizer-encode.js
 * The first pass fills the word caches, the second shows the warm speed (re-embedding a corpus).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TokenizerLoader } from '@lenml/tokenizers';
import { Tokenizer } from '../src/model/tokenizer.js';
import { qwenReferenceTokenizerDir, readQwenReferenceFiles } from '../test/helpers/qwen-reference-tokenizer.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpus = path.resolve(repoRoot, '../shared/data/scifact/corpus.jsonl');
const docs = readFileSync(corpus, 'utf8')
  .trim()
  .split('\n')
  .map((line) => {
    const doc = JSON.parse(line) as { title: string; text: string };
    return `${doc.title}\n${doc.text}`;
  });

function tokensPerSecond(encode: (text: string) => number[]): number {
  const start = performance.now();
  let tokens = 0;
  for (const doc of docs) tokens += encode(doc).length;
  return tokens / ((performance.now() - start) / 1000);
}

const ours = await Tokenizer.fromFolder(qwenReferenceTokenizerDir());
const { tokenizerJson, tokenizerConfig } = readQwenReferenceFiles();
const peer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: tokenizerJson as never,
  tokenizerConfig: tokenizerConfig as never,
});

console.log(`SciFact corpus: ${docs.length} documents`);
for (const pass of ['cold', 'warm']) {
  const a = tokensPerSecond((t) => ours.encode(t));
  const b = tokensPerSecond((t) => peer.encode(t, { add_special_tokens: false }));
  console.log(
    `${pass}: ours ${Math.round(a).toLocaleString('en-US')} tok/s, @lenml/tokenizers ` +
      `${Math.round(b).toLocaleString('en-US')} tok/s, ratio ${(a / b).toFixed(2)}`,
  );
}
