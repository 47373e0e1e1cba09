import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { MAX_LINE_BYTES, countLines, readLines, type NumberedLine } from '../../src/eval/line-reader.js';
import { readBeirCorpus } from '../../src/eval/beir.js';
import { until } from '../helpers/until.js';

function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-lines-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

async function linesOf(file: string): Promise<string[]> {
  const out: string[] = [];
  for await (const { text } of readLines(file)) out.push(text);
  return out;
}

test('lines end at \\n, \\r\\n and a lone \\r, also where a chunk of the file ends between \\r and \\n', async () => {
  await withTemp(async (dir) => {
    const f = join(dir, 'a.txt');
    writeFileSync(f, '\ufeffé1\r\n2\r3\n\n€4');
    assert.deepEqual(await linesOf(f), ['é1', '2', '3', '', '€4']);
    // 65,536 bytes is a file stream's chunk: the \r is its last byte, the \n the next chunk's first
    const first = 'x'.repeat(65_535);
    writeFileSync(f, `${first}\r\ny\r\r\nz\n`);
    assert.deepEqual(await linesOf(f), [first, 'y', '', 'z']);
    writeFileSync(join(dir, 'b.txt.gz'), gzipSync(`${first}\r\ny\n`));
    assert.deepEqual(await linesOf(join(dir, 'b.txt.gz')), [first, 'y']);
  });
});

test('countLines counts the lines readLines yields, with \\r\\n split across its 1 MiB reads', async () => {
  await withTemp(async (dir) => {
    const f = join(dir, 'a.txt');
    const first = 'x'.repeat((1 << 20) - 1);
    const texts = ['', 'a', 'a\n', '\n', '\r', '\r\r\n\n\r', 'a\r\nb', '\ufeffé1\r\n2\r3\n\n€4'];
    texts.push(`${first}\r\ny\r\r\nz\n`, `${first}\ry`, `${first}\r`, `${first}\r\n`, `${first}\n\r`);
    for (const text of texts) {
      writeFileSync(f, text);
      assert.equal(countLines(f), (await linesOf(f)).length, JSON.stringify(text.slice(-8)));
    }
  });
});

test('a folder or a pipe is refused in one sentence that says to save it to a file', async () => {
  await withTemp(async (dir) => {
    const fifo = join(dir, 'run.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const f of [dir, fifo])
      await assert.rejects(linesOf(f), {
        message:
          `${f}: is not a regular file (a folder, or a pipe such as <(...), which is read only once); save it ` +
          'to a file and name that',
      });
  });
});

test('a line longer than the bound is refused by its number, after the lines before it were read', async () => {
  await withTemp(async (dir) => {
    const f = join(dir, 'one-line.jsonl');
    writeFileSync(f, `a\nb\n${'x'.repeat(5000)}\nc\n`);
    const seen: NumberedLine[] = [];
    await assert.rejects(
      (async () => {
        for await (const l of readLines(f, { maxLineBytes: 1000 })) seen.push(l);
      })(),
      (e: Error) =>
        e.name === 'EvalInputError' &&
        e.message ===
          `${f}: line 3 is longer than 1000 bytes (no line break in it); a line is one record: check that this is ` +
            'a JSON-lines or text file with one record per line, and split a record this long',
    );
    assert.deepEqual(
      seen.map((l) => l.text),
      ['a', 'b'],
    );
    // the bound counts the line's bytes, not its break: a line of exactly the bound is read
    writeFileSync(f, `${'y'.repeat(1000)}\r\n`);
    let n = 0;
    for await (const l of readLines(f, { maxLineBytes: 1000 })) n += l.text.length;
    assert.equal(n, 1000);
  });
});

test('a line that is not UTF-8 (Latin-1, a gzip file not named .gz) is refused by its number', async () => {
  await withTemp(async (dir) => {
    const f = join(dir, 'corpus.jsonl');
    // 'café' in Latin-1 on line 2; a '€' (3 bytes) across the file stream's 65,536-byte chunk on line 1 is whole
    const first = `${'x'.repeat(65_535)}€`;
    writeFileSync(f, Buffer.concat([Buffer.from(`${first}\n`), Buffer.from('{"text": "caf\xe9"}\n', 'latin1')]));
    const seen: string[] = [];
    const sentence = (file: string, line: number): string =>
      `${file}:${line}: is not UTF-8 text; save the file as UTF-8 (a gzip-compressed file must be named .gz)`;
    await assert.rejects(
      (async () => {
        for await (const l of readLines(f)) seen.push(l.text);
      })(),
      (e: Error) => e.name === 'EvalInputError' && e.message === sentence(f, 2),
    );
    assert.deepEqual(seen, [first]);
    const g = join(dir, 'queries.jsonl');
    writeFileSync(g, gzipSync('{"_id": "q1", "text": "a"}\n'));
    await assert.rejects(linesOf(g), (e: Error) => e.message === sentence(g, 1));
  });
});

test('a BEIR corpus line over 64 MiB is refused in one sentence naming the file and line', async () => {
  await withTemp(async (dir) => {
    const f = join(dir, 'corpus.jsonl');
    const fd = openSync(f, 'w');
    writeSync(fd, '{"_id": "d1", "text": "fine"}\n{"_id": "d2", "text": "');
    const block = Buffer.alloc(1 << 20, 'a');
    for (let written = 0; written <= MAX_LINE_BYTES; written += block.length) writeSync(fd, block);
    writeSync(fd, '"}\n');
    closeSync(fd);
    await assert.rejects(
      readBeirCorpus(f),
      (e: Error) => e.name === 'EvalInputError' && e.message.startsWith(`${f}: line 2 is longer than 64 MiB `),
    );
  });
});

test('a .gz file whose reader stops early (its caller threw) leaves no file descriptor open', async () => {
  await withTemp(async (dir) => {
    const file = join(dir, 'queries.jsonl.gz');
    writeFileSync(file, gzipSync(Array.from({ length: 100 }, (_, i) => `{"_id":"q${i}"}\n`).join('')));
    const stopAtLine3 = async (): Promise<void> => {
      for await (const { line } of readLines(file)) if (line === 3) throw new Error('bad line 3');
    };
    const openFds = (): number => readdirSync('/proc/self/fd').length;
    await assert.rejects(stopAtLine3(), /bad line 3/);
    // a stream closes its file on a later tick; let the first read's settle before counting
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = openFds();
    for (let i = 0; i < 50; i++) await assert.rejects(stopAtLine3(), /bad line 3/);
    // closing is on later ticks, which a busy machine delays; 50 leaked descriptors never close
    await until(
      () => openFds() <= before + 2,
      10_000,
      () => `open file descriptors went from ${before} to ${openFds()}`,
      20,
    );
  });
});
