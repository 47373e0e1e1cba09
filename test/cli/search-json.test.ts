/**
 * `search --json` prints the fields POST /v1/search answers with, under the same names, for the same query:
 * `reasoning` and `forced` only when the query was reasoned about, and its --help says so.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { type RunningServer, startSearchServer } from '../../src/serve/server.js';
import { runCli, runCliAsync } from '../helpers/cli.js';
import { post } from '../helpers/http.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';

let server: RunningServer;
let index: SearchIndex;
let idx = '';
let scratch: { dir: string; cleanup: () => void };

before(async () => {
  scratch = tempDir('search-json');
  const backend = await tinyBackend(await tinyModelDir(scratch.dir));
  idx = path.join(scratch.dir, 'idx');
  index = await SearchIndex.open(idx, { backend, create: {} });
  await index.addDocuments(corpus(12));
  server = await startSearchServer({ backend, index, port: 0 });
});

after(async () => {
  await server.close();
  await index.close();
  scratch.cleanup();
});

const keys = (o: object): string[] => Object.keys(o).sort();

for (const reasoning of ['off', 'on'] as const) {
  test(`search --json and /v1/search answer with the same fields, reasoning ${reasoning}`, async () => {
    const query = 'protein cancer risk';
    const budget = ['--max-reasoning-tokens', '4'];
    const args = ['search', '--index', idx, '--json', '-k', '3', '--reasoning', reasoning, query];
    const cli = await runCliAsync(reasoning === 'on' ? [...args, ...budget] : args);
    assert.equal(cli.status, 0, cli.stderr);
    const printed = JSON.parse(cli.stdout) as Record<string, unknown> & { data: object[] };
    const api = await post(server.url, '/v1/search', { query, k: 3, reasoning, max_reasoning_tokens: 4 });
    assert.equal(api.status, 200, api.raw.toString());
    const answered = api.body as unknown as Record<string, unknown> & { data: object[] };
    const reasoned = ['forced', 'reasoning'];
    const want = (reasoning === 'on' ? ['data', 'query', 'timings', ...reasoned] : ['data', 'query', 'timings']).sort();
    assert.deepEqual(keys(printed), want);
    assert.deepEqual(
      keys(answered).filter((k) => want.includes(k) || reasoned.includes(k)),
      want,
    );
    assert.deepEqual(printed.data.map(keys), answered.data.map(keys));
  });
}

test('search --help says reasoning and forced are printed only with --reasoning on', () => {
  const help = runCli(['search', '--help']).stdout.replace(/\s+/g, ' ');
  assert.match(help, /--json .*reasoning and forced \(only with --reasoning on\)/);
});
