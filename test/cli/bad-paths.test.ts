/**
 * Paths a command writes to or reads its data from, checked before its work: a missing folder, a folder where a
 * file goes (or the reverse), an option value that cannot work, an input without text, and LoRA targets that
 * are no layer are one line naming the option or file (exit code 2), not a file-system error with a stack
 * trace after minutes of computing, and leave nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { type CliResult, runCli } from '../helpers/cli.js';
import { inPool } from '../helpers/pool.js';
import { repoRoot, sharedData } from '../helpers/repo.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';
import { toySftRun } from '../helpers/train-fixtures.js';
import { readOnlyMount, unwritablePlaces } from '../helpers/unwritable.js';

const env = { SEARCH_R3_THREADS: '1' };

const main = path.join(repoRoot, 'dist/src/cli/main.js');

/** The CLI without blocking this process; `options` of execFile (uid, gid, timeout) are added. */
function cli(args: string[], options: { uid?: number; gid?: number; timeout?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main, ...args],
      { env: { ...process.env, ...env }, ...options },
      (err, stdout, stderr) =>
        resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

/**
 * Each command line refused in one line matching its pattern; independent of each other (each refused before it
 * writes), two at a time: CI has two cores.
 */
async function refused(
  cases: [args: string[], re: RegExp][],
  run: (args: string[]) => Promise<CliResult> = (a) => cli(a),
): Promise<void> {
  const runs = await inPool(cases, ([args]) => run(args));
  cases.forEach(([args, re], i) => {
    const r = runs[i];
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.includes('native backend'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], re);
  });
}

test('output files and folders: a missing folder, a folder for a file, a file for a folder', async () => {
  const { dir, cleanup } = tempDir('bad-paths');
  try {
    const model = await tinyModelDir(dir);
    const missing = path.join(dir, 'nope', 'out.jsonl');
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const gguf = path.join(dir, 'x.gguf');
    // a folder where the weights file should be: one sentence naming it, from export and from every loader
    const odd = path.join(dir, 'odd-model');
    mkdirSync(odd);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
      writeFileSync(path.join(odd, f), readFileSync(path.join(model, f)));
    mkdirSync(path.join(odd, 'model.safetensors'));
    const scifact = path.join(sharedData, 'scifact');
    const docs = path.join(dir, 'docs.jsonl');
    writeFileSync(docs, '{"title": "alpha", "text": "beta gamma delta"}\n');
    const empty = path.join(dir, 'empty.jsonl');
    writeFileSync(empty, '');
    const tok = path.join(dir, 'tok');
    await refused([
      // a missing folder is made when the output is written, but not below a file, and not by a refused run
      [['mine', '--config', 'c.json', '--out', path.join(file, 'out.jsonl')], /--out .*: .*a-file is a file/],
      [['export', 'gguf', '--model', model, '--out', path.join(file, 'x.gguf')], /--out .*: .*a-file is a file/],
      [['export', 'gguf', '--model', file, '--out', missing], /--model .*a-file is a file; name the model folder/],
      [['search', '--index', file, 'protein'], /a-file is a file, not an index folder; give a new folder or an/],
      [['mine', '--config', 'c.json', '--out', dir], /--out .* is a folder; name the file to write/],
      [['export', 'gguf', '--model', model, '--out', dir], /--out .* is a folder; name the file to write/],
      [['export', 'gguf', '--model', file, '--out', gguf], /--model .*a-file is a file; name the model folder/],
      [['export', 'gguf', '--model', odd, '--out', gguf], /odd-model\/model\.safetensors.* is not a file/],
      [
        ['eval', '--dataset', scifact, '--retriever', odd, '--max-queries', '2'],
        /odd-model\/model\.safetensors.* is not a file/,
      ],
      [['eval', '--dataset', scifact, '--retriever', 'bm25', '--run', dir], /--run .* is a folder/],
      [
        ['eval', '--dataset', scifact, '--retriever', 'bm25', '--run', path.join(file, 'sub', 'r.trec')],
        /^search-r3: --run .*a-file\/sub\/r\.trec: .*a-file is a file, not a folder\.$/,
      ],
      [['eval', '--dataset', scifact, '--retriever', 'bm25', '--language', 'xx'], /--language xx is not/],
      [['eval', '--dataset', scifact, '--retriever', 'bm25', '--cutoffs', '5,abc'], /--cutoffs/],
      // past 2^53 a cutoff is no exact integer (1e20 was taken), as -k refuses it
      [['eval', '--dataset', scifact, '--retriever', 'bm25', '--cutoffs', '10,1e20'], /--cutoffs must be positive/],
      [['tokenizer', 'train', '--input', docs, '--vocab-size', '300', '--out', file], /--out .* is a file/],
      [
        ['tokenizer', 'train', '--input', docs, '--vocab-size', '300', '--out', model],
        /--out .* already holds config\.json, model\.safetensors, tokenizer_config\.json: .*name a new folder/,
      ],
      [['tokenizer', 'train', '--input', empty, '--vocab-size', '300', '--out', tok, '--quiet'], /no text to learn/],
    ]);
    assert.equal(existsSync(path.dirname(missing)), false, 'a refused export makes no folder');
    assert.equal(existsSync(tok), false);
  } finally {
    cleanup();
  }
});

test('corpus pairs and corpus build: an --out that cannot be written is refused before the work', async () => {
  const { dir, cleanup } = tempDir('bad-paths-corpus');
  try {
    const file = path.join(dir, 'afile');
    writeFileSync(file, 'x');
    const folder = path.join(dir, 'dd.jsonl');
    mkdirSync(folder);
    mkdirSync(path.join(dir, 'p.manifest.json'));
    await refused([
      [['corpus', 'pairs', '--out', folder], /^search-r3: --out .*dd\.jsonl is a folder; name the file to write\.$/],
      ...[path.join(file, 'x.jsonl'), path.join(file, 'sub', 'x.jsonl')].map((out): [string[], RegExp] => [
        ['corpus', 'pairs', '--out', out],
        /^search-r3: --out .*afile\/.*x\.jsonl: .*afile is a file, not a folder\.$/,
      ]),
      [
        ['corpus', 'pairs', '--out', path.join(dir, 'p.jsonl')],
        /^search-r3: --out .*p\.jsonl: .*p\.manifest\.json, where its manifest goes, is a folder; move it first\.$/,
      ],
      [
        ['corpus', 'build', '--data', sharedData, '--out', path.join(file, 'corp')],
        /^search-r3: --out .*afile\/corp: .*afile is a file, not a folder\.$/,
      ],
    ]);
    assert.deepEqual(readdirSync(dir).sort(), ['afile', 'dd.jsonl', 'p.manifest.json'], 'nothing written');
    assert.deepEqual(readdirSync(folder), []);
  } finally {
    cleanup();
  }
});

test('train sft: an output that is or lies in a file, data of the wrong kind, LoRA targets no layer', async () => {
  const { dir, cleanup } = tempDir('bad-sft');
  try {
    const model = await tinyModelDir(dir);
    const pairs = path.join(dir, 'pairs.jsonl');
    writeFileSync(pairs, '{"query": "q", "pos": ["a document"]}\n'.repeat(4));
    const folder = path.join(dir, 'a-folder');
    mkdirSync(folder);
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const run = (name: string, cfg: object): string[] => {
      const p = path.join(dir, `${name}.json`);
      writeFileSync(p, JSON.stringify({ model, output: path.join(dir, name), steps: 1, ...cfg }));
      return ['train', 'sft', '--config', p, '--quiet'];
    };
    const jsonl = [{ type: 'jsonl', path: pairs }];
    // mine over data with no usable query keeps an earlier result instead of writing an empty file over it
    const blank = path.join(dir, 'blank.jsonl');
    writeFileSync(blank, '{"query": "q", "pos": ["   "]}\n');
    const mined = path.join(dir, 'mined.jsonl');
    writeFileSync(mined, '{"query": "q", "pos": ["earlier"], "neg": ["kept"]}\n');
    const cfg = run('mine', { data: [{ type: 'jsonl', path: blank }] })[3];
    await refused([
      [run('out-file', { data: jsonl, output: file }), /the output .*a-file is a file; name a folder/],
      [
        run('out-under-file', { data: jsonl, output: path.join(file, 'run') }),
        /^search-r3: the output \S+a-file\/run lies under \S+a-file, a file; name a folder for the run$/,
      ],
      [run('jsonl-folder', { data: [{ type: 'jsonl', path: folder }] }), /a-folder: is a folder; a "jsonl"/],
      // each kind of one-file source names itself and the file it wants
      [
        run('pairs-folder', { data: [{ type: 'pairs', path: folder }] }),
        /^search-r3: \S+a-folder: is a folder; a "pairs" source names a TSV file of query<TAB>positive lines$/,
      ],
      [
        run('fever-folder', { data: [{ type: 'climate-fever', path: folder }] }),
        /^search-r3: \S+a-folder: is a folder; a "climate-fever" source names a Climate-FEVER \.jsonl file/,
      ],
      [run('beir-file', { data: [{ type: 'beir', path: pairs }] }), /pairs.jsonl: is a file; a "beir" source/],
      [
        run('lora', { data: jsonl, lora: { rank: 4, targets: ['nope'] } }),
        /"lora.targets": 'nope' is not a Qwen2 linear layer; choose from q_proj/,
      ],
      [run('dropout', { data: jsonl, lora: { rank: 4, dropout: 1 } }), /"lora\.dropout" must be in \[0, 1\)/],
      [run('no-targets', { data: jsonl, lora: { targets: [] } }), /"lora\.targets" names no layer/],
      [run('tiny-len', { data: jsonl, maxLength: 8 }), /prompt template alone needs \d+ tokens/],
      [
        run('accumulate', { data: jsonl, steps: 0, epochs: 1, batch: { queries: 2, accumulation: 50 } }),
        /"batch\.accumulation" 50 is more than the \d+ batches of "epochs" 1 \(\d+ a pass over the data\)/,
      ],
      [['mine', '--config', cfg, '--out', mined], /no query to mine in .*blank\.jsonl.*mined\.jsonl is left as it was/],
    ]);
    for (const name of [
      'jsonl-folder',
      'pairs-folder',
      'fever-folder',
      'beir-file',
      'lora',
      'dropout',
      'no-targets',
      'tiny-len',
      'accumulate',
    ])
      assert.equal(existsSync(path.join(dir, name)), false, name);
    assert.match(readFileSync(mined, 'utf8'), /"kept"/);
  } finally {
    cleanup();
  }
});

test('mine and tokenizer train refuse to write over a file they read, however it is named', async () => {
  const { dir, cleanup } = tempDir('bad-paths-inputs');
  try {
    const pairs = path.join(dir, 'pairs.jsonl');
    writeFileSync(pairs, '{"query": "q", "pos": ["a document"], "neg": []}\n');
    const config = path.join(dir, 'sft.json');
    writeFileSync(
      config,
      JSON.stringify({ model: 'm', output: 'run', data: [{ type: 'jsonl', path: 'pairs.jsonl' }] }),
    );
    const beir = path.join(dir, 'beir');
    cpSync(path.join(repoRoot, 'test/eval/fixtures/tiny-beir'), beir, { recursive: true });
    const beirConfig = path.join(dir, 'beir.json');
    writeFileSync(beirConfig, JSON.stringify({ model: 'm', output: 'run', data: [{ type: 'beir', path: 'beir' }] }));
    symlinkSync(pairs, path.join(dir, 'link.jsonl'));
    const kept = (file: string): Buffer => readFileSync(file);
    const before = [pairs, config, path.join(beir, 'qrels/test.tsv')].map(kept);
    const tok = path.join(dir, 'tok');
    mkdirSync(tok);
    const text = path.join(tok, 'tokenizer.json');
    writeFileSync(text, 'plain text that happens to carry this name\n');
    await refused([
      [
        ['mine', '--config', config, '--out', config],
        /^search-r3: --out .*sft\.json is the same file as --config .*sft\.json; writing it would destroy that input/,
      ],
      [
        ['mine', '--config', config, '--out', `${dir}/./pairs.jsonl`],
        /^search-r3: --out .*pairs\.jsonl is the same file as --config's jsonl source .*pairs\.jsonl; writing it/,
      ],
      [
        ['mine', '--config', config, '--out', path.join(dir, 'link.jsonl')],
        /^search-r3: --out .*link\.jsonl is the same file as --config's jsonl source .*pairs\.jsonl; writing it/,
      ],
      [
        ['mine', '--config', beirConfig, '--out', path.join(beir, 'qrels/test.tsv')],
        /^search-r3: --out .*test\.tsv is the same file as --config's beir source .*test\.tsv; writing it/,
      ],
      [
        ['tokenizer', 'train', '--input', text, '--vocab-size', '300', '--out', tok, '--quiet'],
        /^search-r3: --out .*tok\/tokenizer\.json is the same file as --input .*tok\/tokenizer\.json; writing it/,
      ],
    ]);
    assert.deepEqual([pairs, config, path.join(beir, 'qrels/test.tsv')].map(kept), before);
    assert.equal(readFileSync(text, 'utf8'), 'plain text that happens to carry this name\n');
  } finally {
    cleanup();
  }
});

test('an output in a folder this process may not write in is refused before the work, naming the option', async (t) => {
  const { dir, cleanup } = tempDir('bad-paths-mode');
  try {
    // root writes through any folder mode: then the commands run as nobody, whom the mode binds
    const asRoot = process.getuid?.() === 0;
    const run = (args: string[]): Promise<CliResult> => cli(args, asRoot ? { uid: 65534, gid: 65534 } : {});
    chmodSync(dir, 0o755);
    if (asRoot && (await run(['--help'])).status !== 0) {
      t.skip('running as root, and user 65534 (nobody), whom a folder mode would stop, cannot run the CLI here');
      return;
    }
    const ro = path.join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const tiny = path.join(repoRoot, 'test/eval/fixtures/tiny-beir');
    writeFileSync(path.join(dir, 'pairs.jsonl'), '{"query": "q", "pos": ["a document"], "neg": []}\n');
    const config = path.join(dir, 'sft.json');
    writeFileSync(
      config,
      JSON.stringify({ model: 'm', output: 'run', data: [{ type: 'jsonl', path: 'pairs.jsonl' }] }),
    );
    const cause = 'permission denied \\(EACCES\\); fix the permission, or name another';
    await refused(
      [
        [
          ['eval', '--dataset', tiny, '--retriever', 'bm25', '--run', path.join(ro, 'r.trec')],
          new RegExp(`^search-r3: --run .*ro/r\\.trec: cannot write in .*ro: ${cause} file\\.$`),
        ],
        [
          ['mine', '--config', config, '--out', path.join(ro, 'mined.jsonl')],
          new RegExp(`^search-r3: --out .*ro/mined\\.jsonl: cannot write in .*ro: ${cause} file\\.$`),
        ],
        [
          ['tokenizer', 'train', '--input', path.join(dir, 'pairs.jsonl'), '--vocab-size', '300', '--out', ro],
          new RegExp(`^search-r3: --out .*ro: cannot write in .*ro: ${cause} folder\\.$`),
        ],
      ],
      run,
    );
    assert.deepEqual(readdirSync(ro), [], 'nothing written, no probe left');
  } finally {
    cleanup();
  }
});

const places = unwritablePlaces();

test(
  'an output folder that cannot be made (/proc, /sys, a read-only mount) is one sentence naming it, not a hang',
  { skip: places === null && 'no /proc and /sys here' },
  async (t) => {
    const { dir, cleanup } = tempDir('unmakeable');
    const ro = path.join(dir, 'ro');
    mkdirSync(ro);
    const mount = readOnlyMount(ro);
    try {
      const model = await tinyModelDir(dir);
      const docs = path.join(dir, 'docs.jsonl');
      writeFileSync(docs, '{"_id": "a", "title": "alpha", "text": "beta gamma delta"}\n');
      const config = await toySftRun(path.join(dir, 'sft'), { lora: null });
      let configs = 0;
      const sft = (output: string): string[] => {
        const p = path.join(dir, 'sft', `out-${configs++}.json`);
        writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), output }));
        return ['train', 'sft', '--config', p, '--quiet'];
      };
      // where a command once waited forever (Node's recursive mkdir under /proc), it now stops within a minute
      const bounded = (args: string[]): Promise<CliResult> => cli(args, { timeout: 60_000 });
      const { proc, sys } = places!;
      const procCause =
        'the folder takes no new files, as a virtual file system \\(/proc, /sys\\) does \\(ENOENT\\); write to an ' +
        'ordinary file system';
      const erofs = 'the file system is read-only \\(EROFS\\); write to another file system';
      await refused(
        [
          [
            ['tokenizer', 'train', '--input', docs, '--vocab-size', '300', '--out', path.join(proc, 'tok')],
            new RegExp(
              `^search-r3: --out ${proc}/tok: cannot write in /proc: ${procCause}, or name another folder\\.$`,
            ),
          ],
          [
            ['index', '--model', model, '--input', docs, '--out', path.join(proc, 'idx')],
            new RegExp(
              `^search-r3: cannot create the index folder ${proc}/idx \\(at ${proc}\\): ${procCause}, or give`,
            ),
          ],
          [
            sft(path.join(proc, 'run')),
            new RegExp(`^search-r3: cannot create the folder ${proc}: ${procCause}, then run the same command again`),
          ],
          [
            ['index', '--model', model, '--input', docs, '--out', path.join(sys, 'idx')],
            new RegExp(
              `^search-r3: cannot create the index folder ${sys}/idx \\(at ${sys}\\): .*\\((EPERM|EACCES)\\); fix`,
            ),
          ],
          ...(mount === null
            ? []
            : ([
                [
                  ['index', '--model', model, '--input', docs, '--out', path.join(ro, 'idx')],
                  new RegExp(
                    `^search-r3: cannot create the index folder \\S+/ro/idx: ${erofs}, or give another folder\\.$`,
                  ),
                ],
                [
                  sft(path.join(ro, 'run')),
                  new RegExp(
                    `^search-r3: cannot create the folder \\S+/ro/run: ${erofs}, then run the same command again`,
                  ),
                ],
              ] as [string[], RegExp][])),
        ],
        bounded,
      );
      if (mount === null) return t.skip('mounting a read-only tmpfs needs root with the right to mount');
    } finally {
      mount?.unmount();
      cleanup();
    }
  },
);

test('a training run that cannot write its checkpoint (a file size limit) says how to go on: --resume', async () => {
  const { dir, cleanup } = tempDir('train-efbig');
  try {
    const config = await toySftRun(dir, { lora: null });
    // ulimit -f 200: the model's files fit in 200 KiB, the checkpoint's optimizer state does not
    const train = (extra: string): CliResult => {
      const main = path.join(repoRoot, 'dist/src/cli/main.js');
      const cmd = `ulimit -f 200; exec "${process.execPath}" "${main}" train sft --config "${config}" --quiet${extra}`;
      const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8', env: { ...process.env, ...env } });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const r = train('');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^search-r3: write \S+checkpoints\/step-00000002\/optimizer\.safetensors: the file /m);
    assert.match(
      r.stderr,
      /\(EFBIG\); raise ulimit -f or write to another file system, then run the same command again with --resume/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    cleanup();
  }
});

test('search on an index whose model folder moved names index.json and --model; --model then works', async () => {
  const { dir, cleanup } = tempDir('moved-model');
  try {
    const model = await tinyModelDir(dir);
    const docs = path.join(dir, 'docs.jsonl');
    writeFileSync(docs, '{"_id": "a", "title": "alpha", "text": "beta gamma"}\n');
    const idx = path.join(dir, 'idx');
    assert.equal(runCli(['index', '--model', model, '--input', docs, '--out', idx], env).status, 0);
    const moved = path.join(dir, 'moved');
    renameSync(model, moved);
    // two reads, side by side
    const [, r] = await Promise.all([
      refused([
        [
          ['search', '--index', idx, 'beta'],
          /no longer at .* \(recorded in .*idx\/index\.json\); pass --model <dir> where it is now/,
        ],
      ]),
      cli(['search', '--index', idx, '--model', moved, '--json', 'beta']),
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { data: { id: string }[] }).data[0]?.id, 'a');
  } finally {
    cleanup();
  }
});
