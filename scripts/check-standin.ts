/**
 * Runs, on a stand-in of the released model (scripts/standin.ts) or on the real one, what a user runs:
 * export gguf (f16, q8_0), demo --model, index and search with both engines (reasoning off and on),
 * serve (embeddings, a reasoning query, search, then SIGTERM) and train sft with LoRA; then the same
 * LoRA run on a float32 copy of the folder, the memory it took before weights could stay in 16 bits.
 * Prints each command's wall time and peak RSS, and fails on the first command that fails.
 *
 * usage: node dist/scripts/check-standin.js --model <folder> [--work <dir>]
 * The corpus is small (20 SciFact abstracts from demo/scifact): minutes on 2 cores, not hours.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { documentText, readBeirCorpus } from '../src/eval/beir.js';
import { loadModelFolder, saveModelFolder } from '../src/model/model-folder.js';
import { repoRoot } from '../test/helpers/repo.js';

const CLI = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

interface Run {
  label: string;
  seconds: number;
  peakRss: number;
  stdout: string;
}

/** Peak RSS (VmHWM) of a running process, in bytes; 0 once it is gone. */
function highWater(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs the CLI; `during` (given the process and its stdout so far) may act while it runs, e.g. on a server. */
type During = (p: ChildProcess, out: () => string) => Promise<void>;

function cli(label: string, args: string[], during?: During): Promise<Run> {
  const t0 = performance.now();
  const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '',
    stderr = '',
    peak = 0;
  p.stdout!.on('data', (b: Buffer) => {
    stdout += b;
  });
  p.stderr!.on('data', (b: Buffer) => {
    stderr += b;
  });
  const poll = setInterval(() => {
    peak = Math.max(peak, highWater(p.pid!));
  }, 100);
  const acting = during?.(p, () => stdout).catch((e: Error) => {
    p.kill('SIGKILL');
    throw e;
  });
  return new Promise((resolve, reject) => {
    p.on('exit', (code, signal) => {
      clearInterval(poll);
      const run = { label, seconds: (performance.now() - t0) / 1000, peakRss: peak, stdout };
      const done = (): void => {
        if (code === 0) resolve(run);
        else reject(new Error(`${label}: exit ${code ?? signal}\n${stderr.slice(-2000)}`));
      };
      if (acting) acting.then(done, reject);
      else done();
    });
  });
}

async function until<T>(what: string, f: () => T | undefined, ms = 600_000): Promise<T> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 200))) {
    const v = f();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
  const headers = { 'content-type': 'application/json' };
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, unknown>;
}

/** serve: waits for it to listen, sends an embedding, a reasoning query and a search, then stops it. */
async function exercise(p: ChildProcess, out: () => string): Promise<void> {
  const url = await until('the server to listen', () => /at (http:\/\/\S+)/.exec(out())?.[1]);
  const model = 'search-r3';
  await postJson(`${url}/v1/embeddings`, { model, input: ['Vitamin D and bone density in older adults.'] });
  const q = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 16 };
  await postJson(`${url}/v1/embeddings`, { model, input: 'does vitamin D prevent fractures?', search_r3: q });
  await postJson(`${url}/v1/search`, { query: 'vitamin D fractures', k: 3 });
  p.kill('SIGTERM');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { model: { type: 'string' }, work: { type: 'string' } } });
  if (!values.model || !existsSync(path.join(values.model, 'config.json'))) {
    throw new Error('give --model <folder> holding a model');
  }
  const model = path.resolve(values.model);
  const work = values.work ?? (await fsp.mkdtemp(path.join(tmpdir(), 'sr3-standin-check-')));
  await fsp.mkdir(work, { recursive: true });
  const corpus = (await readBeirCorpus(path.join(repoRoot, 'demo', 'scifact', 'corpus.jsonl.gz'))).slice(0, 20);
  const docs = path.join(work, 'docs.jsonl');
  const lines = corpus.map((d) => JSON.stringify({ id: d.id, title: d.title, text: d.text }));
  await fsp.writeFile(docs, lines.join('\n') + '\n');
  const pairs = path.join(work, 'pairs.jsonl');
  const examples = corpus.slice(0, 8).map((d, i) => ({
    query: d.title,
    pos: [d.text.slice(0, 400)],
    neg: [documentText(corpus[i + 8]).slice(0, 400)],
  }));
  await fsp.writeFile(pairs, examples.map((e) => JSON.stringify(e)).join('\n') + '\n');
  const sft = async (folder: string, out: string): Promise<string[]> => {
    const cfg = {
      model: folder,
      output: out,
      steps: 2,
      maxLength: 128,
      data: [{ type: 'jsonl', path: pairs }],
      // GradCache chunks of two sequences: activations stay small, so the base's precision decides the peak
      batch: { queries: 2, hardNegatives: 1, subBatch: 2 },
      lora: { rank: 8, alpha: 16 },
      checkpoint: { every: 100 },
    };
    const file = path.join(work, `${path.basename(out)}.json`);
    await fsp.writeFile(file, JSON.stringify(cfg));
    return ['train', 'sft', '--config', file, '--quiet'];
  };

  const runs: Run[] = [];
  const step = async (r: Promise<Run>): Promise<void> => {
    const run = await r;
    runs.push(run);
    console.error(`${run.label}: ${run.seconds.toFixed(1)} s, peak RSS ${(run.peakRss / 1e9).toFixed(2)} GB`);
  };
  const f16 = path.join(model, 'model-f16.gguf');
  const q8 = path.join(work, 'model-q8_0.gguf'),
    idx = path.join(work, 'idx'),
    idxLlama = path.join(work, 'idx-llama');
  const llama = ['--engine', 'llama.cpp', '--gguf', f16];
  const exportAs = (out: string, type: string): string[] => [
    'export',
    'gguf',
    '--model',
    model,
    '--out',
    out,
    '--type',
    type,
  ];
  if (!existsSync(f16)) await step(cli('export gguf --type f16', exportAs(f16, 'f16')));
  await step(cli('export gguf --type q8_0', exportAs(q8, 'q8_0')));
  await step(
    cli('demo --model', [
      'demo',
      '--model',
      model,
      '--index',
      path.join(work, 'demo-index'),
      '--max-documents',
      '5',
      '--max-queries',
      '3',
      '--max-reasoning-tokens',
      '16',
      '--no-table',
      '--quiet',
    ]),
  );
  await step(cli('index', ['index', '--model', model, '--input', docs, '--out', idx]));
  await step(
    cli('index --engine llama.cpp', ['index', '--model', model, '--input', docs, '--out', idxLlama, ...llama]),
  );
  for (const reasoning of ['off', 'on']) {
    const query = ['--reasoning', reasoning, '--max-reasoning', '16', 'vitamin D fractures'];
    await step(cli(`search --reasoning ${reasoning}`, ['search', '--index', idx, ...query]));
    const label = `search --reasoning ${reasoning} --engine llama.cpp`;
    await step(cli(label, ['search', '--index', idxLlama, ...llama, ...query]));
  }
  await step(cli('serve', ['serve', '--index', idx, '--port', '0'], exercise));
  await step(cli('serve --engine llama.cpp', ['serve', '--index', idxLlama, '--port', '0', ...llama], exercise));
  await step(cli('train sft --lora (bf16 base)', await sft(model, path.join(work, 'sft-half'))));
  // the same run on a float32 copy: the memory LoRA training took before (inference: npm run bench:gen)
  const f32 = path.join(work, 'model-f32');
  if (!existsSync(path.join(f32, 'config.json'))) {
    await saveModelFolder(f32, await loadModelFolder(model), { dtype: 'F32' });
  }
  await step(cli('train sft --lora (f32 base, as before)', await sft(f32, path.join(work, 'sft-f32'))));

  console.log('| command | wall time | peak RSS |\n| --- | ---: | ---: |');
  for (const r of runs) {
    console.log(`| \`${r.label}\` | ${r.seconds.toFixed(1)} s | ${(r.peakRss / 1e9).toFixed(2)} GB |`);
  }
  console.log(`(work folder: ${work})`);
}

main().catch((e: Error) => {
  console.error(`check-standin: ${e.message}`);
  process.exitCode = 1;
});
