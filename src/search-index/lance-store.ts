/**
 * VectorStore on LanceDB (@lancedb/lancedb 0.31.0): a `vectors` table (key, id, vector) on a local path
 * or object storage (s3://, gs://, az://), for corpora whose HNSW graph would not fit one machine's memory.
 * Each add/delete is a LanceDB commit of its own; `commit(state)` records the docs.sqlite generation and
 * table identity in a one-row `meta` table (a meta table of an older search-r3 gets its `table_id` column
 * at its first commit here; until then, and while empty, no table is recorded). Search is exact (brute
 * force) until an ANN index is built on the table, which LanceDB recommends only beyond ~100k rows
 * (`createVectorIndex`).
 *
 * Every call runs as one that close() waits for, and one made after close() is refused in one sentence: LanceDB
 * answers a call on a closed table with its own 'Table vectors is closed', which names neither the store nor
 * what to do.
 */
import * as lancedb from '@lancedb/lancedb';
import { nativeFileSystemError } from '../io/file-system-cause.js';
import { CallsUnderWay } from './calls-under-way.js';
import { IndexError } from './index-error.js';
import { type StoreState, type VectorHit, type VectorRow, type VectorStore, reflects } from './vector-store.js';

const VECTORS = 'vectors';
const META = 'meta';
/** The meta column of the table identity ('' for none: LanceDB infers a column's type from its first value). */
const TABLE_ID = 'table_id';
/** The fewest rows IVF-PQ trains on: LanceDB's default PQ has 8-bit codes, 256 centroids per sub-vector. */
const PQ_TRAINING_ROWS = 256;

export class LanceStore implements VectorStore {
  readonly kind = 'lancedb' as const;

  private closing?: Promise<void>;
  /** What close() waits for. */
  private readonly calls = new CallsUnderWay();

  private constructor(
    readonly uri: string,
    private readonly db: lancedb.Connection,
    private table: lancedb.Table | null,
    readonly dimension: number,
  ) {}

  static async open(uri: string, dimension: number): Promise<LanceStore> {
    const db = await lancedb.connect(uri);
    return new LanceStore(uri, db, await openMade(db, VECTORS), dimension);
  }

  /** Runs `f` on the open store as a call close() waits for; refused once close() was called. */
  private use<T>(f: () => Promise<T>): Promise<T> {
    if (this.closing) {
      const again = `LanceStore.open(${JSON.stringify(this.uri)}, ${this.dimension})`;
      return Promise.reject(
        new IndexError(`the LanceDB store ${this.uri} was closed; open it again with ${again} to use it.`),
      );
    }
    // a full disk (or quota, read-only mount) reaches LanceDB's caller as its dump with '(os error 28)' in it
    const call = f().catch((e: unknown) => {
      throw nativeFileSystemError(e, this.uri) ?? e;
    });
    return this.calls.track(call);
  }

  add(rows: readonly VectorRow[]): Promise<void> {
    return this.use(async () => {
      if (rows.length === 0) return;
      const data = rows.map((r) => ({ key: r.key, id: r.id, vector: Array.from(r.vector) }));
      if (this.table) await this.table.add(data);
      else this.table = await createOver(this.db, VECTORS, data);
    });
  }

  remove(keys: readonly number[]): Promise<void> {
    return this.use(async () => {
      if (!this.table || keys.length === 0) return;
      for (let i = 0; i < keys.length; i += 1000) {
        const part = keys.slice(i, i + 1000);
        if (!part.every(Number.isInteger)) throw new Error('vector keys must be integers');
        await this.table.delete(`key IN (${part.join(', ')})`);
      }
    });
  }

  search(vector: Float32Array, k: number): Promise<VectorHit[]> {
    return this.use(async () => {
      if (!this.table || k <= 0) return [];
      const rows = (await this.table
        .vectorSearch(Array.from(vector))
        .distanceType('cosine')
        // the distance is named: LanceDB adds it to a projection unasked only for now, and warns that it does
        .select(['key', '_distance'])
        .limit(k)
        .toArray()) as { key: number | bigint; _distance: number }[];
      return rows.map((r) => ({ key: Number(r.key), score: 1 - r._distance }));
    });
  }

  /**
   * Builds an ANN index on the vectors (IVF-PQ by LanceDB's defaults); worthwhile for large tables only. A table
   * too small to train PQ's codebooks is refused in one sentence here, where LanceDB's refusal is a dump of the
   * Rust source paths it failed in.
   */
  createVectorIndex(): Promise<void> {
    return this.use(async () => {
      const rows = this.table ? await this.table.countRows() : 0;
      if (!this.table || rows < PQ_TRAINING_ROWS)
        throw new IndexError(
          `the LanceDB store ${this.uri} holds ${rows} vectors, and an IVF-PQ index trains on at least ` +
            `${PQ_TRAINING_ROWS}; search it as it is (exactly, by brute force) and build the index once it holds more.`,
        );
      await this.table.createIndex('vector', { config: lancedb.Index.ivfPq({ distanceType: 'cosine' }) });
    });
  }

  commit(state: StoreState): Promise<void> {
    return this.use(async () => {
      const values = { generation: state.generation, [TABLE_ID]: state.table ?? '' };
      const meta = await openMade(this.db, META);
      if (meta) {
        if (!(await meta.schema()).fields.some((f) => f.name === TABLE_ID))
          await meta.addColumns([{ name: TABLE_ID, valueSql: "''" }]);
        await meta.update({ values });
      } else {
        await createOver(this.db, META, [values]);
      }
    });
  }

  committed(): Promise<StoreState> {
    return this.use(() => this.committedState());
  }

  private async committedState(): Promise<StoreState> {
    const meta = await openMade(this.db, META);
    if (!meta) return { generation: 0 };
    const rows = (await meta.query().limit(1).toArray()) as {
      generation: number | bigint;
      [TABLE_ID]?: string | null;
    }[];
    if (rows.length === 0) return { generation: 0 };
    const table = rows[0][TABLE_ID];
    return { generation: Number(rows[0].generation), ...(table ? { table } : {}) };
  }

  reload(state: StoreState): Promise<boolean> {
    return this.use(async () => {
      if (!this.table) this.table = await openMade(this.db, VECTORS);
      else await this.table.checkoutLatest();
      // not this.committed(), which a close() called meanwhile refuses: this call is under way
      return reflects(await this.committedState(), state);
    });
  }

  clear(): Promise<void> {
    return this.use(async () => {
      if ((await this.db.tableNames()).includes(VECTORS)) await this.db.dropTable(VECTORS);
      this.table = null;
    });
  }

  size(): Promise<number> {
    return this.use(async () => {
      return this.table ? this.table.countRows() : 0;
    });
  }

  /** Closes the table and the connection once the calls under way are answered; closing twice waits for the same. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.calls.settled();
      this.table?.close();
      this.db.close();
    })();
    return this.closing;
  }
}

/**
 * Table `name`, or null when there is none. LanceDB lists a table as soon as createTable registers it, before
 * the first version of its data is written: a process killed in between leaves a name that openTable answers
 * with "Table 'vectors' was not found". That is no table yet, as for LanceDB's own createTable, which makes it.
 */
async function openMade(db: lancedb.Connection, name: string): Promise<lancedb.Table | null> {
  if (!(await db.tableNames()).includes(name)) return null;
  try {
    return await db.openTable(name);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(`Table '${name}' was not found`)) return null;
    throw e;
  }
}

/**
 * Creates table `name`, over one listed without a version (openMade): 'overwrite' there, as 'create' warns on
 * stderr that it finds no dataset; 'create' where none is listed, as 'overwrite' warns the same there.
 */
async function createOver(
  db: lancedb.Connection,
  name: string,
  data: Record<string, unknown>[],
): Promise<lancedb.Table> {
  const listed = (await db.tableNames()).includes(name);
  return db.createTable(name, data, listed ? { mode: 'overwrite' } : {});
}
