/**
 * --engine llama.cpp as a user runs it: export gguf writes the GGUF into the model folder, where index,
 * search and eval find it; an index remembers which engine's vectors it holds and refuses the other
 * one's in a sentence that says what to do (--as-source-model), after which both engines share it; the
 * server runs it in its model worker (embeddings, a text its prompt would cut refused unless the request
 * asks for cutting, reasoning queries, their analysis streamed; chat is refused); bad options are one sentence each.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodePrompt } from '../../src/embed/index.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { WorkerBackend } from '../../src/serve/model-worker.js';
import { startSearchServer } from '../../src/serve/server.js';
import { runCliAsync } from '../helpers/cli.js';
import { exportGguf, ggufModelFolder } from '../helpers/gguf-model-folder.js';
import { post, postEmbeddings } from '../helpers/http.js';
import { repoRoot } from '../helpers/repo.js';
import { inPool } from '../helpers/pool.js';
import { runProgram } from '../helpers/run-program.js';
import { cosine } from '../helpers/llama-cpp.js';
import { DEFAULT_SCALES, VARIED_SCALES } from '../helpers/random-qwen2.js';
import { toyBeir } from '../helpers/train-fixtures.js';
import { corpus, tinyBackend, writeJsonl } from '../search-index/fixtures.js';

let dir = '',
  model = '',
  input = '';
const docs = corpus(12);

/**
 * One thread for each engine: the tiny models gain nothing from more, and llama.cpp's threads spinning on a busy
 * 2-core machine made indexing 12 documents take 2 s instead of 0.2 s.
 */
const ONE_THREAD = { SEARCH_R3_THREADS: '1' };

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runCliAsync(args, ONE_THREAD);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Command lines that do not depend on each other, two at a time (CI has two cores); results in order. */
function clis(...lines: string[][]): Promise<{ code: number | null; stdout: string; stderr: string }[]> {
  return inPool(lines, (line) => cli(...line));
}

/** A text of at most `n` tokens, and about that many, from the corpus's words. */
function textOfAbout(tok: Tokenizer, n: number): string {
  const words = docs.flatMap((d) => d.text.split(' '));
  let text = words[0];
  for (let i = 1; ; i++) {
    const longer = `${text} ${words[i % words.length]}`;
    if (tok.encode(longer).length > n) return text;
    text = longer;
  }
}

const topIds = (stdout: string): string[] => (JSON.parse(stdout) as { data: { id: string }[] }).data.map((h) => h.id);

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sr3-llama-cli-'));
  model = await ggufModelFolder(path.join(dir, 'model'), 2, DEFAULT_SCALES);
  input = path.join(dir, 'docs.jsonl');
  writeJsonl(input, docs);
});

after(() => fsp.rm(dir, { recursive: true, force: true }));

test('no GGUF yet, or an engine option without --engine llama.cpp: one sentence each', async () => {
  let r = await cli('search', '--index', path.join(dir, 'none'), '--engine', 'llama.cpp', 'q');
  assert.equal(r.code, 2);
  r = await cli(
    'index',
    '--model',
    model,
    '--input',
    input,
    '--out',
    path.join(dir, 'x'),
    '--engine',
    'llama.cpp',
    '--gpu',
    'off',
  );
  assert.equal(r.code, 2);
  const out = path.join(model, 'model-f16.gguf');
  assert.equal(
    r.stderr.trim(),
    `search-r3: ${model} holds no GGUF for --engine llama.cpp; write one with search-r3 export gguf --model ` +
      `${model} --out ${out}, or pass --gguf.`,
  );
  r = await cli('index', '--model', model, '--input', input, '--out', path.join(dir, 'x'), '--gguf', out);
  assert.equal(r.stderr.trim(), 'search-r3: --gguf goes with --engine llama.cpp.');
  r = await cli(
    'index',
    '--model',
    model,
    '--input',
    input,
    '--out',
    path.join(dir, 'x'),
    '--engine',
    'llama.cpp',
    '--gpu',
    'tpu',
  );
  assert.equal(r.stderr.trim(), "search-r3: --gpu must be one of auto, off, cuda, vulkan, metal (got 'tpu').");
});

test('index, search and eval on llama.cpp; an index shared by both engines only with --as-source-model', async () => {
  const r = await cli('export', 'gguf', '--model', model, '--out', path.join(model, 'model-f16.gguf'), '--type', 'f16');
  assert.equal(r.code, 0, r.stderr);
  const llamaIdx = path.join(dir, 'idx-llama'),
    oursIdx = path.join(dir, 'idx-ours');
  const onLlamaCpp = ['--engine', 'llama.cpp', '--gpu', 'off'];
  const [built, builtOurs] = await clis(
    ['index', '--model', model, '--input', input, '--out', llamaIdx, ...onLlamaCpp],
    ['index', '--model', model, '--input', input, '--out', oursIdx],
  );
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stdout, /12 documents indexed/);
  assert.equal(builtOurs.code, 0, builtOurs.stderr);

  const query = `${docs[3].title}\n${docs[3].text}`;
  // reads of the two indexes, none of which writes: two at a time
  const [onLlama, onOurs, llamaOnOurs, oursOnLlama, asSource] = await clis(
    ['search', '--index', llamaIdx, ...onLlamaCpp, '--json', '-k', '3', query],
    ['search', '--index', oursIdx, '--json', '-k', '3', query],
    ['search', '--index', llamaIdx, query],
    ['search', '--index', oursIdx, ...onLlamaCpp, query],
    ['search', '--index', oursIdx, ...onLlamaCpp, '--as-source-model', '--json', '-k', '3', query],
  );
  assert.equal(onLlama.code, 0, onLlama.stderr);
  assert.deepEqual(topIds(onLlama.stdout), topIds(onOurs.stdout), 'the two engines rank alike');

  assert.equal(llamaOnOurs.code, 2);
  assert.match(
    llamaOnOurs.stderr,
    new RegExp(
      '^search-r3: the index was built with --engine llama\\.cpp from a GGUF \\(gguf-sha256:[0-9a-f]{32}\\); ' +
        'use --engine llama\\.cpp with that GGUF, or build the index again\\.\n$',
    ),
  );
  assert.equal(oursOnLlama.code, 2);
  assert.match(
    oursOnLlama.stderr,
    new RegExp(
      "the index was built by search-r3's engine from the model folder that .*model-f16\\.gguf was exported from; " +
        "llama\\.cpp's F16 vectors of it differ slightly .* so add --as-source-model to use them together",
    ),
  );
  assert.equal(asSource.code, 0, asSource.stderr);
  assert.deepEqual(topIds(asSource.stdout), topIds(onOurs.stdout));

  const beir = toyBeir(path.join(dir, 'beir'));
  // a GGUF left from earlier weights (the folder was trained again) would be scored as the folder's model
  const stale = path.join(dir, 'stale');
  await fsp.cp(model, stale, { recursive: true });
  const other = await ggufModelFolder(path.join(dir, 'other'), 3, DEFAULT_SCALES);
  await fsp.copyFile(path.join(other, 'model.safetensors'), path.join(stale, 'model.safetensors'));
  const evaluate = ['eval', '--dataset', beir, '--split', 'train', '--retriever'];
  const [ours, theirs, e] = await clis(
    [...evaluate, model, '--json'],
    [...evaluate, model, '--json', ...onLlamaCpp],
    [...evaluate, stale, '--engine', 'llama.cpp'],
  );
  const [mine, others] = [ours, theirs].map((run) => {
    assert.equal(run.code, 0, run.stderr);
    return (JSON.parse(run.stdout) as { all: Record<string, number> }).all;
  });
  assert.ok(
    Math.abs(mine.ndcg_cut_10 - others.ndcg_cut_10) <= 1e-3,
    `nDCG@10 ${mine.ndcg_cut_10} vs ${others.ndcg_cut_10}`,
  );
  assert.equal(e.code, 2, e.stderr);
  assert.match(e.stderr, /model-f16\.gguf: was exported from model \S+, but .*stale now holds \S+; export it again/);
});

test(
  'serve --engine llama.cpp: embeddings (a text too long for its prompt cut only when asked) and reasoning ' +
    'queries as search-r3 computes them; chat is refused',
  async () => {
    const gguf = path.join(model, 'model-f16.gguf');
    const worker = await WorkerBackend.start(model, { engine: { gguf, gpu: 'off', identity: 'gguf' } });
    const idx = path.join(dir, 'idx-served');
    const index = await SearchIndex.open(idx, { backend: worker, create: {} });
    const server = await startSearchServer({ backend: worker, index, port: 0 });
    try {
      await index.addDocuments(docs);
      assert.equal(worker.info.llamaCpp?.fileType, 'F16');
      const ours = await tinyBackend(model);
      const texts = docs.slice(0, 3).map((d) => d.text);
      const r = await postEmbeddings(server.url, texts);
      assert.equal(r.status, 200, String(r.raw));
      const want = await ours.embedDocuments(texts);
      (r.body as unknown as { data: { embedding: number[] }[] }).data.forEach((d, i) =>
        assert.ok(cosine(d.embedding, want[i]) >= 0.9999, `input ${i}`),
      );
      // a text its document prompt would cut: refused by name, or, when asked, cut as search-r3's engine cuts it
      const tok = await Tokenizer.fromFolder(model);
      const { maxLength, templates } = worker.info;
      const long = textOfAbout(tok, maxLength - 4);
      const n = tok.encode(long).length;
      const refused = await postEmbeddings(server.url, [texts[0], long]);
      assert.equal(refused.status, 400, String(refused.raw));
      assert.equal(refused.body.error?.param, 'input[1]');
      const room = `input\\[1\\] has ${n} tokens, and the document prompt leaves room for \\d+ of the model's`;
      assert.match(refused.body.error!.message, new RegExp(`${room} ${maxLength};`));
      const cut = await postEmbeddings(server.url, [texts[0], long], { truncate: true });
      assert.equal(cut.status, 200, String(cut.raw));
      const wantCut = encodePrompt(tok, long, 'document', templates, maxLength).truncated;
      assert.ok(wantCut > 0);
      const reports = cut.body.search_r3 as { truncated_tokens: number }[];
      assert.deepEqual(
        reports.map((r) => r.truncated_tokens),
        [0, wantCut],
      );
      // tinyBackend cuts at 128 tokens: this one cuts where the server does
      const oursAtLength = await LocalBackend.fromModelDir(model, { maxLength });
      const [wantLong] = await oursAtLength.embedDocuments([long]);
      const servedLong = (cut.body as unknown as { data: { embedding: number[] }[] }).data[1].embedding;
      assert.ok(cosine(servedLong, wantLong) >= 0.9999, `cut text: cosine ${cosine(servedLong, wantLong)}`);
      const q = await postEmbeddings(server.url, ['heart attack'], {
        mode: 'query',
        reasoning: 'on',
        max_reasoning_tokens: 6,
      });
      assert.equal(q.status, 200, String(q.raw));
      const [mineQ] = await ours.embedQueries(['heart attack'], { reasoning: 'on', maxReasoningTokens: 6 });
      assert.ok(
        cosine((q.body as unknown as { data: { embedding: number[] }[] }).data[0].embedding, mineQ.vector) >= 0.9999,
      );
      const s = await post(server.url, '/v1/search', { query: docs[5].text, k: 1 });
      assert.equal((s.body as unknown as { data: { id: string }[] }).data[0].id, docs[5].id);
      const chat = await post(server.url, '/v1/chat/completions', {
        model: 'search-r3',
        messages: [{ role: 'user', content: 'hi' }],
      });
      assert.equal(chat.status, 400);
      assert.match(String(chat.raw), /this server runs --engine llama\.cpp, which serves embeddings and search/);
    } finally {
      await server.close();
      await index.close();
    }
  },
);

test('serve --engine llama.cpp streams the analysis of /v1/search/stream as it is generated', async () => {
  // weights whose greedy continuations are text (the shared model's are whitespace, which shows nothing)
  const varied = await ggufModelFolder(path.join(dir, 'model-varied'), 2, VARIED_SCALES);
  const gguf = await exportGguf(varied, 'F16');
  const worker = await WorkerBackend.start(varied, { engine: { gguf, gpu: 'off', identity: 'gguf' } });
  const index = await SearchIndex.open(path.join(dir, 'idx-stream'), { backend: worker, create: {} });
  const server = await startSearchServer({ backend: worker, index, port: 0 });
  try {
    await index.addDocuments(docs.slice(0, 3));
    const body = { query: 'heart attack', k: 1, reasoning: 'on', max_reasoning_tokens: 24 };
    const r = await post(server.url, '/v1/search/stream', body);
    assert.equal(r.status, 200, String(r.raw));
    const ev = String(r.raw)
      .split('\n\n')
      .filter((b) => b.trim() !== '')
      .map((b) => ({ name: /^event: (.*)$/m.exec(b)![1], data: JSON.parse(/^data: (.*)$/m.exec(b)![1]) }));
    const result = ev.pop()!;
    assert.equal(result.name, 'result');
    const final = result.data.reasoning as string;
    assert.equal(final, (await post(server.url, '/v1/search', body)).body.reasoning);
    assert.ok(ev.length >= 2, `${ev.length} reasoning events before the result`);
    for (const e of ev) {
      assert.equal(e.name, 'reasoning');
      assert.ok(final.startsWith(e.data.reasoning as string), `${e.data.reasoning} begins ${final}`);
    }
  } finally {
    await server.close();
    await index.close();
  }
});

test('a model worker on llama.cpp closed, or its program exiting, while it embeds: no abort', async () => {
  // the default model: the tiny test models' passes are too short for a teardown to land inside one
  const folder = path.join(dir, 'default-model');
  await fsp.mkdir(folder);
  const files = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
  for (const f of files)
    await fsp.copyFile(path.join(repoRoot, 'models', 'search-r3-default', f), path.join(folder, f));
  const gguf = await exportGguf(folder, 'F16');
  // torn down in the middle of llama.cpp's native work, the worker would abort the whole process
  const program = (end: string): string => `import { WorkerBackend } from 'ENTRY';
const engine = { gguf: ${JSON.stringify(gguf)}, gpu: 'off', identity: 'gguf' };
const w = await WorkerBackend.start(${JSON.stringify(folder)}, { engine });
const texts = Array.from({ length: 300 }, (_, i) => ('document ' + i + ' on gene therapy and the heart ').repeat(8));
const embedding = w.embedDocuments(texts).then(() => 'embedded', (e) => e.name);
await new Promise((r) => setTimeout(r, 500)); // about 50 ms a text of 300: llama.cpp is in the middle of one
${end}
`;
  const closes = program('await w.close();\nconsole.log(await embedding);');
  const exits = program('process.exit(3);');
  // two at once: four made each pass so slow on two cores that an exit waited past its notice (3 s) for one
  const runs = await inPool([closes, closes, exits, exits], (program, i) =>
    runProgram(dir, `busy-${i}`, program, 120_000, ONE_THREAD),
  );
  for (const r of runs.slice(0, 2)) {
    assert.deepEqual([r.code, r.signal], [0, null], r.stderr);
    assert.equal(r.stdout, 'ModelUnavailableError\n', r.stderr);
  }
  for (const r of runs.slice(2)) assert.deepEqual([r.code, r.signal, r.stderr], [3, null, '']);
});
