/**
 * The pretraining corpus from ../shared/data: deterministic, documented (manifest counts and sha256
 * match the files), train and valid disjoint, and free of the evaluation queries.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EvalInputError } from '../../../src/eval/input-error.js';
import { buildTextCorpus, parseCsvLine, type CorpusManifest } from '../../../src/train/lm/text-corpus.js';
import { DataError } from '../../../src/train/sft/data.js';
import { sharedData } from '../../helpers/repo.js';

let dir = '';
let manifest: CorpusManifest;
const SHARED = [
  'scifact-corpus',
  'xquad-paragraphs',
  'drcd-paragraphs',
  'arcd-paragraphs',
  'climate-fever-evidence',
  'stsb-train-sentences',
];

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'text-corpus-'));
  manifest = await buildTextCorpus(sharedData, path.join(dir, 'a'), {
    seed: 5,
    validFraction: 0.02,
    shardBytes: 4e6,
    only: SHARED,
  });
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function lines(file: string): Array<{ text: string; source: string }> {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { text: string; source: string });
}

test('manifest: every source with a licence, and counts and sha256 that match the files', () => {
  assert.deepEqual(
    manifest.sources.map((s) => s.name),
    SHARED,
  );
  for (const s of manifest.sources) {
    assert.ok(s.licence.length > 0 && s.documents > 100, s.name);
  }
  for (const f of [...manifest.train, ...manifest.valid]) {
    const buf = readFileSync(path.join(dir, 'a', f.file));
    assert.equal(buf.length, f.bytes, f.file);
    assert.equal(createHash('sha256').update(buf).digest('hex'), f.sha256, f.file);
    assert.equal(lines(path.join(dir, 'a', f.file)).length, f.documents, f.file);
  }
  assert.ok(manifest.train.length >= 3, 'several shards');
  const total = manifest.sources.reduce((a, s) => a + s.documents, 0);
  assert.equal(manifest.totals.trainDocuments + manifest.totals.validDocuments, total);
  const frac = manifest.totals.validDocuments / total;
  assert.ok(frac > 0.01 && frac < 0.03, `valid fraction ${frac}`);
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'a/manifest.json'), 'utf8')), manifest);
});

test('the same seed gives identical files; another seed another split', async () => {
  const again = await buildTextCorpus(sharedData, path.join(dir, 'b'), {
    seed: 5,
    validFraction: 0.02,
    shardBytes: 4e6,
    only: SHARED,
  });
  assert.deepEqual(
    again.train.map((f) => f.sha256),
    manifest.train.map((f) => f.sha256),
  );
  assert.equal(again.valid[0]!.sha256, manifest.valid[0]!.sha256);
  const other = await buildTextCorpus(sharedData, path.join(dir, 'c'), {
    seed: 6,
    validFraction: 0.02,
    shardBytes: 4e6,
    only: ['arcd-paragraphs'],
  });
  const first = await buildTextCorpus(sharedData, path.join(dir, 'd'), {
    seed: 5,
    validFraction: 0.02,
    shardBytes: 4e6,
    only: ['arcd-paragraphs'],
  });
  assert.notEqual(other.train[0]!.sha256, first.train[0]!.sha256);
});

test('train and valid are disjoint, and no evaluation query or Climate-FEVER claim is in the corpus', () => {
  const train = manifest.train.flatMap((f) => lines(path.join(dir, 'a', f.file)).map((d) => d.text));
  const valid = lines(path.join(dir, 'a/valid.jsonl')).map((d) => d.text);
  const trainSet = new Set(train);
  assert.ok(valid.every((t) => !trainSet.has(t)));
  const pieces = new Set<string>();
  for (const t of [...train, ...valid]) {
    pieces.add(t);
    for (const l of t.split('\n')) pieces.add(l.trim());
  }
  const queries = (file: string): string[] =>
    readFileSync(path.join(sharedData, file), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { text: string }).text.trim());
  const forbidden = [
    ...queries('scifact/queries.jsonl'),
    ...queries('nfcorpus/beir-preprocessed/test/queries.jsonl'),
    ...readFileSync(path.join(sharedData, 'climate-fever/climate-fever.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { claim: string }).claim.trim()),
  ];
  assert.ok(forbidden.length > 2000);
  const leaked = forbidden.filter((q) => pieces.has(q) || pieces.has(q.normalize('NFC')));
  assert.deepEqual(leaked, []);
  // the English SciFact corpus is there, the sentences of STS-B too
  assert.ok(
    train.concat(valid).some((t) => t.startsWith('Microstructural development of human newborn cerebral white matter')),
  );
});

test('CSV fields: quoted with doubled quotes, commas inside quotes, empty fields', () => {
  assert.deepEqual(parseCsvLine('a,"b, c","say ""hi""",,5.0'), ['a', 'b, c', 'say "hi"', '', '5.0']);
  assert.deepEqual(parseCsvLine('A plane is taking off.,An air plane is taking off.,5.0'), [
    'A plane is taking off.',
    'An air plane is taking off.',
    '5.0',
  ]);
});

test('--shard-mb counts bytes: a shard ends at the first line that takes it to the size, in UTF-8 bytes', async () => {
  const shardBytes = 100_000;
  // Arabic paragraphs: two bytes a letter in UTF-8, one UTF-16 unit
  const m = await buildTextCorpus(sharedData, path.join(dir, 'arabic'), {
    seed: 0,
    validFraction: 0,
    shardBytes,
    only: ['arcd-paragraphs'],
  });
  assert.ok(m.train.length >= 3, `${m.train.length} shards`);
  for (const f of m.train.slice(0, -1)) {
    const text = readFileSync(path.join(dir, 'arabic', f.file), 'utf8');
    const last = text.slice(text.lastIndexOf('\n', text.length - 2) + 1);
    assert.ok(f.bytes >= shardBytes, `${f.file}: ${f.bytes} bytes`);
    assert.ok(
      f.bytes - Buffer.byteLength(last) < shardBytes,
      `${f.file}: ${f.bytes} bytes, past the size before its last line`,
    );
  }
});

test('a damaged line of a source file is refused naming the file and line, and no corpus is written', async () => {
  const data = path.join(dir, 'damaged-data');
  await fsp.mkdir(path.join(data, 'scifact'), { recursive: true });
  await fsp.mkdir(path.join(data, 'climate-fever'), { recursive: true });
  const scifact = path.join(data, 'scifact/corpus.jsonl');
  await fsp.writeFile(scifact, '{"_id": "1", "title": "a", "text": "b c"}\n\n{"_id": "2", "text": "cut sho\n');
  const climate = path.join(data, 'climate-fever/climate-fever.jsonl');
  const ok = { claim: 'c', evidences: [{ article: 'A', evidence: 'e' }] };
  await fsp.writeFile(climate, `${JSON.stringify(ok)}\n${JSON.stringify({ claim: 'c', evidences: 'none' })}\n`);
  const cases: Array<[string, (e: unknown) => boolean]> = [
    // a BEIR corpus is read as eval reads one, and refused in the same words
    ['scifact-corpus', (e) => e instanceof EvalInputError && e.message.startsWith(`${scifact}:3: not valid JSON (`)],
    [
      'climate-fever-evidence',
      (e) =>
        e instanceof DataError &&
        e.message ===
          `${climate}:2: "evidences" is not a list of {"article", "evidence"} strings; each line is ` +
            '{"claim", "evidences": [{"article", "evidence"}, ...]}',
    ],
  ];
  for (const [source, refusal] of cases) {
    const out = path.join(dir, `damaged-${source}`);
    await assert.rejects(
      buildTextCorpus(data, out, { seed: 0, validFraction: 0, shardBytes: 1e6, only: [source] }),
      refusal,
      source,
    );
    assert.equal(existsSync(out), false);
  }
  await fsp.writeFile(climate, `${JSON.stringify(ok)}\n[1]\n`);
  await assert.rejects(
    buildTextCorpus(data, path.join(dir, 'damaged'), {
      seed: 0,
      validFraction: 0,
      shardBytes: 1e6,
      only: ['climate-fever-evidence'],
    }),
    (e: unknown) => e instanceof DataError && e.message.startsWith(`${climate}:2: not a JSON object`),
  );
});
