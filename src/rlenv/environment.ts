/**
 * The RL retrieval environment. The policy being trained is also the document encoder, so each update
 * makes every stored document vector stale; re-encoding the whole corpus per step is what this avoids.
 * The environment keeps the corpus table (vectors + the policy version of each row) and an HNSW graph
 * over it. A step, given each query's positives and the embeddings of its sampled responses:
 *   1. retrieves each response's candidates from the graph (over the current, partly stale table);
 *   2. re-encodes with the current policy the rows the refresh policy names (positives, candidates,
 *      their graph neighbours within a budget, and a rolling slice of the stalest rows; everything in
 *      exact mode) and updates them in the table and the graph;
 *   3. scores every response against the whole table (fresh rows + stale rest, exact brute force) and
 *      returns the ranking reward and the top candidates of each response.
 * `advance()` is called after each optimiser update: the current version moves on and all rows age.
 *
 * `snapshot()` and `restore()` carry the whole state across a process (a training checkpoint): the
 * table, the row versions, the drift means and the counters. The graph is not carried as usearch saves
 * it: usearch does not save the generator that picks a new node's level, so a loaded graph would grow
 * differently from the live one. Instead the graph is a function of its history: `rebuildGraph()` builds
 * it from the table, rows in order, and the snapshot holds the edits since (the changed rows' vectors at
 * that build and every upsert after it), which restore() replays on a graph built the same way. A
 * snapshot taken at any step, on the trainer's rebuild schedule or not (a run stopped by a signal or a
 * deadline), so restores the graph the live environment holds. The environment also rebuilds the graph
 * itself after a write that leaves every row fresh (a full refresh) or that would make those edits hold more
 * vectors than the table has rows, so they never hold more than one table's worth.
 */
import { EmbeddingTable, defaultTableLimit } from './embedding-table.js';
import { topK } from '../model/top-k.js';
import { DEFAULT_GRAPH, type GraphSettings, HnswGraph } from './graph.js';
import { type RefreshPlan, type RefreshSettings, planRefresh } from './refresh-policy.js';
import { type Positive, type RankingRewardKind, rankingReward } from './reward.js';

/** Unit-length embeddings of the given rows' documents under the current policy, in order. */
export type DocumentEncoder = (rows: readonly number[]) => Float32Array[];

export interface EnvironmentOptions {
  refresh: RefreshSettings;
  graph?: GraphSettings;
  /** Memory allowed for the table (default: half the machine's memory). */
  maxTableBytes?: number;
  /** How the ranking reward is computed. */
  reward: { kind: RankingRewardKind; k: number };
  /**
   * Candidates returned per response (for the contrastive term): the best-scored rows among those at the
   * current version. Only fresh rows, because a contrastive term that sees stale negatives beside fresh
   * positives can be lowered by telling fresh rows from stale ones instead of by ranking (measured: the stage-2
   * runs in docs/default-model.md).
   */
  returnCandidates?: number;
  /**
   * Score a stale row as if it had moved with the corpus: q·v + q·(m_now − m_v), with m_v the mean of
   * the rows encoded at version v (estimated from the rolling and full refreshes, which are not chosen
   * by the queries). Without it, rows just refreshed (the positives!) are systematically favoured over
   * the stale rest whenever the policy's update shifts all embeddings in a common direction.
   */
  driftCorrection?: boolean;
}

export interface StepQuery {
  positives: readonly Positive[];
  /** Unit-length embedding of each response of the group. */
  responses: readonly Float32Array[];
}

export interface StepOutcome {
  /** Per query, per response: the ranking reward over the whole corpus. */
  rewards: number[][];
  /** Per query, per response: the best-scored rows at the current version after the refresh, best first. */
  candidates: number[][][];
  stats: StepStats;
}

export interface StepStats {
  step: number;
  version: number;
  /** Documents re-encoded this step, and why. */
  encodes: number;
  counts: RefreshPlan['counts'];
  /** Mean policy versions a row lags behind, after the refresh. */
  meanStaleness: number;
  staleRows: number;
  encodeSeconds: number;
  graphSeconds: number;
  seconds: number;
}

/** Everything an environment's future depends on, except the encoder and the options (see restore()). */
export interface EnvironmentSnapshot {
  version: number;
  steps: number;
  rows: number;
  dim: number;
  /** rows × dim, row-major (a view of the live table: save it before the next step). */
  vectors: Float32Array;
  versions: Int32Array;
  /** The estimated corpus mean at each version some row is still at (what drift correction reads). */
  means: { version: number; mean: Float64Array }[];
  graphEdits: GraphEdits;
}

/**
 * The graph's history since it was last built from the table: how many rows that build inserted at a time
 * (chunk), the rows changed since with their vectors then (baseRows, baseVectors: rows × dim), and every
 * upsert since, in order (batches: the rows of each; vectors: theirs, concatenated).
 */
export interface GraphEdits {
  chunk: number;
  baseRows: number[];
  baseVectors: Float32Array;
  batches: number[][];
  vectors: Float32Array;
}

/** Rows inserted into the graph per call when it is built from the table (bounds the copy usearch needs). */
const GRAPH_BUILD_CHUNK = 4096;

/** Documents encoded per call, and inserted into the graph per call, when the corpus is first encoded. */
const ENCODE_CHUNK = 256;

/** No edits: the graph is the one rebuildGraph() builds from the table. */
export const NO_GRAPH_EDITS: GraphEdits = {
  chunk: GRAPH_BUILD_CHUNK,
  baseRows: [],
  baseVectors: new Float32Array(0),
  batches: [],
  vectors: new Float32Array(0),
};

export class RetrievalEnvironment {
  /** The policy version: incremented by advance() after each optimiser update. */
  version = 0;
  /** Steps taken. */
  steps = 0;
  private graph: HnswGraph | null;
  /** Since the graph was built from the table: each changed row's vector at the build, and every upsert. */
  private graphBase = new Map<number, Float32Array>();
  private graphLog: { rows: number[]; vectors: Float32Array[] }[] = [];
  /** Rows upserted since the build (graphLog's rows, all batches together). */
  private graphLogRows = 0;
  /** Rows the graph's build from the table inserted at a time (its history starts there). */
  private graphChunk = GRAPH_BUILD_CHUNK;

  private constructor(
    readonly table: EmbeddingTable,
    private readonly encode: DocumentEncoder,
    readonly opts: EnvironmentOptions,
  ) {
    this.graph = this.emptyGraph();
  }

  private emptyGraph(): HnswGraph | null {
    return this.opts.refresh.mode === 'exact' ? null : new HnswGraph(this.table.dim, this.opts.graph ?? DEFAULT_GRAPH);
  }

  /** Allocates the table (checking memory first), encodes every document at version 0 and builds the graph. */
  static create(
    rows: number,
    dim: number,
    encode: DocumentEncoder,
    opts: EnvironmentOptions,
    onProgress?: (done: number, total: number) => void,
  ): RetrievalEnvironment {
    const env = new RetrievalEnvironment(
      new EmbeddingTable(rows, dim, opts.maxTableBytes ?? defaultTableLimit()),
      encode,
      opts,
    );
    const chunk = ENCODE_CHUNK;
    for (let start = 0; start < rows; start += chunk) {
      const ids = Array.from({ length: Math.min(chunk, rows - start) }, (_, i) => start + i);
      env.write(ids, encode(ids), false);
      onProgress?.(Math.min(rows, start + chunk), rows);
    }
    env.versionMeans.set(0, env.exactMean());
    // the graph grew with the encoding, chunk by chunk, rows in order: what building it from the table in
    // chunks of that size grows, so it is recorded as that build, with no edits
    env.graphChunk = chunk;
    return env;
  }

  /**
   * A second environment over a copy of this one's state (what restore() takes from a snapshot), e.g.
   * the exact-mode twin of an audit, without encoding the corpus again.
   */
  twin(opts: EnvironmentOptions): RetrievalEnvironment {
    const s = this.snapshot();
    // the table's arrays are this environment's own; the graph edits a snapshot builds afresh
    return RetrievalEnvironment.restore(
      { ...s, vectors: s.vectors.slice(), versions: s.versions.slice() },
      s.rows,
      s.dim,
      this.encode,
      opts,
    );
  }

  /**
   * Replaces the graph by one built from the table, rows in order. Besides making the graph a function
   * of the table (exact resume), it drops the removed nodes that every upsert leaves behind in usearch.
   */
  rebuildGraph(): void {
    this.graph = this.buildGraph((r) => this.table.row(r), GRAPH_BUILD_CHUNK);
    this.graphChunk = GRAPH_BUILD_CHUNK;
    this.graphBase.clear();
    this.graphLog = [];
    this.graphLogRows = 0;
  }

  /** A graph of every row's given vector, inserted in row order, `chunk` rows a call (null in exact mode). */
  private buildGraph(vector: (row: number) => Float32Array, chunk: number): HnswGraph | null {
    const g = this.emptyGraph();
    if (g) {
      for (let start = 0; start < this.table.rows; start += chunk) {
        const rows = Array.from({ length: Math.min(chunk, this.table.rows - start) }, (_, i) => start + i);
        g.upsert(rows, rows.map(vector));
      }
    }
    return g;
  }

  /** The graph a snapshot's edits describe: built from the table as it was then, and every upsert replayed. */
  private replayGraph(edits: GraphEdits): void {
    const d = this.table.dim;
    const base = new Map(edits.baseRows.map((r, i) => [r, edits.baseVectors.slice(i * d, (i + 1) * d)]));
    this.graph = this.buildGraph((r) => base.get(r) ?? this.table.row(r), edits.chunk);
    if (!this.graph) return; // exact mode keeps no graph, and so no edits
    this.graphChunk = edits.chunk;
    this.graphBase = base;
    let at = 0;
    this.graphLog = edits.batches.map((rows) => {
      const vectors = rows.map((_, i) => edits.vectors.slice((at + i) * d, (at + i + 1) * d));
      at += rows.length;
      this.graph?.upsert(rows, vectors);
      return { rows: [...rows], vectors };
    });
    this.graphLogRows = edits.batches.reduce((n, rows) => n + rows.length, 0);
  }

  snapshot(): EnvironmentSnapshot {
    const held = new Set(this.table.versions);
    const means = [...this.versionMeans]
      .filter(([v]) => held.has(v))
      .sort(([a], [b]) => a - b)
      .map(([version, mean]) => ({ version, mean }));
    return {
      version: this.version,
      steps: this.steps,
      rows: this.table.rows,
      dim: this.table.dim,
      vectors: this.table.vectors,
      versions: this.table.versions,
      means,
      graphEdits: this.graph ? this.edits() : NO_GRAPH_EDITS,
    };
  }

  private edits(): GraphEdits {
    const d = this.table.dim;
    const baseVectors = new Float32Array(this.graphBase.size * d);
    [...this.graphBase.values()].forEach((v, i) => baseVectors.set(v, i * d));
    const vectors = new Float32Array(this.graphLog.reduce((n, b) => n + b.rows.length, 0) * d);
    let at = 0;
    for (const b of this.graphLog) for (const v of b.vectors) vectors.set(v, d * at++);
    return {
      chunk: this.graphChunk,
      baseRows: [...this.graphBase.keys()],
      baseVectors,
      batches: this.graphLog.map((b) => [...b.rows]),
      vectors,
    };
  }

  /**
   * The environment a snapshot describes, with the graph its edits describe: it continues exactly as the
   * snapshotted one does. The table takes over the snapshot's arrays (a corpus
   * is never held twice), so restore from a copy, not from a live environment's snapshot. Throws when the
   * snapshot does not fit these rows or dimensions (another corpus or model).
   */
  static restore(
    snap: EnvironmentSnapshot,
    rows: number,
    dim: number,
    encode: DocumentEncoder,
    opts: EnvironmentOptions,
  ): RetrievalEnvironment {
    if (snap.rows !== rows || snap.dim !== dim)
      throw new Error(
        `the saved environment has ${snap.rows} documents × ${snap.dim} dimensions, this run has ${rows} × ` +
          `${dim} (another corpus, data.maxDocuments or model?)`,
      );
    const table = new EmbeddingTable(rows, dim, opts.maxTableBytes ?? defaultTableLimit(), {
      vectors: snap.vectors,
      versions: snap.versions,
    });
    const env = new RetrievalEnvironment(table, encode, opts);
    env.version = snap.version;
    env.steps = snap.steps;
    for (const { version, mean } of snap.means) {
      if (mean.length !== dim)
        throw new Error(`the saved environment's mean at version ${version} has ${mean.length} values, not ${dim}`);
      env.versionMeans.set(version, Float64Array.from(mean));
    }
    const e = snap.graphEdits;
    if (!(Number.isInteger(e.chunk) && e.chunk >= 1))
      throw new Error(`the saved environment's graph was built ${e.chunk} rows at a time, not a whole number ≥ 1`);
    if (e.baseVectors.length !== e.baseRows.length * dim || e.vectors.length !== e.batches.flat().length * dim)
      throw new Error(`the saved environment's graph edits do not hold one ${dim}-d vector per row they name`);
    if ([...e.baseRows, ...e.batches.flat()].some((r) => !(Number.isInteger(r) && r >= 0 && r < rows)))
      throw new Error(`the saved environment's graph edits name a row outside 0..${rows - 1}`);
    env.replayGraph(e);
    return env;
  }

  /** The policy changed (an optimiser update): every row is now one version older. */
  advance(): void {
    this.version++;
  }

  /** Re-encodes exactly these rows with the current policy (table and graph). */
  refreshRows(rows: readonly number[]): void {
    if (rows.length === 0) return;
    this.write(rows, this.encode(rows));
  }

  private graphSeconds = 0;
  /**
   * Estimated corpus mean embedding at each version (see driftCorrection). Version 0 (and any full
   * refresh) is the exact mean; at a later version it is the paired estimate mean_i(M[old version of i]
   * + new_i − old_i) over the rows the rolling refresh re-encoded: a row's own drift is small next to
   * the spread of contents, so a few dozen rows estimate the common shift well.
   */
  private readonly versionMeans = new Map<number, Float64Array>();

  private exactMean(): Float64Array {
    const d = this.table.dim,
      m = new Float64Array(d),
      v = this.table.vectors;
    for (let i = 0; i < this.table.rows; i++) for (let j = 0; j < d; j++) m[j] += v[i * d + j];
    return m.map((x) => x / this.table.rows);
  }

  /**
   * Paired estimate of the mean at the current version from rows before (old, oldVersions) and after (fresh) a refresh.
   */
  private estimateMean(
    old: readonly Float32Array[],
    oldVersions: readonly number[],
    fresh: readonly Float32Array[],
  ): void {
    const d = this.table.dim,
      m = new Float64Array(d);
    let n = 0;
    old.forEach((o, i) => {
      const base = this.versionMeans.get(oldVersions[i]);
      if (!base) return;
      for (let j = 0; j < d; j++) m[j] += base[j] + fresh[i][j] - o[j];
      n++;
    });
    if (n > 0)
      this.versionMeans.set(
        this.version,
        m.map((x) => x / n),
      );
  }

  /** Mean embedding of the corpus at a version, as estimated (null when unknown). */
  meanAt(version: number): Float64Array | null {
    return this.versionMeans.get(version) ?? null;
  }

  /** Per version (index), the score offset q·(m_now − m_v) for stale rows of that version. */
  private offsets(q: Float32Array): Float32Array | null {
    if (!this.opts.driftCorrection) return null;
    const now = this.meanAt(this.version);
    if (!now) return null;
    const off = new Float32Array(this.version + 1);
    for (let v = 0; v < this.version; v++) {
      const m = this.meanAt(v);
      if (!m) continue;
      let s = 0;
      for (let j = 0; j < q.length; j++) s += q[j] * (now[j] - m[j]);
      off[v] = s;
    }
    return off;
  }

  /**
   * Whether writing these rows rebuilds the graph from the table instead of being recorded as edits: when
   * it leaves every row at the current version (a full refresh: the rebuilt graph is the table's, and the
   * edits would hold it twice), or when the edits would then hold more vectors (changed rows' old vectors
   * and upserts) than the table has rows. The environment decides, not the trainer, because it holds the
   * edits; both conditions read only the table's versions and the edits, which a snapshot carries, so a
   * restored environment rebuilds at the same writes as the live one.
   */
  private rebuildsGraph(rows: readonly number[]): boolean {
    const written = new Set(rows);
    let staleWritten = 0,
      newBase = 0;
    for (const r of written) {
      if (this.table.versions[r] !== this.version) staleWritten++;
      if (!this.graphBase.has(r)) newBase++;
    }
    if (this.table.staleCount(this.version) === staleWritten) return true;
    return this.graphBase.size + newBase + this.graphLogRows + rows.length > this.table.rows;
  }

  /** Writes rows into the table and the graph; `record`: as an edit of the graph since its build from the table. */
  private write(rows: readonly number[], vectors: Float32Array[], record = true): void {
    if (vectors.length !== rows.length)
      throw new Error(`the document encoder returned ${vectors.length} vectors for ${rows.length} rows`);
    const g = this.graph,
      edit = g !== null && record && rows.length > 0;
    if (edit && this.rebuildsGraph(rows)) {
      rows.forEach((r, i) => this.table.set(r, vectors[i], this.version));
      const t = performance.now();
      this.rebuildGraph();
      this.graphSeconds += (performance.now() - t) / 1000;
      return;
    }
    rows.forEach((r, i) => {
      if (edit && !this.graphBase.has(r)) this.graphBase.set(r, Float32Array.from(this.table.row(r)));
      this.table.set(r, vectors[i], this.version);
    });
    if (g && rows.length > 0) {
      const t = performance.now();
      g.upsert(rows, vectors);
      this.graphSeconds += (performance.now() - t) / 1000;
      if (edit) {
        this.graphLog.push({ rows: [...rows], vectors: vectors.map((v) => Float32Array.from(v)) });
        this.graphLogRows += rows.length;
      }
    }
  }

  /** Graph neighbours of a row (empty in exact mode, which has no graph). */
  neighbours(row: number, k: number): number[] {
    return this.graph ? this.graph.neighbours(row, this.table.row(row), k) : [];
  }

  /** The refresh plan for these queries at the next step, without doing it (for tests and audits). */
  plan(queries: readonly StepQuery[]): RefreshPlan {
    const s = this.opts.refresh;
    const responses = queries.flatMap((q) => q.responses);
    const retrieved =
      this.graph && s.candidates > 0 ? this.graph.search(responses, s.candidates) : responses.map(() => []);
    const positives = [...new Set(queries.flatMap((q) => q.positives.map((p) => p.row)))];
    return planRefresh(
      {
        step: this.steps + 1,
        version: this.version,
        versions: this.table.versions,
        positives,
        retrieved,
        neighbours: (r, k) => this.neighbours(r, k),
      },
      s,
    );
  }

  /** The k best-scored rows at the current version (fewer when fewer are fresh). */
  private freshTop(scores: Float32Array, k: number): number[] {
    const masked = scores.map((x, r) => (this.table.versions[r] === this.version ? x : -Infinity));
    return topK(masked, k).filter((r) => this.table.versions[r] === this.version);
  }

  step(queries: readonly StepQuery[]): StepOutcome {
    const t0 = performance.now();
    this.graphSeconds = 0;
    const plan = this.plan(queries);
    const te = performance.now();
    const vectors = this.encode(plan.rows);
    // rolling rows come last in a plan: they are not chosen by the queries, so they sample the drift fairly; the
    // rows the queries chose (positives, their competitors) drift with the queries and never stand in for them
    const sample = plan.rows.length - plan.counts.rolling;
    const old = plan.rows.slice(sample).map((r) => Float32Array.from(this.table.row(r)));
    const oldVersions = plan.rows.slice(sample).map((r) => this.table.versions[r]);
    this.write(plan.rows, vectors);
    if (plan.counts.full > 0 || this.table.staleCount(this.version) === 0)
      this.versionMeans.set(this.version, this.exactMean());
    else if (plan.counts.rolling > 0) this.estimateMean(old, oldVersions, vectors.slice(sample));
    const encodeSeconds = (performance.now() - te) / 1000 - this.graphSeconds;
    this.steps++;
    const { kind, k } = this.opts.reward;
    const want = this.opts.returnCandidates ?? 0;
    const scores = new Float32Array(this.table.rows);
    const rewards: number[][] = [],
      candidates: number[][][] = [];
    for (const q of queries) {
      const rq: number[] = [],
        cq: number[][] = [];
      for (const e of q.responses) {
        this.table.scores(e, scores, this.offsets(e));
        rq.push(rankingReward(scores, q.positives, kind, k));
        cq.push(want > 0 ? this.freshTop(scores, want) : []);
      }
      rewards.push(rq);
      candidates.push(cq);
    }
    return {
      rewards,
      candidates,
      stats: {
        step: this.steps,
        version: this.version,
        encodes: plan.rows.length,
        counts: plan.counts,
        meanStaleness: this.table.meanStaleness(this.version),
        staleRows: this.table.staleCount(this.version),
        encodeSeconds,
        graphSeconds: this.graphSeconds,
        seconds: (performance.now() - t0) / 1000,
      },
    };
  }
}
