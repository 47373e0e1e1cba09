/**
 * The pretraining building blocks from the command line: corpus build → tokenizer train → a model
 * folder's tokenizer that loads; bad input is one line naming what to fix.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot, sharedData } from '../helpers/repo.js';

let dir = '';
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'pretrain-cli-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test(
  'corpus build then tokenizer train on its folder: ' + 'the manifest is not read as text, the tokenizer loads',
  async () => {
    const corpus = path.join(dir, 'corpus');
    const c = runCli([
      'corpus',
      'build',
      '--data',
      sharedData,
      '--out',
      corpus,
      '--only',
      'arcd-paragraphs,climate-fever-evidence',
      '--valid-fraction',
      '0.05',
      '--quiet',
    ]);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /from 2 sources/);
    const manifest = JSON.parse(readFileSync(path.join(corpus, 'manifest.json'), 'utf8')) as {
      sources: { licence: string }[];
    };
    assert.ok(manifest.sources.every((s) => /CC BY-SA/.test(s.licence)));

    const tok = path.join(dir, 'tok');
    const t = runCli(['tokenizer', 'train', '--input', corpus, '--vocab-size', '1000', '--out', tok, '--quiet']);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /1000 tokens \(740 merges\)/);
    const training = JSON.parse(readFileSync(path.join(tok, 'tokenizer-training.json'), 'utf8')) as { files: string[] };
    assert.deepEqual(
      training.files.map((f) => path.basename(f)),
      ['train-00000.jsonl', 'valid.jsonl'],
    );
    const loaded = await Tokenizer.fromFolder(tok);
    assert.equal(loaded.vocabSize, 1000);
    const arabic = 'البحث عن المعلومات';
    assert.equal(loaded.decode(loaded.encode(arabic)), arabic);
  },
);

test('bad input: one line naming the option', () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['tokenizer', 'train', '--input', path.join(dir, 'missing'), '--vocab-size', '500', '--out', dir],
      /--input .*missing: no such file or folder/,
    ],
    [
      ['tokenizer', 'train', '--input', sharedData, '--vocab-size', '100', '--out', dir],
      /--vocab-size must be an integer ≥ 260/,
    ],
    [['tokenizer', 'fit'], /unknown sub-command 'fit'; choose train/],
    [
      ['corpus', 'build', '--data', sharedData, '--out', dir, '--only', 'nfcorpus'],
      /--only nfcorpus: not an available source/,
    ],
    [['corpus', 'pairs', '--out', path.join(dir, 'pairs.txt')], /--out must name the pairs file to write/],
    [
      ['corpus', 'pairs', '--out', path.join(dir, 'pairs.jsonl'), '--only', 'debian-devil'],
      /--only debian-devil: not a source of pairs; known: debian-wordnet, debian-gcide/,
    ],
    [
      ['corpus', 'pairs', '--out', path.join(dir, 'pairs.jsonl'), '--max-terms', '2.5'],
      /--max-terms must be an integer ≥ 0 \(got '2.5'\)/,
    ],
    [
      ['corpus', 'pairs', '--out', path.join(dir, 'pairs.jsonl'), '--max-terms', '0', '--max-headings', '0'],
      /--max-terms and --max-headings are both 0/,
    ],
    [['corpus', 'pairs', '--out', path.join(dir, 'pairs.jsonl'), '--only', ''], /--only names no source/],
    [
      ['corpus', 'pairs', '--out', path.join(dir, 'pairs.jsonl'), '--only', 'debian-foldoc', '--max-terms', '0'],
      /--only debian-foldoc names term sources only, and --max-terms is 0: the file would hold no pairs\./,
    ],
    [
      ['corpus', 'pairs', '--out', path.join(dir, 'p.jsonl'), '--only', 'debian-python-doc', '--max-headings', '0'],
      /--only debian-python-doc names heading sources only, and --max-headings is 0/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = runCli(args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('tokenizer train on a file of no text says so, after its progress line', () => {
  const emptyFile = path.join(dir, 'empty.txt');
  writeFileSync(emptyFile, '');
  const r = runCli(['tokenizer', 'train', '--input', emptyFile, '--vocab-size', '500', '--out', dir]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /\nsearch-r3: .*empty\.txt: no text to learn from \(1 file read\)\n$/);
});

test('tokenizer train that fails writing leaves no finished tokenizer: the same command then runs', async () => {
  // 300 files: the summary (which lists them, ~20 KiB) is larger than tokenizer.json (~11 KiB)
  const texts = path.join(dir, 'write-fail');
  await fsp.mkdir(texts);
  const lines = readFileSync(path.join(sharedData, 'scifact', 'corpus.jsonl'), 'utf8')
    .split('\n')
    .slice(0, 300);
  lines.forEach((line, i) => writeFileSync(path.join(texts, `document-${i}.jsonl`), line + '\n'));
  const out = path.join(dir, 'tok-write-fail');
  const args = ['tokenizer', 'train', '--input', texts, '--vocab-size', '600', '--out', out, '--quiet'];
  // files of at most 16 KiB, as a disk that fills up fails the last and largest file: the summary
  const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const command = [process.execPath, cli, ...args].map((a) => `"${a}"`).join(' ');
  const limited = spawnSync('bash', ['-c', `ulimit -f 16; exec ${command}`], { encoding: 'utf8' });
  assert.equal(limited.status, 2, limited.stderr);
  assert.match(limited.stderr, /^search-r3: write \S+tokenizer-training\.json: the file is larger than/);
  assert.equal(existsSync(path.join(out, 'tokenizer_config.json')), false, 'no file that marks a finished tokenizer');
  const again = runCli(args);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(existsSync(path.join(out, 'tokenizer_config.json')), true);
});

test("tokenizer train refuses a BEIR folder's queries, named or in a folder: they hold the test queries", async () => {
  const beir = path.join(dir, 'beir');
  await fsp.mkdir(path.join(beir, 'qrels'), { recursive: true });
  const docs = ['cholesterol and the heart', 'statins lower cholesterol', 'exercise and blood pressure'];
  const corpus = docs.map((text, i) => JSON.stringify({ _id: `d${i}`, title: '', text })).join('\n');
  await fsp.writeFile(path.join(beir, 'corpus.jsonl'), corpus + '\n');
  const queries = path.join(beir, 'queries.jsonl');
  await fsp.writeFile(queries, JSON.stringify({ _id: 'q1', text: 'what lowers cholesterol?' }) + '\n');
  await fsp.writeFile(path.join(beir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\n');
  const out = path.join(dir, 'tok-beir');
  for (const input of [beir, queries]) {
    const r = runCli(['tokenizer', 'train', '--input', input, '--vocab-size', '300', '--out', out, '--quiet']);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      `search-r3: --input ${input} gives ${queries}, a BEIR folder's queries (its test queries among them), which ` +
        'no tokenizer is trained on: name its corpus.jsonl, or a folder of search-r3 corpus build.\n',
    );
    assert.equal(existsSync(out), false, input);
  }
  const ok = runCli(
    ['tokenizer', 'train', '--input', path.join(beir, 'corpus.jsonl'), '--vocab-size', '300'].concat([
      '--out',
      out,
      '--quiet',
    ]),
  );
  assert.equal(ok.status, 0, ok.stderr);
});

test("corpus build replaces an earlier corpus, never a user's folder or file, and checks --data first", async () => {
  const build = (out: string, data = sharedData, only = 'arcd-paragraphs'): ReturnType<typeof runCli> =>
    runCli(['corpus', 'build', '--data', data, '--out', out, '--only', only, '--quiet']);
  const theirs = path.join(dir, 'theirs');
  await fsp.mkdir(theirs);
  await fsp.writeFile(path.join(theirs, 'thesis.txt'), 'years of work');
  // another tool's folder with a manifest.json of its own
  const manifested = path.join(dir, 'manifested');
  await fsp.mkdir(manifested);
  await fsp.writeFile(path.join(manifested, 'manifest.json'), '{"name": "my dataset"}\n');
  const file = path.join(dir, 'mined.jsonl');
  await fsp.writeFile(file, '{}\n');
  const empty = path.join(dir, 'empty-data');
  await fsp.mkdir(empty);
  const refused: Array<[ReturnType<typeof runCli>, RegExp]> = [
    [build(theirs), /--out .*theirs is not an earlier corpus: it holds 1 entry and no manifest.json; corpus build/],
    [build(manifested), /--out .*manifested is not an earlier corpus: its manifest.json is not one corpus build /],
    [build(file), /--out .*mined.jsonl is a file; name a folder to write into/],
    [build(path.join(dir, 'c2'), empty), /arcd-paragraphs needs .*empty-data\/arcd\/.*, which is missing/],
    [build(path.join(dir, 'c3'), sharedData, ','), /--only names no source/],
  ];
  for (const [r, re] of refused) {
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(readFileSync(path.join(theirs, 'thesis.txt'), 'utf8'), 'years of work');
  assert.equal(readFileSync(file, 'utf8'), '{}\n');
  const corpus = path.join(dir, 'rebuilt');
  for (let i = 0; i < 2; i++) {
    const r = build(corpus);
    assert.equal(r.status, 0, 'a new folder, then the corpus it holds');
    assert.match(r.stdout, /MB in 1 shard\), .* from 1 source; manifest in /);
  }
});

test("corpus build over an earlier corpus that holds the user's files too refuses, naming the first", async () => {
  const corpus = path.join(dir, 'with-notes');
  const build = (): ReturnType<typeof runCli> =>
    runCli(['corpus', 'build', '--data', sharedData, '--out', corpus, '--only', 'arcd-paragraphs', '--quiet']);
  assert.equal(build().status, 0);
  await fsp.writeFile(path.join(corpus, 'NOTES.md'), 'my notes');
  await fsp.mkdir(path.join(corpus, 'tokenizer'));
  await fsp.writeFile(path.join(corpus, 'tokenizer', 'tokenizer.json'), '{}');
  for (const [foreign, remove] of [
    ['NOTES.md', 'NOTES.md'],
    ['tokenizer', 'tokenizer'],
  ]) {
    const r = build();
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      `search-r3: --out ${corpus} holds ${foreign}, which corpus build does not write; it replaces the whole ` +
        'folder, so move that out first or name a new folder.\n',
    );
    await fsp.rename(path.join(corpus, remove), path.join(dir, `moved-${remove}`));
  }
  assert.equal(readFileSync(path.join(dir, 'moved-NOTES.md'), 'utf8'), 'my notes');
  assert.equal(readFileSync(path.join(dir, 'moved-tokenizer', 'tokenizer.json'), 'utf8'), '{}');
  assert.equal(build().status, 0, 'a corpus alone is replaced');
});

test(
  'a .jsonl line that is no JSON object (a cut or damaged ' + 'corpus file) is one line naming the file and line',
  async () => {
    const file = path.join(dir, 'bad.jsonl');
    await fsp.writeFile(file, '{"title": "alpha", "text": "beta gamma"}\n{"text": "cut sho\nnull\n');
    const said = `search-r3: ${file}:2: not a JSON object; each line of a .jsonl document file is {"title", "text"}\n`;
    const tokOut = path.join(dir, 'tok-bad');
    const tok = runCli(['tokenizer', 'train', '--input', file, '--vocab-size', '300', '--out', tokOut, '--quiet']);
    assert.equal(tok.status, 2, tok.stderr);
    assert.equal(tok.stderr, said);
    const cfg = path.join(dir, 'lm-bad.json');
    await fsp.writeFile(
      cfg,
      JSON.stringify({
        tokenizer: path.join(dir, 'tok'),
        output: path.join(dir, 'lm-bad'),
        data: { train: [file] },
        model: { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 4, numKeyValueHeads: 2 },
        seqLength: 16,
        batchSize: 1,
        steps: 1,
      }),
    );
    const lm = runCli(['train', 'lm', '--config', cfg, '--quiet']);
    assert.equal(lm.status, 2, lm.stderr);
    assert.equal(lm.stderr, said);
  },
);

test('corpus build over a damaged source file: one line naming the file and line, exit code 2', async () => {
  const data = path.join(dir, 'damaged-data');
  await fsp.mkdir(path.join(data, 'scifact'), { recursive: true });
  const file = path.join(data, 'scifact', 'corpus.jsonl');
  await fsp.writeFile(file, '{"_id": "1", "title": "a", "text": "b c"}\n{"_id": "2", "text": "cut sho\n');
  const r = runCli([
    'corpus',
    'build',
    '--data',
    data,
    '--out',
    path.join(dir, 'c-damaged'),
    '--only',
    'scifact-corpus',
  ]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^search-r3: .*:2: not valid JSON \(.*\)\n$/);
  assert.ok(r.stderr.startsWith(`search-r3: ${file}:2: `), r.stderr);
});

test('corpus build over sources that give no document is refused, and an earlier corpus at --out is kept', async () => {
  const data = path.join(dir, 'empty-source');
  await fsp.mkdir(path.join(data, 'scifact'), { recursive: true });
  await fsp.writeFile(path.join(data, 'scifact', 'corpus.jsonl'), '\n');
  const out = path.join(dir, 'kept-corpus');
  const first = runCli(['corpus', 'build', '--data', sharedData, '--out', out, '--only', 'arcd-paragraphs', '--quiet']);
  assert.equal(first.status, 0, first.stderr);
  const manifest = readFileSync(path.join(out, 'manifest.json'), 'utf8');
  const r = runCli(['corpus', 'build', '--data', data, '--out', out, '--only', 'scifact-corpus', '--quiet']);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(
    r.stderr,
    'search-r3: corpus build: scifact-corpus (scifact/corpus.jsonl) gave no documents, so there is no corpus to ' +
      'write; check that the files hold text, or choose other sources with --only.\n',
  );
  assert.equal(readFileSync(path.join(out, 'manifest.json'), 'utf8'), manifest);
});

test('corpus pairs --help: what the pairs are, where from, and the caps', () => {
  const r = runCli(['corpus', 'pairs', '--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^search-r3 corpus pairs — stage-1 pairs from the Debian text packages/);
  assert.match(r.stdout, /debian-gcide \(dict-gcide\)/);
  assert.match(r.stdout, /--max-terms <n> +term → definition examples kept \(default 6000\)/);
  assert.match(runCli(['corpus', '--help']).stdout, /search-r3 corpus pairs --out <file\.jsonl>/);
});
