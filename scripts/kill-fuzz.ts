/**
 * Crash-consistency fuzz of search-r3's writing commands: each command is run to completion once (the
 * reference, timed), then again and again SIGKILLed at seeded random moments spread over that time; after
 * every kill the invariants a user relies on are checked (the output is absent, the old one, or a whole new
 * one; an index opens and searches; a run resumes), then the command is rerun (or resumed) and its result
 * compared with the reference's.
 *
 *   npx tsc -p . && node dist/scripts/kill-fuzz.js [--rounds 20] [--seed 1] [--only index,lm,...] [--keep]
 *
 * Commands (--only, see --help): index, lancedb (index --store lancedb), queue (index --queue: the coordinator,
 * a worker or all killed; needs redis-server), delete, lm, sft, rl, mine, gguf, merged (export merged), tokenizer,
 * embed-token, embed-token-in-place, corpus, pairs (corpus pairs; needs the Debian text packages), recipe.
 * Prints one line per round and a summary; exits 1 when any invariant broke.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveInt, seedOption } from '../src/cli/args.js';
import { UserError } from '../src/cli/command.js';
import { mulberry32 } from '../src/eval/significance.js';
import { SearchIndex } from '../src/search-index/search-index.js';
import { pairsManifestPath } from '../src/train/sft/debian-pairs.js';
import { RedisServer } from '../test/helpers/redis.js';
import { lanceRows } from '../test/queue/store-contents.js';
import {
  rlFixture,
  tinyModelFolder,
  toyAdapterFolder,
  toyExamples,
  writeConfig,
  writeJsonl,
} from '../test/helpers/train-fixtures.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cliMain = path.join(repoRoot, 'dist/src/cli/main.js');
const sharedData = path.resolve(repoRoot, '../shared/data');

const HELP = `kill-fuzz — SIGKILL search-r3's writing commands at seeded moments and check what they leave

usage: node dist/scripts/kill-fuzz.js [--rounds 20] [--seed 1] [--only name,name] [--keep]

  --rounds <n>   kills per command (default 20)
  --seed <n>     the kill moments' seed (default 1)
  --only <names> these commands only:
                   index                 index create (even rounds) and update --prune (odd), local store
                   lancedb               the same with --store lancedb
                   queue                 index --queue with two workers on a private redis-server; the
                                         coordinator, one worker or all of them killed, then rerun
                   delete                index --delete
                   lm, sft, rl           train lm|sft|rl, then --resume
                   mine                  mine (hard negatives)
                   gguf                  export gguf
                   merged                export merged (a LoRA adapter onto its base)
                   tokenizer             tokenizer train
                   embed-token           add-embed-token --out
                   embed-token-in-place  add-embed-token on the model folder itself
                   corpus                corpus build (needs shared/data)
                   pairs                 corpus pairs (needs the Debian text packages)
                   recipe                recipe default --profile tiny (the machine lost, or kill -9 of it alone)
  --keep         keep the work folders (in the system's temporary folder)`;

interface Options {
  rounds: number;
  seed: number;
  only: Set<string> | undefined;
  keep: boolean;
}

/** The options, or the sentence refusing them (an unknown or incomplete option, a count that is none). */
function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        rounds: { type: 'string' },
        seed: { type: 'string' },
        only: { type: 'string' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UserError((err as Error).message.split(/\.\s/)[0]!);
  }
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const only = values.only === undefined ? undefined : new Set(values.only.split(','));
  const unknown = [...(only ?? [])].filter((n) => !cases.some((c) => c.name === n));
  if (unknown.length) throw new UserError(`no command named ${unknown.join(', ')}`);
  return {
    rounds: positiveInt(values.rounds, 'rounds') ?? 20,
    seed: seedOption(values.seed) ?? 1,
    only,
    keep: values.keep ?? false,
  };
}

interface Run {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stdout: string;
  stderr: string;
}

/** How long the last run that was to be killed took, when it finished first (a run faster than the reference). */
let finishedFirstMs: number | undefined;

interface Started {
  pid: number;
  /** SIGKILLs the whole process group (`all`) or the command's process alone (`leader`, as `kill -9 <pid>`). */
  kill(group: 'all' | 'leader'): void;
  /** SIGTERM to the command's process. */
  term(): void;
  done: Promise<Run>;
}

/** Starts the CLI in `cwd` in a process group of its own. */
function start(args: readonly string[], cwd: string): Started {
  const t0 = Date.now();
  const child = spawn(process.execPath, [cliMain, ...args], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const signal = (group: 'all' | 'leader', sig: NodeJS.Signals): void => {
    try {
      if (group === 'all') process.kill(-child.pid!, sig);
      else child.kill(sig);
    } catch {
      // already gone
    }
  };
  return {
    pid: child.pid!,
    kill: (group) => signal(group, 'SIGKILL'),
    term: () => signal('leader', 'SIGTERM'),
    // no wait for the killed steps to be reaped: a rerun at once must take over their locks
    done: new Promise((resolve) =>
      child.on('close', (code, sig) =>
        resolve({ pid: child.pid!, code, signal: sig, ms: Date.now() - t0, stdout, stderr }),
      ),
    ),
  };
}

/**
 * Runs the CLI in `cwd`; with killAtMs, SIGKILLs it then: the whole group when `group` is 'all' (the recipe's
 * steps are child processes, and a machine that is lost takes them too), else the command's process alone
 * (as `kill -9 <pid>` does, its children going on).
 */
async function cli(
  args: readonly string[],
  cwd: string,
  killAtMs?: number,
  group: 'all' | 'leader' = 'leader',
): Promise<Run> {
  const p = start(args, cwd);
  const timer = killAtMs === undefined ? undefined : setTimeout(() => p.kill(group), killAtMs);
  const r = await p.done;
  clearTimeout(timer);
  if (killAtMs !== undefined && r.signal !== 'SIGKILL') finishedFirstMs = r.ms;
  return r;
}

/** Resolves once no process of group `pgid` is left: the steps a kill -9 of the recipe alone left running. */
async function groupGone(pgid: number): Promise<void> {
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function cliOk(args: readonly string[], cwd: string): Promise<Run> {
  const r = await cli(args, cwd);
  if (r.code !== 0) throw new Error(`search-r3 ${args.join(' ')} (in ${cwd}) exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** sha256 over a file, or over a folder's files (relative name and content, sorted), skipping `skip` names. */
function digest(p: string, skip: (name: string) => boolean = () => false): string | undefined {
  if (!existsSync(p)) return undefined;
  const h = createHash('sha256');
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (skip(name)) continue;
      const full = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(full).isDirectory()) walk(full, r);
      else h.update(r).update('\0').update(readFileSync(full)).update('\0');
    }
  };
  if (statSync(p).isDirectory()) walk(p, '');
  else h.update(readFileSync(p));
  return h.digest('hex');
}

/** Names in `dir` other than `known`: what a killed write left beside its output. */
const leftovers = (dir: string, known: readonly string[]): string[] =>
  existsSync(dir) ? readdirSync(dir).filter((n) => !known.includes(n)) : [];

interface Tally {
  rounds: number;
  killedMidRun: number;
  failures: string[];
}

type Round = (round: number, killAtMs: number) => Promise<{ killed: boolean; problems: string[] }>;

interface Case {
  name: string;
  /** Builds the fixtures and the reference; returns the reference run's wall time and the round function. */
  setup(work: string): Promise<{ ms: number; round: Round; teardown?: () => Promise<void> }>;
}

// ---------------------------------------------------------------------------------------------------------------
// fixtures

const scifactLines = (): string[] => readFileSync(path.join(sharedData, 'scifact/corpus.jsonl'), 'utf8').split('\n');

function writeDocs(file: string, lines: readonly string[], changed: ReadonlySet<number> = new Set()): void {
  const out = lines.map((l, i) => {
    if (!changed.has(i)) return l;
    const d = JSON.parse(l) as { _id: string; title: string; text: string };
    return JSON.stringify({ ...d, text: `${d.text} (revised)` });
  });
  writeFileSync(file, out.join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------------------------
// index

interface IndexView {
  ids: string[];
  /** id → sha256 of its exact f32 vector and its stored text. */
  rows: Map<string, string>;
  problems: string[];
}

/** Opens the index read-only as search and serve do, and checks what a reader relies on. */
async function viewIndex(dir: string, expectSettled: boolean, afterKill = false): Promise<IndexView> {
  const problems: string[] = [];
  const index = await SearchIndex.open(dir);
  try {
    // documents staged for encoding are listed too; what search ranks is the indexed ones
    const { ids: vIds, data, dim } = index.indexedVectors();
    const ids = [...vIds].sort();
    const rows = new Map<string, string>();
    for (let i = 0; i < vIds.length; i++) {
      const doc = index.getDocument(vIds[i]);
      const vec = Buffer.from(data.buffer, data.byteOffset + i * dim * 4, dim * 4);
      rows.set(
        vIds[i],
        createHash('sha256')
          .update(vec)
          .update(doc?.text ?? '')
          .digest('hex'),
      );
    }
    const { documents, pending } = index.stats();
    if (documents !== ids.length) problems.push(`${documents} indexed documents but ${ids.length} indexed vectors`);
    if (expectSettled && pending !== 0 && !afterKill) problems.push(`${pending} documents still pending`);
    // a LanceDB table behind docs.sqlite (a kill between their commits) is not searched (dense search reads
    // docs.sqlite) until a writer makes it again; a local graph is rebuilt in memory
    const current =
      index.store.kind === 'local' || (await index.store.committed()).generation === index.stats().generation;
    const storeSize = await index.store.size();
    if (expectSettled && current && storeSize !== ids.length)
      problems.push(`the vector store holds ${storeSize} vectors for ${ids.length} documents`);
    if (expectSettled && !afterKill && !current) problems.push('the LanceDB table is behind docs.sqlite');
    const lance = path.join(dir, 'vectors.lance');
    if (ids.length > 0 && existsSync(lance) && current) {
      const rows = (await lanceRows(lance)).map((r) => r.id);
      const distinct = new Set(rows);
      const missing = ids.filter((id) => !distinct.has(id)).length;
      if (distinct.size !== rows.length || missing)
        problems.push(
          `the LanceDB table holds ${rows.length} rows of ${distinct.size} ids, ${missing} documents missing`,
        );
    }
    // every document is searchable: its own vector finds it first
    for (const id of ids.filter((_, i) => i % 17 === 0)) {
      const v = index.getDocument(id)?.vector;
      if (!v) {
        problems.push(`document ${id} has no vector`);
        continue;
      }
      const hits = await index.searchVector(v, { k: 3 });
      if (!hits.some((h) => h.id === id)) problems.push(`document ${id} is not found by its own vector`);
    }
    return { ids, rows, problems };
  } finally {
    await index.close();
  }
}

function compareIndex(got: IndexView, want: IndexView, what: string): string[] {
  const p: string[] = [];
  if (got.ids.join('\n') !== want.ids.join('\n'))
    p.push(`${what}: ${got.ids.length} documents, the uninterrupted run has ${want.ids.length}`);
  let differ = 0;
  for (const [id, h] of want.rows) if (got.rows.get(id) !== h) differ++;
  if (differ) p.push(`${what}: ${differ} documents' vector or text differ from the uninterrupted run's`);
  return p;
}

/** The checks on an index a kill left: it opens, and each document is the old or the new version, none lost. */
async function indexAfterKill(out: string, updating: boolean, ref1: IndexView, ref2: IndexView): Promise<string[]> {
  const problems: string[] = [];
  if (!existsSync(out) || !existsSync(path.join(out, 'docs.sqlite'))) return problems;
  try {
    const v = await viewIndex(out, true, true);
    problems.push(...v.problems.map((s) => `after the kill: ${s}`));
    if (updating) {
      // every document is searched as the last commit left it: the old or the new version, none lost
      const gone = ref1.ids.filter((id) => !v.ids.includes(id) && ref2.ids.includes(id));
      if (gone.length) problems.push(`after the kill: ${gone.length} documents of both versions are missing`);
    } else {
      const extra = v.ids.filter((id) => !ref1.rows.has(id));
      if (extra.length) problems.push(`after the kill: ${extra.length} documents not in the input`);
      for (const id of v.ids)
        if (v.rows.get(id) !== ref1.rows.get(id)) {
          problems.push(`after the kill: document ${id} differs from the uninterrupted run's`);
          break;
        }
    }
  } catch (e) {
    // a create killed inside its first transaction has no index yet, and the reader says so
    const unborn = !updating && !existsSync(path.join(out, 'index.json'));
    if (!unborn || !/index\.json is missing; this is not a search-r3 index/.test((e as Error).message))
      problems.push(`after the kill the index does not open: ${(e as Error).message}`);
  }
  return problems;
}

/** The index fixtures: v1 is documents 0..119; v2 is 20..159 with 30..39 changed (20 pruned, 40 new, 10 changed). */
async function indexFixture(work: string): Promise<string> {
  const model = await tinyModelFolder(path.join(work, 'model'));
  const lines = scifactLines().slice(0, 160);
  writeDocs(path.join(work, 'v1.jsonl'), lines.slice(0, 120));
  writeDocs(path.join(work, 'v2.jsonl'), lines.slice(20, 160), new Set([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]));
  return model;
}

/** index killed while it creates (even rounds) or updates (odd rounds) an index; `store`: its store's options. */
function indexCase(name: string, store: readonly string[]): Case {
  return {
    name,
    async setup(work) {
      const model = await indexFixture(work);
      const create = (out: string) => [
        'index',
        ...['--model', model, '--input', 'v1.jsonl', '--out', out, '--commit-every', '8', ...store],
      ];
      const update = (out: string) => ['index', '--input', 'v2.jsonl', '--out', out, '--commit-every', '8', '--prune'];
      const { ms: createMs } = await cliOk(create('ref1'), work);
      cpSync(path.join(work, 'ref1'), path.join(work, 'ref2'), { recursive: true });
      const { ms: updateMs } = await cliOk(update('ref2'), work);
      const ref1 = await viewIndex(path.join(work, 'ref1'), true);
      const ref2 = await viewIndex(path.join(work, 'ref2'), true);
      const query = ['search', '--index', '', '-k', '5', 'cerebral white matter'];
      const searchOut = async (dir: string) =>
        (
          await cliOk(
            query.map((a) => a || dir),
            work,
          )
        ).stdout;
      const refSearch2 = await searchOut('ref2');
      return {
        ms: Math.max(createMs, updateMs),
        round: async (round, killAtMs) => {
          const out = path.join(work, `r${round}`);
          rmSync(out, { recursive: true, force: true });
          const updating = round % 2 === 1;
          if (updating) cpSync(path.join(work, 'ref1'), out, { recursive: true });
          const args = updating ? update(`r${round}`) : create(`r${round}`);
          const scaled = (killAtMs * (updating ? updateMs : createMs)) / Math.max(createMs, updateMs);
          const k = await cli(args, work, scaled);
          const killed = k.signal === 'SIGKILL';
          const problems = await indexAfterKill(out, updating, ref1, ref2);
          const again = await cli(args, work);
          if (again.code !== 0) {
            problems.push(`the rerun exited ${again.code}: ${again.stderr.trim().split('\n').pop()}`);
            return { killed, problems };
          }
          const v = await viewIndex(out, true);
          problems.push(...v.problems.map((s) => `after the rerun: ${s}`));
          problems.push(...compareIndex(v, updating ? ref2 : ref1, 'after the rerun'));
          if (updating && round % 4 === 1) {
            const s = await searchOut(`r${round}`);
            if (s !== refSearch2)
              problems.push(`after the rerun search prints other results:\n${s}\nvs\n${refSearch2}`);
          }
          rmSync(out, { recursive: true, force: true });
          return { killed, problems };
        },
      };
    },
  };
}

/** index --delete killed: the ids are either all still there or gone, and the rerun deletes them. */
const deleteCase: Case = {
  name: 'delete',
  async setup(work) {
    const model = await tinyModelFolder(path.join(work, 'model'));
    writeDocs(path.join(work, 'v1.jsonl'), scifactLines().slice(0, 60));
    await cliOk(['index', '--model', model, '--input', 'v1.jsonl', '--out', 'base', '--commit-every', '8'], work);
    const base = await viewIndex(path.join(work, 'base'), true);
    const victims = base.ids.filter((_, i) => i % 3 === 0);
    const args = (out: string) => ['index', '--out', out, '--delete', victims.join(',')];
    cpSync(path.join(work, 'base'), path.join(work, 'ref'), { recursive: true });
    const { ms } = await cliOk(args('ref'), work);
    const ref = await viewIndex(path.join(work, 'ref'), true);
    return {
      ms,
      round: async (round, killAtMs) => {
        const problems: string[] = [];
        const out = path.join(work, `r${round}`);
        rmSync(out, { recursive: true, force: true });
        cpSync(path.join(work, 'base'), out, { recursive: true });
        const k = await cli(args(`r${round}`), work, killAtMs);
        try {
          const v = await viewIndex(out, true, true);
          problems.push(...v.problems.map((s) => `after the kill: ${s}`));
          const left = victims.filter((id) => v.ids.includes(id)).length;
          if (left !== 0 && left !== victims.length)
            problems.push(`after the kill ${left} of ${victims.length} deleted ids remain (one transaction?)`);
        } catch (e) {
          problems.push(`after the kill the index does not open: ${(e as Error).message}`);
        }
        const again = await cli(args(`r${round}`), work);
        if (again.code !== 0) problems.push(`the rerun exited ${again.code}: ${again.stderr.trim()}`);
        else problems.push(...compareIndex(await viewIndex(out, true), ref, 'after the rerun'));
        rmSync(out, { recursive: true, force: true });
        return { killed: k.signal === 'SIGKILL', problems };
      },
    };
  },
};

/**
 * index --queue killed: the coordinator (round % 3 = 0), one of its two workers (1) or all of them (2) while
 * it creates (even rounds) or updates (odd rounds) an index; a run beside a killed worker ends by itself, a
 * killed coordinator is rerun on the same queue with live workers, and the index then holds every document
 * once, as the uninterrupted queued run does.
 */
const queueCase: Case = {
  name: 'queue',
  async setup(work) {
    const model = await indexFixture(work);
    const redis = await RedisServer.start();
    const queue = (q: string) => ['--queue', redis.url, '--queue-name', q, '--model', model, '--commit-every', '8'];
    const create = (out: string, q: string) => ['index', ...queue(q), '--input', 'v1.jsonl', '--out', out];
    const update = (out: string, q: string) => ['index', ...queue(q), '--input', 'v2.jsonl', '--out', out, '--prune'];
    const workers = (q: string) =>
      [0, 1].map(() =>
        start(['worker', '--queue', redis.url, '--queue-name', q, '--model', model, '--lock-seconds', '2'], work),
      );
    const traced = (r: Run) => /\n\s+at .+:\d+:\d+\)?\n/.test(r.stderr);
    /** Runs the coordinator to its end (killing it when it hangs), then stops the live workers. */
    const stopAll = async (ws: Started[], problems: string[]) => {
      for (const w of ws) w.term();
      for (const r of await Promise.all(ws.map((w) => w.done)))
        if (r.signal !== 'SIGKILL' && (r.code !== 0 || traced(r)))
          problems.push(`a worker exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    };
    const finish = async (args: string[]): Promise<Run> => {
      const c = start(args, work);
      const timer = setTimeout(() => c.kill('all'), 180_000);
      const r = await c.done;
      clearTimeout(timer);
      return r;
    };
    const reference = async (args: string[]) => {
      const ws = workers('ref');
      const r = await finish(args);
      const problems: string[] = [];
      await stopAll(ws, problems);
      if (r.code !== 0 || problems.length) throw new Error(`the queued reference failed: ${r.stderr}${problems}`);
      return r.ms;
    };
    let createMs: number, updateMs: number, ref1: IndexView, ref2: IndexView;
    try {
      createMs = await reference(create('ref1', 'ref'));
      cpSync(path.join(work, 'ref1'), path.join(work, 'ref2'), { recursive: true });
      updateMs = await reference(update('ref2', 'ref'));
      ref1 = await viewIndex(path.join(work, 'ref1'), true);
      ref2 = await viewIndex(path.join(work, 'ref2'), true);
    } catch (e) {
      await redis.stop(); // a failed reference run would leave the server running past this script
      throw e;
    }
    return {
      ms: Math.max(createMs, updateMs),
      teardown: () => redis.stop(),
      round: async (round, killAtMs) => {
        const problems: string[] = [];
        const out = path.join(work, `r${round}`);
        const q = `kill-fuzz-${round}`;
        rmSync(out, { recursive: true, force: true });
        const updating = round % 2 === 1;
        if (updating) cpSync(path.join(work, 'ref1'), out, { recursive: true });
        const args = updating ? update(`r${round}`, q) : create(`r${round}`, q);
        const victim = (['coordinator', 'worker', 'both'] as const)[round % 3];
        const scaled = (killAtMs * (updating ? updateMs : createMs)) / Math.max(createMs, updateMs);
        let ws = workers(q);
        const c = start(args, work);
        let fired = false;
        const timer = setTimeout(() => {
          fired = true;
          if (victim !== 'worker') c.kill('leader');
          if (victim !== 'coordinator') ws[0].kill('leader');
          if (victim === 'both') ws[1].kill('leader');
        }, scaled);
        const first = await c.done;
        clearTimeout(timer);
        const killed = victim === 'worker' ? fired : first.signal === 'SIGKILL';
        if (!killed) finishedFirstMs = first.ms;
        let last = first;
        if (first.signal === 'SIGKILL') {
          problems.push(...(await indexAfterKill(out, updating, ref1, ref2)));
          if (victim === 'both') ws = workers(q);
          last = await finish(args);
        }
        await stopAll(ws, problems);
        const what = last === first ? `the run (${victim} killed)` : 'the rerun';
        if (last.code !== 0 || traced(last)) {
          problems.push(
            `${what} exited ${last.code ?? last.signal}: ${last.stderr.trim().split('\n').slice(-3).join(' | ')}`,
          );
          return { killed, problems };
        }
        const v = await viewIndex(out, true);
        problems.push(...v.problems.map((s) => `after ${what}: ${s}`));
        problems.push(...compareIndex(v, updating ? ref2 : ref1, `after ${what}`));
        rmSync(out, { recursive: true, force: true });
        return { killed, problems };
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// training

/** A training run killed anywhere: `--resume` finishes it, with final weights bit-identical to the reference's. */
function trainCase(name: 'lm' | 'sft' | 'rl', makeConfig: (work: string) => Promise<void>): Case {
  return {
    name,
    async setup(work) {
      await makeConfig(work);
      const cfg = (out: string) => {
        const file = path.join(work, `cfg-${out}.json`);
        const c = JSON.parse(readFileSync(path.join(work, 'cfg.json'), 'utf8')) as Record<string, unknown>;
        writeConfig(file, { ...c, output: out });
        return file;
      };
      const { ms } = await cliOk(['train', name, '--config', cfg('ref'), '--quiet'], work);
      const weights = (run: string) => digest(path.join(work, run, 'final'), (n) => !n.endsWith('.safetensors'));
      const want = weights('ref');
      return {
        ms,
        round: async (round, killAtMs) => {
          const problems: string[] = [];
          const run = `r${round}`;
          rmSync(path.join(work, run), { recursive: true, force: true });
          const file = cfg(run);
          const k = await cli(['train', name, '--config', file, '--quiet'], work, killAtMs);
          const killed = k.signal === 'SIGKILL';
          if (killed && existsSync(path.join(work, run, 'final')) && weights(run) !== want)
            problems.push('after the kill final/ holds other weights than the uninterrupted run');
          // a user resumes whatever the kill left, even a run killed before its first checkpoint
          const again = await cli(['train', name, '--config', file, '--resume', '--quiet'], work);
          if (again.code !== 0) {
            problems.push(`--resume exited ${again.code}: ${again.stderr.trim().split('\n').slice(-2).join(' | ')}`);
            return { killed, problems };
          }
          if (weights(run) !== want)
            problems.push('after --resume the final weights differ from the uninterrupted run');
          rmSync(path.join(work, run), { recursive: true, force: true });
          return { killed, problems };
        },
      };
    },
  };
}

const lmCase = trainCase('lm', async (work) => {
  const docs = scifactLines()
    .slice(0, 260)
    .map((l) => JSON.stringify({ text: (JSON.parse(l) as { text: string }).text }));
  writeFileSync(path.join(work, 'train.jsonl'), docs.slice(0, 240).join('\n') + '\n');
  writeFileSync(path.join(work, 'valid.jsonl'), docs.slice(240).join('\n') + '\n');
  await cliOk(['tokenizer', 'train', '--input', 'train.jsonl', '--vocab-size', '400', '--out', 'tok', '--quiet'], work);
  writeConfig(path.join(work, 'cfg.json'), {
    tokenizer: 'tok',
    output: 'ref',
    seed: 3,
    data: { train: ['train.jsonl'], valid: ['valid.jsonl'] },
    model: {
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      maxPositionEmbeddings: 64,
    },
    seqLength: 32,
    batchSize: 4,
    steps: 40,
    accumulation: 1,
    checkpoint: { every: 2, keep: 2 },
    eval: { every: 10, maxSequences: 8 },
    optimizer: { lr: 1e-2, warmupSteps: 4, minLr: 1e-3, weightDecay: 0.01 },
  });
});

const sftCase = trainCase('sft', async (work) => {
  await tinyModelFolder(path.join(work, 'model'));
  writeJsonl(path.join(work, 'train.jsonl'), toyExamples(12));
  writeConfig(path.join(work, 'cfg.json'), {
    model: 'model',
    output: 'ref',
    seed: 3,
    data: [{ type: 'jsonl', path: 'train.jsonl' }],
    maxLength: 128,
    steps: 12,
    batch: { queries: 4, hardNegatives: 1, subBatch: 5 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    checkpoint: { every: 2, keep: 2 },
    lora: { rank: 4, alpha: 8, dropout: 0.1 },
  });
});

const rlCase = trainCase('rl', async (work) => {
  const { dir, raw } = await rlFixture('kill-fuzz-rl');
  cpSync(dir, work, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  writeConfig(path.join(work, 'cfg.json'), { ...raw, steps: 6 });
});

// ---------------------------------------------------------------------------------------------------------------
// one-output commands: after a kill the final name holds nothing, the old output or the whole new one

interface OutputOptions {
  /** Leaves out of the comparison files that record times. */
  skip?: (name: string) => boolean;
  /** False for a command that refuses to write over a finished output. */
  rerunsOverOutput?: boolean;
  /** The files that make up output `out` beside (or instead of) `out` itself, such as `out`.jsonl and its manifest. */
  companions?: (out: string) => string[];
  /** A companion's text without the output name it records (a manifest naming its file). */
  unnamed?: (text: string) => string;
}

/** `args(out)` writes `out`; `old(out)` writes another (older) output there first, in half of the rounds. */
function outputCase(
  name: string,
  fixture: (work: string) => Promise<void>,
  args: (out: string) => string[],
  old: ((out: string) => string[]) | undefined,
  { skip = () => false, rerunsOverOutput = true, companions = () => [], unnamed }: OutputOptions = {},
): Case {
  return {
    name,
    async setup(work) {
      await fixture(work);
      const { ms } = await cliOk(args('ref'), work);
      /** The output and its companions as one digest; undefined when none of them is there. */
      const outputDigest = (out: string): string | undefined => {
        const parts = [out, ...companions(out)].map((n) => {
          const file = path.join(work, n);
          if (!unnamed || !existsSync(file) || statSync(file).isDirectory()) return digest(file, skip);
          return createHash('sha256')
            .update(unnamed(readFileSync(file, 'utf8')))
            .digest('hex');
        });
        return parts.every((d) => d === undefined) ? undefined : parts.map((d) => d ?? '-').join();
      };
      const want = outputDigest('ref');
      let oldDigest: string | undefined;
      if (old) {
        await cliOk(old('old'), work);
        oldDigest = outputDigest('old');
      }
      return {
        ms,
        round: async (round, killAtMs) => {
          const problems: string[] = [];
          const out = `r${round}`;
          const full = path.join(work, out);
          const names = (o: string) => [o, ...companions(o)];
          for (const n of names(out)) rmSync(path.join(work, n), { recursive: true, force: true });
          const withOld = old !== undefined && round % 2 === 1;
          if (withOld)
            names('old').forEach((n, i) => {
              const from = path.join(work, n);
              if (existsSync(from)) cpSync(from, path.join(work, names(out)[i]), { recursive: true });
            });
          const before = readdirSync(work);
          const k = await cli(args(out), work, killAtMs);
          const killed = k.signal === 'SIGKILL';
          const got = outputDigest(out);
          const allowed = [want, withOld ? oldDigest : undefined];
          if (got !== undefined && !allowed.includes(got)) {
            const emptyDir = existsSync(full) && statSync(full).isDirectory() && readdirSync(full).length === 0;
            // which part is which: the output's files may be a mix of the old and the new
            const [g, w, o] = [got, want, oldDigest].map((d) => (d ?? '').split(','));
            const tags = names(out).map((n, i) =>
              g[i] === '-' ? `${n} absent` : g[i] === w[i] ? `${n} new` : g[i] === o[i] ? `${n} old` : `${n} neither`,
            );
            if (!emptyDir)
              problems.push(
                `after the kill ${out} is neither ${withOld ? 'the old output, ' : ''}nor whole (${tags.join(', ')})`,
              );
          }
          // a command that refuses to write over a finished output is rerun only where it had not finished
          if (got === want && !rerunsOverOutput) return { killed, problems };
          const again = await cli(args(out), work);
          if (again.code !== 0) {
            problems.push(`the rerun exited ${again.code}: ${again.stderr.trim().split('\n').pop()}`);
            return { killed, problems };
          }
          if (outputDigest(out) !== want)
            problems.push('after the rerun the output differs from the uninterrupted run');
          const stray = leftovers(work, [...before, ...names(out)]);
          if (stray.length) problems.push(`after the rerun these remain beside the output: ${stray.join(', ')}`);
          for (const n of names(out)) rmSync(path.join(work, n), { recursive: true, force: true });
          return { killed, problems };
        },
      };
    },
  };
}

const mineCase = outputCase(
  'mine',
  async (work) => {
    writeJsonl(path.join(work, 'train.jsonl'), toyExamples(60, 1));
    writeConfig(path.join(work, 'cfg.json'), {
      model: 'model',
      output: 'run',
      data: [{ type: 'jsonl', path: 'train.jsonl' }],
      steps: 1,
    });
  },
  (out) => ['mine', '--config', 'cfg.json', '--out', out, '--window', '2:20', '--negatives', '3'],
  (out) => ['mine', '--config', 'cfg.json', '--out', out, '--window', '2:20', '--negatives', '2'],
);

const ggufCase = outputCase(
  'gguf',
  async (work) => void (await tinyModelFolder(path.join(work, 'model'))),
  (out) => ['export', 'gguf', '--model', 'model', '--out', out, '--type', 'f16'],
  (out) => ['export', 'gguf', '--model', 'model', '--out', out, '--type', 'f32'],
);

const tokenizerCase = outputCase(
  'tokenizer',
  async (work) => writeDocs(path.join(work, 'docs.jsonl'), scifactLines().slice(0, 400)),
  (out) => ['tokenizer', 'train', '--input', 'docs.jsonl', '--vocab-size', '1200', '--out', out, '--quiet'],
  // a tokenizer is never written over one (what uses it would no longer match), so there is no old output
  undefined,
  { skip: (n) => n === 'tokenizer-training.json', rerunsOverOutput: false },
);

const embedTokenCase = outputCase(
  'embed-token',
  async (work) => void (await tinyModelFolder(path.join(work, 'model'), 1, false)),
  (out) => ['add-embed-token', '--model', 'model', '--out', out],
  undefined,
  { rerunsOverOutput: false },
);

/** add-embed-token in place: the model folder is the old one or the new one after any kill. */
const embedTokenInPlaceCase: Case = {
  name: 'embed-token-in-place',
  async setup(work) {
    await tinyModelFolder(path.join(work, 'model'), 1, false);
    const oldDigest = digest(path.join(work, 'model'));
    cpSync(path.join(work, 'model'), path.join(work, 'ref'), { recursive: true });
    const { ms } = await cliOk(['add-embed-token', '--model', 'ref'], work);
    const want = digest(path.join(work, 'ref'));
    return {
      ms,
      round: async (round, killAtMs) => {
        const problems: string[] = [];
        const out = `r${round}`;
        rmSync(path.join(work, out), { recursive: true, force: true });
        cpSync(path.join(work, 'model'), path.join(work, out), { recursive: true });
        const before = readdirSync(work);
        const k = await cli(['add-embed-token', '--model', out], work, killAtMs);
        const got = digest(path.join(work, out));
        if (got !== want && got !== oldDigest) {
          const held = got === undefined ? [] : readdirSync(path.join(work, out));
          const which = held.map((n) => {
            const d = digest(path.join(work, out, n));
            const tag =
              d === digest(path.join(work, 'ref', n)) ? 'new' : d === digest(path.join(work, 'model', n)) ? 'old' : '?';
            return `${n} (${tag})`;
          });
          const what =
            got === undefined ? 'missing' : `neither the old folder nor the new (it holds ${which.join(', ')})`;
          problems.push(`after the kill ${out} is ${what}; beside it: ${leftovers(work, before).join(', ')}`);
        }
        const again = await cli(['add-embed-token', '--model', out], work);
        if (again.code !== 0) problems.push(`the rerun exited ${again.code}: ${again.stderr.trim()}`);
        else if (digest(path.join(work, out)) !== want) problems.push('after the rerun the folder differs');
        const stray = leftovers(work, [...before]);
        if (stray.length) problems.push(`after the rerun these remain beside the folder: ${stray.join(', ')}`);
        rmSync(path.join(work, out), { recursive: true, force: true });
        return { killed: k.signal === 'SIGKILL', problems };
      },
    };
  },
};

const corpusCase = outputCase(
  'corpus',
  async () => undefined,
  (out) => ['corpus', 'build', '--data', sharedData, '--only', 'scifact-corpus', '--out', out, '--quiet'],
  (out) => [
    'corpus',
    'build',
    '--data',
    sharedData,
    '--only',
    'scifact-corpus',
    '--out',
    out,
    '--seed',
    '1',
    '--quiet',
  ],
  { skip: (n) => n === 'manifest.json' },
);

/** corpus pairs: the pairs file and its manifest are both the old ones or both whole new ones. */
const pairsCase = outputCase(
  'pairs',
  async () => undefined,
  (out) => [
    'corpus',
    'pairs',
    ...['--out', `${out}.jsonl`, '--only', 'debian-foldoc,debian-gcide,debian-policy,debian-perl-doc'],
    ...['--max-terms', '4000', '--max-headings', '2000', '--quiet'],
  ],
  (out) => [
    'corpus',
    'pairs',
    ...[
      '--out',
      `${out}.jsonl`,
      '--only',
      'debian-foldoc,debian-policy',
      '--max-terms',
      '300',
      '--max-headings',
      '200',
    ],
    '--quiet',
  ],
  {
    companions: (out) => [`${out}.jsonl`, pairsManifestPath(`${out}.jsonl`)],
    unnamed: (text) => text.replace(/"name": "[^"]*\.jsonl"/, '"name": "<out>"'),
  },
);

/** export merged: the merged folder is absent or whole; a folder it finished is not written over. */
const mergedCase = outputCase(
  'merged',
  async (work) => {
    const base = await tinyModelFolder(path.join(work, 'base'), 2);
    await toyAdapterFolder(base, path.join(work, 'adapter'));
  },
  (out) => ['export', 'merged', '--lora', 'adapter', '--model', 'base', '--out', out],
  undefined,
  { rerunsOverOutput: false },
);

// ---------------------------------------------------------------------------------------------------------------
// recipe

/** What a finished tiny recipe made: the weights, tokenizer and settings of both models and the demo's vectors. */
function recipeResult(work: string): string | undefined {
  const made = ['model', 'models/stage1'].map((m) => path.join(work, m));
  if (!made.every(existsSync)) return undefined;
  // configs, the card and the evaluation's record name the work folder, and times
  const kept = (n: string) => /\.(safetensors|json)$/.test(n) && !/^(recipe|evaluation)\.json$/.test(n);
  return made.map((m) => digest(m, (n) => n === 'configs' || (n.includes('.') && !kept(n)))).join();
}

const recipeCase: Case = {
  name: 'recipe',
  async setup(work) {
    const args = (w: string) => ['recipe', 'default', '--profile', 'tiny', '--device', 'cpu', '--work', w, '--quiet'];
    const { ms } = await cliOk(args('ref'), work);
    const want = recipeResult(path.join(work, 'ref'));
    return {
      ms,
      round: async (round, killAtMs) => {
        const problems: string[] = [];
        const w = `r${round}`;
        rmSync(path.join(work, w), { recursive: true, force: true });
        // even rounds: the machine is lost (every step dies); odd ones: kill -9 of the recipe alone, its step
        // going on, and the rerun at once: it may refuse while that step runs, in one sentence
        const lost = round % 2 === 0;
        const k = await cli(args(w), work, killAtMs, lost ? 'all' : 'leader');
        let again = await cli(args(w), work);
        if (!lost && again.code !== 0) {
          if (/\n\s+at /.test(again.stderr) || !/is in use|running/.test(again.stderr))
            problems.push(`the rerun beside the orphaned step exited ${again.code}: ${again.stderr.trim()}`);
          await groupGone(k.pid);
          again = await cli(args(w), work);
        }
        if (again.code !== 0) {
          problems.push(`the rerun exited ${again.code}: ${again.stderr.trim()}`);
          return { killed: k.signal === 'SIGKILL', problems };
        }
        if (recipeResult(path.join(work, w)) !== want) problems.push('after the rerun the model differs');
        rmSync(path.join(work, w), { recursive: true, force: true });
        return { killed: k.signal === 'SIGKILL', problems };
      },
    };
  },
};

const cases: readonly Case[] = [
  indexCase('index', []),
  indexCase('lancedb', ['--store', 'lancedb']),
  queueCase,
  deleteCase,
  lmCase,
  sftCase,
  rlCase,
  mineCase,
  ggufCase,
  tokenizerCase,
  embedTokenCase,
  embedTokenInPlaceCase,
  corpusCase,
  pairsCase,
  mergedCase,
  recipeCase,
];

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    console.error(`kill-fuzz: ${err.message.replace(/\.$/, '')} (see --help).`);
    process.exitCode = 2;
    return;
  }
  const chosen = cases.filter((c) => !o.only || o.only.has(c.name));
  const tallies = new Map<string, Tally>();
  for (const c of chosen) {
    const work = path.join(tmpdir(), `search-r3-kill-fuzz-${c.name}-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const tally: Tally = { rounds: 0, killedMidRun: 0, failures: [] };
    tallies.set(c.name, tally);
    const setup = await c.setup(work);
    let ms = setup.ms;
    console.log(`${c.name}: uninterrupted run ${ms} ms; ${o.rounds} rounds in ${work}`);
    // mulberry32: the kill moments of a seed are the same on every machine
    const random = mulberry32(o.seed * 1000 + c.name.length);
    try {
      for (let r = 0; r < o.rounds; r++) {
        // spread over the run past node's start (about 15% of a short one), with a few past its end
        const killAt = Math.round((0.15 + random() * 0.9) * ms);
        finishedFirstMs = undefined;
        const { killed, problems } = await setup.round(r, killAt);
        // the reference may have run on a busier machine: the kills stay within the runs they are aimed at
        if (!killed && finishedFirstMs !== undefined) ms = Math.min(ms, finishedFirstMs);
        tally.rounds++;
        if (killed) tally.killedMidRun++;
        for (const p of problems) tally.failures.push(`round ${r} (kill at ${killAt} ms): ${p}`);
        console.log(
          `  round ${r}: kill at ${killAt} ms${killed ? '' : ' (finished first)'}: ${problems.join('; ') || 'ok'}`,
        );
      }
    } finally {
      await setup.teardown?.();
    }
    if (!o.keep) rmSync(work, { recursive: true, force: true });
  }
  console.log('\nsummary');
  let bad = 0;
  for (const [name, t] of tallies) {
    console.log(`${name}: ${t.rounds} rounds, ${t.killedMidRun} killed mid-run, ${t.failures.length} failures`);
    for (const f of t.failures) console.log(`  ${f}`);
    bad += t.failures.length;
  }
  process.exitCode = bad ? 1 : 0;
}

await main();
