/** `search-r3 serve` as a user runs it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { runCli } from '../helpers/cli.js';
import { post, request } from '../helpers/http.js';
import { repoRoot } from '../helpers/repo.js';
import { until } from '../helpers/until.js';
import { CliProcess } from '../helpers/cli-process.js';

test('serve on a port in use says so in one sentence and exits with 2', async () => {
  const { dir, cleanup } = tempDir('busy');
  const modelDir = await tinyModelDir(dir);
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as net.AddressInfo).port;
  try {
    const r = runCli(['serve', '--model', modelDir, '--port', String(port)]);
    assert.equal(r.status, 2, r.stderr);
    const want = `search-r3: --port ${port} is in use; pick another with --port or stop the other server.`;
    assert.equal(r.stderr.trim(), want);
  } finally {
    holder.close();
    cleanup();
  }
});

test('serve refuses --max-queue below --max-inputs (a request of more inputs could never be queued)', () => {
  const { dir, cleanup } = tempDir('queue');
  try {
    const r = runCli(['serve', '--model', dir, '--max-inputs', '8', '--max-queue', '4']);
    assert.equal(r.status, 2, r.stderr);
    const want =
      'search-r3: --max-queue 4 is below --max-inputs 8, so a request with more inputs than the queue holds ' +
      'could never be taken; raise --max-queue or lower --max-inputs.';
    assert.equal(r.stderr.trim(), want);
    const byDefault = runCli(['serve', '--model', dir, '--max-queue', '100']);
    assert.equal(byDefault.status, 2, byDefault.stderr);
    assert.match(byDefault.stderr, /^search-r3: --max-queue 100 is below --max-inputs 256 \(the default\), /);
  } finally {
    cleanup();
  }
});

test(
  'SIGTERM does not wait for a client that stalled mid-body, and still answers a complete request in flight',
  { timeout: 60_000 },
  async () => {
    const { dir, cleanup } = tempDir('stalled-body');
    const modelDir = await tinyModelDir(dir);
    // a long batching wait keeps the complete request in flight past the grace a stalled body gets
    const args = ['serve', '--model', modelDir, '--port', '0', '--batch-wait-ms', '2500'];
    const cli = spawn(process.execPath, [path.join(repoRoot, 'dist/src/cli/main.js'), ...args], {
      env: { ...process.env, SEARCH_R3_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
    const stalled: net.Socket[] = [];
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        cli.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /serving embeddings at (http:\/\/\S+) /.exec(out);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`serve exited with ${code}: ${out}`)));
      });
      const { hostname, port } = new URL(url);
      const stalledClosed = new Promise<void>((resolve) => {
        const s = net.connect(Number(port), hostname, () =>
          s.write(
            'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
              'Content-Length: 100\r\n\r\n{"input":',
          ),
        );
        s.on('error', () => {});
        s.on('close', () => resolve());
        stalled.push(s);
      });
      const complete = post(url, '/v1/embeddings', { model: 'search-r3', input: 'in flight' });
      const queued = async (): Promise<boolean> =>
        /^search_r3_queue_inputs 1$/m.test((await request(url, 'GET', '/metrics')).raw.toString());
      await until(queued, 10_000, () => 'the complete request never reached the queue', 20);
      const t0 = performance.now();
      cli.kill('SIGTERM');
      const answer = await complete;
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal((answer.body.data as unknown[]).length, 1);
      const late = new Promise<string>((r) => setTimeout(() => r('still running 10 s after SIGTERM'), 10_000).unref());
      assert.equal(await Promise.race([exited, late]), 0);
      const seconds = (performance.now() - t0) / 1000;
      assert.ok(seconds < 8, `exited ${seconds.toFixed(1)} s after SIGTERM`);
      await stalledClosed;
    } finally {
      for (const s of stalled) s.destroy();
      cli.kill('SIGKILL');
      cleanup();
    }
  },
);

test('serve, dashboard and demo --web refuse an empty --host; serve and dashboard an empty or padded key', () => {
  const { dir, cleanup } = tempDir('empty-opts');
  writeFileSync(`${dir}/qrels.tsv`, 'q1\td1\t1\n');
  const host = '--host is empty; give the address to listen on (e.g. 127.0.0.1, or 0.0.0.0 for all).';
  const empty =
    '--api-key is empty, so no request could be authorized; give a key, or leave it out to serve without one.';
  const padded =
    '--api-key begins or ends with whitespace, which no Authorization header can carry; give the key without it.';
  const cases: [string[], string, Record<string, string>?][] = [
    [['serve', '--model', dir, '--host', ''], host],
    [['dashboard', dir, '--host', ''], host],
    [['demo', '--web', '--host', ''], host],
    [['serve', '--model', dir, '--api-key', ''], empty],
    [['dashboard', dir, '--api-key', ''], empty],
    [['serve', '--model', dir, '--api-key', ' key'], padded],
    [['dashboard', dir, '--api-key', 'key\n'], padded],
    [
      ['serve', '--model', dir],
      '$SEARCH_R3_API_KEY is only whitespace, so no request could be authorized; give a key, or unset it to ' +
        'serve without one.',
      { SEARCH_R3_API_KEY: '  ' },
    ],
    // a file where the BEIR folder of judgments belongs
    [
      ['serve', '--model', dir, '--qrels', `${dir}/qrels.tsv`, '--batch-wait-ms', '5'],
      `${dir}/qrels.tsv: is a file; name the BEIR folder that holds corpus.jsonl, queries.jsonl and qrels/`,
    ],
    // a folder that is not there is named as such, not as a split it lacks
    [['serve', '--model', dir, '--qrels', `${dir}/none`], `${dir}/none: dataset folder not found`],
    [
      ['serve', '--model', dir, '--batch-wait-ms', '1e12'],
      "--batch-wait-ms must be an integer in [0, 60000] (got '1e12').",
    ],
    // set but empty (a secret that came out empty) is no key, not "serve without one"
    [
      ['serve', '--model', dir, '--host', '0.0.0.0'],
      '$SEARCH_R3_API_KEY is empty, so no request could be authorized; give a key, or unset it to serve without one.',
      { SEARCH_R3_API_KEY: '' },
    ],
  ];
  try {
    for (const [args, want, env] of cases) {
      // a server that took the option would run until stopped
      const r = runCli(args, env, 20_000);
      assert.equal(r.status, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').at(-1), `search-r3: ${want}`, JSON.stringify(args));
    }
  } finally {
    cleanup();
  }
});

test('serve --help lists every API endpoint the server answers, chat completions included', () => {
  const r = runCli(['serve', '--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const endpoint of [
    'POST /v1/embeddings',
    'POST /v1/search ',
    'POST /v1/search/stream',
    'POST /v1/chat/completions',
    'GET  /v1/models',
    'GET  /health',
    'GET  /metrics',
  ])
    assert.ok(r.stdout.includes(`\n  ${endpoint}`), `${endpoint} is not in serve --help`);
});

test('a server that anyone on the network may use says so: not on a loopback address, without an API key', async () => {
  const { dir, cleanup } = tempDir('open-host');
  const modelDir = await tinyModelDir(dir);
  const runs = path.join(dir, 'run');
  mkdirSync(runs);
  const warning = (what: string): RegExp =>
    new RegExp(
      `^search-r3: warning: ${what} listens on 0\\.0\\.0\\.0 without an API key: anyone who can reach this ` +
        'machine can use it; give --api-key \\(or SEARCH_R3_API_KEY\\) unless the network or a proxy in front ' +
        'of it decides who may\\.$',
      'm',
    );
  const cases: [string[], RegExp | null][] = [
    [['serve', '--model', modelDir, '--host', '0.0.0.0'], warning('the server')],
    [['dashboard', runs, '--host', '0.0.0.0'], warning('the dashboard')],
    [['serve', '--model', modelDir, '--host', '0.0.0.0', '--api-key', 'k'], null],
    [['serve', '--model', modelDir], null],
    [['dashboard', runs, '--host', 'localhost'], null],
  ];
  try {
    for (const [args, want] of cases) {
      const p = new CliProcess([...args, '--port', '0']);
      try {
        await p.waitFor(/(serving embeddings|dashboard of 1 folder) at http/);
      } finally {
        await p.stop();
      }
      // all of both streams: the warning (stderr) may come after the line it precedes (stdout)
      await p.closed;
      if (want) assert.match(p.output, want, args.join(' '));
      else assert.doesNotMatch(p.output, /warning/, args.join(' '));
    }
  } finally {
    cleanup();
  }
});
