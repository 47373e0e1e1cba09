/**
 * `search-r3 demo --web`: the demo's index of the shipped SciFact, served with the playground and SciFact
 * test's judgments by the same process and port as the API, until SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { post, request } from '../helpers/http.js';
import { repoRoot } from '../helpers/repo.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';

test('demo --web serves the playground on the demo index, with ✓ grades from SciFact test', async () => {
  const { dir, cleanup } = tempDir('demo-web');
  const model = await tinyModelDir(dir);
  const args = ['demo', '--web', '--model', model, '--index', path.join(dir, 'idx'), '--max-documents', '30'];
  const cli = spawn(process.execPath, [path.join(repoRoot, 'dist/src/cli/main.js'), ...args, '--port', '0'], {
    env: { ...process.env, SEARCH_R3_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      cli.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /search playground: (http:\/\/\S+?)\/ /.exec(out);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`demo --web exited with ${code}: ${out}`)));
    });
    const page = await request(url, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.raw.toString(), /Search playground/);
    const claim = JSON.parse(
      readFileSync(path.join(repoRoot, 'demo/scifact/queries.jsonl'), 'utf8')
        .split('\n')
        .find((l) => l.includes('"_id": "36"'))!,
    ) as { text: string };
    const r = await post(url, '/v1/search', { query: claim.text, k: 10, hybrid: true });
    assert.equal(r.status, 200);
    assert.equal((r.body.judgments as { query_id: string }).query_id, '36');
    const hits = r.body.data as { grade: number | null }[];
    assert.equal(hits.length, 10);
    assert.ok(
      hits.some((h) => h.grade === 1),
      "BM25 brings claim 36's relevant abstract into the top 10",
    );
  } finally {
    cli.kill('SIGTERM');
    assert.equal(await exited, 0);
    cleanup();
  }
});
