/**
 * --device auto|cpu|webgpu as a user meets it: every command that computes lists it in its help; a wrong
 * value, a WebGPU without an adapter (VK_ICD_FILENAMES pointing nowhere makes Dawn find none), --device
 * beside --engine llama.cpp or --remote are one sentence each (what Dawn wrote on the way folded in, not
 * printed); auto on a machine without a GPU says so and computes on the CPU (and says nothing unless
 * asked); serve and worker take the device in their model worker and say it once; SEARCH_R3_BACKEND=webgpu
 * says the GPU it took as its choice, or why there is none and how to do without; Dawn's warnings of every
 * device opening are not printed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { SearchR3Embeddings } from '../../src/client/langchain-embeddings.js';
import { WorkerBackend } from '../../src/serve/model-worker.js';
import { commands as entries } from '../../src/cli/commands.js';
import { CliProcess } from '../helpers/cli-process.js';
import { runCliAsync } from '../helpers/cli.js';
import { inPool } from '../helpers/pool.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { repoRoot } from '../helpers/repo.js';
import { RedisServer } from '../helpers/redis.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from '../search-index/fixtures.js';

const NO_ADAPTER = { VK_ICD_FILENAMES: '/nonexistent.json' };
/** A JavaScript stack frame: what a one-sentence error never shows (Dawn's own C++ warnings may be there). */
const JS_STACK = /^\s+at .*\.js:\d+/m;
const UNAVAILABLE = /^search-r3: --device webgpu: WebGPU is unavailable: [^\n]+\.$/m;

let work: { dir: string; cleanup: () => void };
let model = '';
let input = '';
let index = '';

before(async () => {
  work = tempDir('device');
  model = await tinyModelDir(work.dir);
  input = path.join(work.dir, 'docs.jsonl');
  writeJsonl(input, corpus(8));
  index = path.join(work.dir, 'index');
  const r = await runCliAsync(['index', '--model', model, '--input', input, '--out', index, '--device', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
});

after(() => work.cleanup());

/** Whether Linux shows a GPU device node, so that --device auto would ask Dawn instead of taking the CPU. */
function gpuNode(): boolean {
  const has = (dir: string, re: RegExp): boolean => existsSync(dir) && readdirSync(dir).some((f) => re.test(f));
  return has('/dev/dri', /^renderD\d+$/) || has('/dev', /^nvidia\d+$/);
}

test('the help of every command that computes lists --device', async () => {
  const commands = [
    'train lm',
    'train sft',
    'train rl',
    'mine',
    'eval',
    'fusion',
    'index',
    'search',
    'serve',
    'demo',
    'recipe default',
    'recipe evaluate',
    'rlenv audit',
    'worker',
    'device',
  ];
  // each help read here as main.ts picks it (a process each only loaded its command's modules: 5 s on two cores);
  // a command's and a sub-command's, printed by the CLI, are what is read here
  const helpOf = async (line: string): Promise<string> => {
    const [name, sub] = line.split(' ');
    const command = await entries.find((c) => c.name === name)!.load();
    return (sub !== undefined ? command.helpOf?.(sub) : undefined) ?? command.help;
  };
  for (const c of commands) assert.match(await helpOf(c), /^ {2}--device auto\|cpu\|webgpu/m, c);
  const printed = ['index', 'train lm'];
  const runs = await Promise.all(printed.map((c) => runCliAsync([...c.split(' '), '--help'])));
  for (const [i, r] of runs.entries()) {
    assert.equal(r.status, 0, printed[i]);
    assert.equal(r.stdout, `${await helpOf(printed[i])}\n`, printed[i]);
  }
});

test('a wrong --device value: one sentence, exit code 2, on every command that takes it', async () => {
  const none = path.join(work.dir, 'none');
  const lines = [
    ['search', '--index', index, 'q'],
    ['index', '--model', model, '--input', input, '--out', path.join(work.dir, 'x')],
    ['serve', '--model', model, '--port', '0'],
    ['train', 'lm', '--config', none],
    ['mine', '--config', none, '--out', none],
    ['eval', '--dataset', none, '--retriever', 'bm25'],
    ['fusion', '--model', model, '--dev', none],
    ['demo', '--model', model],
    ['recipe', 'default'],
    ['recipe', 'evaluate', '--stage1', none, '--stage2', none, '--out', none],
    ['rlenv', 'audit', '--config', none],
    ['worker', '--queue', 'redis://127.0.0.1:1', '--model', model],
  ];
  // the JS backend: no note about the native one can come before the sentence
  const runs = await inPool(lines, (l) => runCliAsync([...l, '--device', 'gpu'], { SEARCH_R3_BACKEND: 'js' }));
  runs.forEach((r, i) => {
    assert.equal(r.status, 2, lines[i].join(' '));
    assert.equal(r.stderr, "search-r3: --device must be auto, cpu or webgpu (got 'gpu').\n", lines[i].join(' '));
  });
});

test('--device auto without a GPU says it takes the CPU and why (unasked: nothing); index, search work', async (t) => {
  if (gpuNode()) return t.skip('this machine has a GPU device node: auto asks Dawn');
  const out = path.join(work.dir, 'auto');
  const built = await runCliAsync(['index', '--model', model, '--input', input, '--out', out, '--device', 'auto']);
  assert.equal(built.status, 0, built.stderr);
  const said = /^device: cpu \((native|js) kernels\): this machine has no GPU device [^\n]+$/m;
  assert.match(built.stderr, said);
  const found = await runCliAsync(['search', '--index', out, '--device', 'auto', '--json', '-k', '3', 'cell']);
  assert.equal(found.status, 0, found.stderr);
  assert.match(found.stderr, said);
  assert.equal((JSON.parse(found.stdout) as { data: unknown[] }).data.length, 3);
  // left to its default, a run on the CPU prints what it always did
  const quiet = await runCliAsync(['search', '--index', out, '--json', 'cell']);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /^device:/m);
});

test('a GPU node whose only adapter is software (lavapipe): a default run says it took the CPU and why', async (t) => {
  if (gpuNode()) return t.skip('this machine has a GPU device node already');
  // a render node is faked on a private mount of /dev, so that auto asks Dawn, which finds only lavapipe
  const upper = path.join(work.dir, 'dev-upper');
  const script = [
    `mkdir -p ${upper}/u/dri ${upper}/w && touch ${upper}/u/dri/renderD128`,
    `mount -t overlay overlay -o lowerdir=/dev,upperdir=${upper}/u,workdir=${upper}/w /dev || exit 99`,
    `exec "${process.execPath}" "${path.join(repoRoot, 'dist/src/cli/main.js')}" search --index "${index}" --json cell`,
  ].join('\n');
  const r = spawnSync('unshare', ['-m', 'bash', '-c', script], { encoding: 'utf8' });
  if (r.error || r.status === 99 || /unshare: /.test(r.stderr))
    return t.skip(`no private mount here (needs root and unshare): ${r.error?.message ?? r.stderr.trim()}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^device: cpu \((native|js) kernels\): the only WebGPU adapter, .*runs on the CPU itself$/m);
  assert.doesNotMatch(r.stderr, /artificially reduced/, "Dawn's limit warnings");
  assert.equal((JSON.parse(r.stdout) as { data: unknown[] }).data.length > 0, true);
});

test('--device webgpu without an adapter: one sentence, exit code 2, in this thread or a model worker', async () => {
  const recipeWork = path.join(work.dir, 'recipe-work');
  const lines = [
    ['search', '--index', index, 'q'],
    ['serve', '--model', model, '--port', '0'],
    // the recipe computes only in its steps, and would fail at the first after minutes of corpus and tokenizer
    ['recipe', 'default', '--profile', 'tiny', '--work', recipeWork],
  ];
  const runs = await inPool(lines, (l) => runCliAsync([...l, '--device', 'webgpu'], NO_ADAPTER));
  assert.equal(existsSync(recipeWork), false, 'no recipe step ran');
  runs.forEach((r, i) => {
    assert.equal(r.status, 2, `${lines[i].join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, UNAVAILABLE, lines[i].join(' '));
    assert.doesNotMatch(r.stderr, JS_STACK, lines[i].join(' '));
    // what Dawn wrote while it looked (no Vulkan driver, the C++ line it failed at) is in the sentence, briefly
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /; Dawn said: [^\n]+\.$/m, lines[i].join(' '));
    assert.equal(r.stdout, '');
  });
});

test('a GPU taken prints its device line and nothing of Dawn', { skip: webgpuSkip() }, async () => {
  const r = await runCliAsync(['search', '--index', index, '--device', 'webgpu', '--json', 'cell']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^device: webgpu \([^\n]+\)\n$/);
});

test('SEARCH_R3_BACKEND=webgpu: the GPU taken is said as its choice; none is one sentence naming it', async (t) => {
  const env = { SEARCH_R3_BACKEND: 'webgpu' };
  const missing = [
    ['search', '--index', index, 'q'],
    ['serve', '--model', model, '--port', '0'],
  ];
  const runs = await Promise.all(missing.map((l) => runCliAsync(l, { ...env, ...NO_ADAPTER })));
  runs.forEach((r, i) => {
    assert.equal(r.status, 2, `${missing[i].join(' ')}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^search-r3: SEARCH_R3_BACKEND=webgpu: WebGPU is unavailable: [^\n]+; use --device cpu or unset [A-Z0-9_]+\.\n$/,
      missing[i].join(' '),
    );
  });
  const skip = webgpuSkip();
  if (skip) return t.skip(skip);
  const r = await runCliAsync(['search', '--index', index, '--json', 'cell'], env);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^device: webgpu \([^\n]+\), by SEARCH_R3_BACKEND$/m);
});

test('--device or --model beside --engine llama.cpp or --remote: refused in one sentence', async () => {
  const llama = "search-r3: --device chooses where search-r3's engine runs; llama.cpp chooses with --gpu.\n";
  const remote = 'search-r3: --device chooses where a local model runs; drop it with --remote.\n';
  // a --model given with --remote was ignored by search (a damaged folder did not even matter); index refused it
  const both = 'search-r3: give one of --model <dir> or --remote <urls>, not both.\n';
  const cases: [string[], string][] = [
    [['search', '--index', index, '--engine', 'llama.cpp', '--device', 'webgpu', 'q'], llama],
    [['index', '--model', model, '--input', input, '--out', index, '--engine', 'llama.cpp', '--device', 'cpu'], llama],
    [['serve', '--model', model, '--engine', 'llama.cpp', '--device', 'webgpu'], llama],
    [['eval', '--dataset', index, '--retriever', model, '--engine', 'llama.cpp', '--device', 'webgpu'], llama],
    [['search', '--index', index, '--remote', 'http://127.0.0.1:1', '--device', 'cpu', 'q'], remote],
    [['search', '--index', index, '--remote', 'http://127.0.0.1:1', '--model', model, 'q'], both],
    [['index', '--input', input, '--out', index, '--remote', 'http://127.0.0.1:1', '--model', model], both],
  ];
  const runs = await inPool(cases, ([l]) => runCliAsync(l, { SEARCH_R3_BACKEND: 'js' }));
  runs.forEach((r, i) => {
    assert.equal(r.status, 2, cases[i][0].join(' '));
    assert.equal(r.stderr, cases[i][1], cases[i][0].join(' '));
  });
});

test('serve takes the device in its model worker and says it once', async () => {
  const serve = new CliProcess(['serve', '--model', model, '--port', '0', '--device', 'cpu']);
  try {
    await serve.waitFor(/search-r3 serving embeddings at http/);
    assert.equal(serve.output.match(/^device: cpu \((native|js) kernels\)$/gm)?.length, 1, serve.output);
  } finally {
    assert.equal(await serve.stop(), 0);
  }
});

test('WorkerBackend: the device travels in its config and comes back in info.device', async () => {
  const chosen = await WorkerBackend.start(model, { device: 'cpu' });
  const plain = await WorkerBackend.start(model);
  try {
    assert.match(chosen.info.device?.description ?? '', /^cpu \((native|js) kernels\)$/);
    assert.equal(plain.info.device, undefined);
  } finally {
    await chosen.close();
    await plain.close();
  }
  await assert.rejects(
    WorkerBackend.start(model, { device: 'webgpu', engine: { gguf: 'x.gguf', gpu: 'auto', identity: 'gguf' } }),
    /llama\.cpp has its own gpu/,
  );
  assert.throws(
    () => new SearchR3Embeddings({ baseURL: 'http://127.0.0.1:1', device: 'cpu' }),
    /device goes with modelDir/,
  );
});

test('worker: a device it cannot use puts the job back and stops in one sentence; another finishes', async () => {
  const redis = await RedisServer.start();
  const queue = ['--queue', redis.url, '--queue-name', 'device', '--model', model];
  try {
    const out = path.join(work.dir, 'queued');
    const coordinator = new CliProcess(['index', ...queue, '--input', input, '--out', out, '--device', 'cpu']);
    const blind = new CliProcess(['worker', ...queue, '--device', 'webgpu'], NO_ADAPTER);
    assert.equal((await blind.exited).code, 2, blind.output);
    assert.match(blind.output, UNAVAILABLE);
    assert.doesNotMatch(blind.output, JS_STACK);
    const worker = new CliProcess(['worker', ...queue, '--lock-seconds', '2', '--device', 'cpu']);
    assert.equal((await coordinator.exited).code, 0, coordinator.output);
    assert.equal(await worker.stop(), 0);
    assert.equal(worker.output.match(/^device: cpu/gm)?.length, 1, worker.output);
    assert.match(coordinator.output, /8 documents indexed/);
  } finally {
    await redis.stop();
  }
});

test('SEARCH_R3_BACKEND=webgpu with --device cpu starts no GPU device: the flag chooses first', async () => {
  // a GPU device opened with SEARCH_R3_GPU_PROFILE prints its kernel profile (or why it has none) when it closes
  const r = await runCliAsync(['device', '--device', 'cpu'], {
    SEARCH_R3_BACKEND: 'webgpu',
    SEARCH_R3_GPU_PROFILE: '1',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^device: cpu \(native kernels\)$/m);
  assert.equal(r.stderr, '');
});

test('search says that sampling options have no effect without --reasoning on', async () => {
  const r = await runCliAsync([
    'search',
    '--index',
    index,
    '--device',
    'cpu',
    '--temperature',
    '0.5',
    '--seed',
    '3',
    'cell',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const notes = r.stderr.split('\n').filter((l) => l.includes('has no effect'));
  assert.deepEqual(notes, [
    'search-r3: --temperature 0.5 has no effect: it shapes the analysis, and --reasoning is off.',
    'search-r3: --seed 3 has no effect: it shapes the analysis, and --reasoning is off.',
  ]);
});
