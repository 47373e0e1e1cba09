/**
 * docs.sqlite: every document's id, title, text, metadata, content hash, its exact f32 vector and its
 * status ('pending' until encoded, then 'indexed'), plus a generation counter bumped by every commit.
 * Staging documents as 'pending' first and encoding them in a fixed order (longest first, then id) is
 * what makes a killed run resumable bit-exactly: the remaining pending rows are exactly the chunks the
 * killed run had not committed, and they are chunked the same way again.
 *
 * SQLite checks the file's structure but not the bytes of a row, so each row carries checksums: `hash`
 * covers title, text and metadata, `vhash` the vector, and `crc` ties them to the id, key and status.
 * Every read verifies what it returns, so a flipped bit surfaces as one sentence naming the file rather
 * than as a wrong text or a silently different ranking. The table opens read-only for searching
 * (rollback journal, so a reader creates no file beside it), read-write for indexing.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { contentHash, documentText, type SourceDocument } from './document-source.js';
import { IndexError } from './index-error.js';

export const DOCS_FILE = 'docs.sqlite';

export interface StoredDocument {
  id: string;
  title: string;
  text: string;
  metadata?: Record<string, unknown>;
}

export interface PendingDocument extends StoredDocument {
  /** The key of the vector this document had before (an update), or null. */
  oldKey: number | null;
}

/** How the documents given to stage() relate to what the table held. */
export interface StageCounts {
  /** Ids the table did not have. */
  added: number;
  /** Ids whose content differs from what was indexed or pending. */
  changed: number;
  /** Same content, already indexed: nothing to do. */
  unchanged: number;
  /** Same content, still pending from an earlier (killed) run. */
  resumed: number;
  /** Rows that failed their checksums and were staged again from the given content. */
  repaired: number;
}

interface Row {
  id: string;
  title: string;
  text: string;
  metadata: string | null;
  hash: string;
  key: number | null;
  status: string;
  vhash: string | null;
  crc: string | null;
}

const BASE_COLUMNS = 'id, title, text, metadata, hash, key, status';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT,
    hash TEXT NOT NULL,
    key INTEGER UNIQUE,
    vector BLOB,
    status TEXT NOT NULL CHECK (status IN ('pending', 'indexed')),
    vhash TEXT,
    crc TEXT
  );
  CREATE INDEX IF NOT EXISTS docs_pending ON docs (status, length(title) + length(text) DESC, id);
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
  INSERT OR IGNORE INTO meta VALUES ('generation', 0), ('next_key', 1);
  CREATE TABLE IF NOT EXISTS info (k TEXT PRIMARY KEY, v TEXT NOT NULL);
`;

function vectorHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

function rowCrc(r: { id: string; hash: string; key: number | null; status: string; vhash: string | null }): string {
  return createHash('sha256')
    .update(`${r.id}\0${r.hash}\0${r.key ?? ''}\0${r.status}\0${r.vhash ?? ''}`)
    .digest('hex')
    .slice(0, 16);
}

/** One sentence for a failed SQLite call on `file`, saying what the user can do about it. */
export function sqliteFailure(file: string, e: unknown): IndexError {
  const code = (e as { code?: unknown }).code;
  const why = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')
    return new IndexError(`${file} is locked by another process (${why}); try again once it has finished.`);
  if (code === 'SQLITE_READONLY_ROLLBACK') {
    return new IndexError(
      `${file} holds an unfinished write of a process that was killed; run 'search-r3 index' on this folder ` +
        `once to roll it back, then search again.`,
    );
  }
  if (code === 'SQLITE_FULL')
    return new IndexError(
      `${file}: the disk is full; free space and run the command again (nothing committed was lost).`,
    );
  if (typeof code === 'string' && code.startsWith('SQLITE_READONLY'))
    return new IndexError(`${file} cannot be written (${why}); check the folder's permissions.`);
  if (typeof code === 'string' && code.startsWith('SQLITE_CANTOPEN'))
    return new IndexError(`${file} cannot be opened (${why}); check that it exists and is readable.`);
  return damagedFile(file, why);
}

function damagedFile(file: string, why: string): IndexError {
  return new IndexError(
    `${file} is damaged (${why}); rebuild the index: move the folder away and run 'search-r3 index --input ` +
      `<your documents> --out <folder>' again.`,
  );
}

/**
 * What SQLite's integrity check finds wrong ([] when nothing). Unlike quick_check it compares every index with
 * its table: a flipped bit in an index entry passes quick_check, and a write through that index then leaves
 * the file malformed for every later read.
 */
function integrityProblems(db: Database.Database): string[] {
  return (db.pragma('integrity_check') as { integrity_check: string }[])
    .flatMap((r) => r.integrity_check.split('\n'))
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'ok' && !l.startsWith('***'));
}

function isSqliteError(e: unknown): boolean {
  return e instanceof Database.SqliteError;
}

export class DocumentTable {
  private constructor(
    readonly file: string,
    readonly db: Database.Database,
    readonly readOnly: boolean,
    /** Whether rows carry checksums (tables written by older versions have none until a writer adds them). */
    private readonly rowChecksums: boolean,
  ) {}

  /** Opens (creating when missing) for indexing: checks the file's structure, adds what older versions lacked. */
  static openForWriting(file: string): DocumentTable {
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      let problems = integrityProblems(db);
      // an index holds nothing of its own: damage confined to indexes is rebuilt from the tables
      if (problems.length > 0 && problems.every((p) => /\bindex \S+$/.test(p))) {
        db.exec('REINDEX');
        problems = integrityProblems(db);
      }
      if (problems.length > 0) throw damagedFile(file, `SQLite's check says: ${problems[0]}`);
      // a rollback journal: readers then need no -wal/-shm files beside the database (they may not create any)
      db.pragma('journal_mode = DELETE');
      // FULL: a committed chunk survives a power cut, not only a killed process.
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
      const t = new DocumentTable(file, db, false, true);
      t.addRowChecksums();
      // a damaged counter must not hand out a key that is taken
      db.prepare("UPDATE meta SET v = max(v, (SELECT coalesce(max(key), 0) + 1 FROM docs)) WHERE k = 'next_key'").run();
      return t;
    } catch (e) {
      db?.close();
      if (e instanceof IndexError) throw e;
      if (isSqliteError(e)) throw sqliteFailure(file, e);
      throw e;
    }
  }

  /** Opens an existing table for reading only: nothing in or beside the file is created or changed. */
  static openReadOnly(file: string): DocumentTable {
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      const tables = new Set(
        (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
          (r) => r.name,
        ),
      );
      for (const t of ['docs', 'meta']) if (!tables.has(t)) throw damagedFile(file, `it has no '${t}' table`);
      const columns = new Set((db.prepare('PRAGMA table_info(docs)').all() as { name: string }[]).map((c) => c.name));
      return new DocumentTable(file, db, true, columns.has('crc'));
    } catch (e) {
      db?.close();
      if (e instanceof IndexError) throw e;
      if (isSqliteError(e)) throw sqliteFailure(file, e);
      throw e;
    }
  }

  /** The columns of a Row (a table from before checksums reads them as NULL). */
  private get columns(): string {
    return `${BASE_COLUMNS}, ${this.rowChecksums ? 'vhash, crc' : 'NULL AS vhash, NULL AS crc'}`;
  }

  /** Runs a read or write, turning SQLite's failures into one sentence naming the file. */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (isSqliteError(e)) throw sqliteFailure(this.file, e);
      throw e;
    }
  }

  private damaged(why: string): IndexError {
    return damagedFile(this.file, why);
  }

  /** Fills the checksums of rows written before they existed (one pass, once per older index). */
  private addRowChecksums(): void {
    const columns = new Set(
      (this.db.prepare('PRAGMA table_info(docs)').all() as { name: string }[]).map((c) => c.name),
    );
    if (columns.has('crc') && this.db.prepare('SELECT 1 FROM docs WHERE crc IS NULL LIMIT 1').get() === undefined)
      return;
    // one transaction, so a reader never sees some rows with checksums and others without; in slices,
    // since a statement being iterated cannot share its connection with the updates
    this.db.transaction(() => {
      if (!columns.has('crc'))
        this.db.exec('ALTER TABLE docs ADD COLUMN vhash TEXT; ALTER TABLE docs ADD COLUMN crc TEXT;');
      const rows = this.db.prepare('SELECT id, hash, key, status, vector FROM docs WHERE crc IS NULL LIMIT 4096');
      const set = this.db.prepare('UPDATE docs SET vhash = ?, crc = ? WHERE id = ?');
      for (;;) {
        const got = rows.all() as {
          id: string;
          hash: string;
          key: number | null;
          status: string;
          vector: Buffer | null;
        }[];
        if (got.length === 0) break;
        for (const r of got) {
          const vhash = r.vector ? vectorHash(r.vector) : null;
          set.run(vhash, rowCrc({ ...r, vhash }), r.id);
        }
      }
    })();
  }

  private meta(k: string): number {
    const row = this.db.prepare('SELECT v FROM meta WHERE k = ?').get(k) as { v: unknown } | undefined;
    if (!row || !Number.isInteger(row.v)) throw this.damaged(`its '${k}' counter is missing`);
    return row.v as number;
  }

  private setMeta(k: string, v: number): void {
    this.db.prepare('UPDATE meta SET v = ? WHERE k = ?').run(v, k);
  }

  generation(): number {
    return this.guard(() => this.meta('generation'));
  }

  /** A text value kept beside the documents (the manifest's copy), or undefined. */
  info(k: string): string | undefined {
    return this.guard(() => {
      const hasInfo =
        this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'info'").get() !== undefined;
      if (!hasInfo) return undefined;
      return (this.db.prepare('SELECT v FROM info WHERE k = ?').get(k) as { v: string } | undefined)?.v;
    });
  }

  setInfo(k: string, v: string): void {
    this.guard(() =>
      this.db.prepare('INSERT INTO info (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v').run(k, v),
    );
  }

  /**
   * Marks new and changed documents pending (unchanged ones are left alone) and says how many of each.
   * Ids in `damaged` (rows that failed their checksums) are staged again whatever their stored hash says.
   * One transaction per call: callers pass the input in slices.
   */
  stage(docs: readonly SourceDocument[], damaged: ReadonlySet<string> = new Set()): StageCounts {
    const counts: StageCounts = { added: 0, changed: 0, unchanged: 0, resumed: 0, repaired: 0 };
    this.guard(() => {
      const get = this.db.prepare('SELECT hash, status, key FROM docs WHERE id = ?');
      // an updated row keeps its old key, so the old vector can be removed from the store when the new one is committed
      const upsert = this.db.prepare(`INSERT INTO docs (id, title, text, metadata, hash, status, vhash, crc)
        VALUES (@id, @title, @text, @metadata, @hash, 'pending', NULL, @crc)
        ON CONFLICT(id) DO UPDATE SET title = excluded.title, text = excluded.text, metadata = excluded.metadata,
          hash = excluded.hash, status = 'pending', vector = NULL, vhash = NULL, crc = excluded.crc`);
      this.db.transaction(() => {
        for (const d of docs) {
          const hash = contentHash(d);
          const old = get.get(d.id) as { hash: string; status: string; key: number | null } | undefined;
          if (damaged.has(d.id)) counts.repaired++;
          else if (old && old.hash === hash) {
            if (old.status === 'indexed') counts.unchanged++;
            else counts.resumed++;
            continue;
          } else if (old) counts.changed++;
          else counts.added++;
          const metadata = d.metadata ? JSON.stringify(d.metadata) : null;
          const crc = rowCrc({ id: d.id, hash, key: old?.key ?? null, status: 'pending', vhash: null });
          upsert.run({ id: d.id, title: d.title, text: d.text, metadata, hash, crc });
        }
      })();
    });
    return counts;
  }

  pendingCount(): number {
    return this.guard(
      () => (this.db.prepare("SELECT count(*) AS n FROM docs WHERE status = 'pending'").get() as { n: number }).n,
    );
  }

  indexedCount(): number {
    return this.guard(
      () => (this.db.prepare("SELECT count(*) AS n FROM docs WHERE status = 'indexed'").get() as { n: number }).n,
    );
  }

  /** The next `n` pending documents in the fixed encoding order. */
  nextPending(n: number): PendingDocument[] {
    return this.guard(() => {
      const rows = this.db
        .prepare(
          `SELECT ${this.columns} FROM docs WHERE status = 'pending'
        ORDER BY length(title) + length(text) DESC, id LIMIT ?`,
        )
        .all(n) as Row[];
      return rows.map((r) => ({ ...this.verifiedDocument(r), oldKey: r.key }));
    });
  }

  /**
   * Stores the vectors of encoded documents and marks them indexed, in one transaction. Each gets a fresh
   * key (an update never reuses the old one, so a stale HNSW entry cannot be mistaken for the new vector).
   */
  commitVectors(
    docs: readonly PendingDocument[],
    vectors: readonly Float32Array[],
  ): { generation: number; keys: number[] } {
    let keys: number[] = [];
    let generation = 0;
    this.guard(() => {
      const hashOf = this.db.prepare('SELECT hash FROM docs WHERE id = ?');
      const set = this.db.prepare(
        "UPDATE docs SET key = ?, vector = ?, status = 'indexed', vhash = ?, crc = ? WHERE id = ?",
      );
      this.db.transaction(() => {
        let next = this.meta('next_key');
        keys = docs.map(() => next++);
        docs.forEach((d, i) => {
          const bytes = Buffer.from(vectors[i].buffer, vectors[i].byteOffset, vectors[i].byteLength);
          const { hash } = hashOf.get(d.id) as { hash: string };
          const vhash = vectorHash(bytes);
          set.run(keys[i], bytes, vhash, rowCrc({ id: d.id, hash, key: keys[i], status: 'indexed', vhash }), d.id);
        });
        this.setMeta('next_key', next);
        generation = this.meta('generation') + 1;
        this.setMeta('generation', generation);
      })();
    });
    return { generation, keys };
  }

  /** Deletes documents; returns the keys of their vectors (to remove from the vector store) and the new generation. */
  delete(ids: readonly string[]): { generation: number; keys: number[]; deleted: string[] } {
    const keys: number[] = [];
    const deleted: string[] = [];
    let generation = 0;
    this.guard(() => {
      const get = this.db.prepare('SELECT key FROM docs WHERE id = ?');
      const del = this.db.prepare('DELETE FROM docs WHERE id = ?');
      this.db.transaction(() => {
        for (const id of ids) {
          const row = get.get(id) as { key: number | null } | undefined;
          if (!row) continue;
          if (row.key !== null) keys.push(row.key);
          del.run(id);
          deleted.push(id);
        }
        generation = this.meta('generation') + (deleted.length > 0 ? 1 : 0);
        this.setMeta('generation', generation);
      })();
    });
    return { generation, keys, deleted };
  }

  /** Ids of the rows whose content, vector or row checksum does not match (reads every row). */
  damagedIds(): string[] {
    return this.guard(() => {
      const out: string[] = [];
      for (const r of this.db.prepare(`SELECT ${this.columns}, vector FROM docs`).iterate() as Iterable<
        Row & { vector: Buffer | null }
      >) {
        try {
          this.verifiedDocument(r);
          if (r.status === 'indexed') this.verifiedVector(r, r.vector);
        } catch (e) {
          if (!(e instanceof IndexError)) throw e;
          out.push(r.id);
        }
      }
      return out;
    });
  }

  /** Ids of every stored document. */
  allIds(): string[] {
    return this.guard(() =>
      (this.db.prepare('SELECT id FROM docs ORDER BY id').all() as { id: string }[]).map((r) => r.id),
    );
  }

  byKeys(keys: readonly number[]): Map<number, StoredDocument> {
    return this.guard(() => {
      const get = this.db.prepare(`SELECT ${this.columns} FROM docs WHERE key = ? AND status = 'indexed'`);
      const out = new Map<number, StoredDocument>();
      for (const k of keys) {
        const r = get.get(k) as Row | undefined;
        if (r) out.set(k, this.verifiedDocument(r));
      }
      return out;
    });
  }

  get(id: string): (StoredDocument & { status: string; vector: Float32Array | null }) | undefined {
    return this.guard(() => {
      const r = this.db.prepare(`SELECT ${this.columns}, vector FROM docs WHERE id = ?`).get(id) as
        (Row & { vector: Buffer | null }) | undefined;
      if (!r) return undefined;
      return {
        ...this.verifiedDocument(r),
        status: r.status,
        vector: r.vector ? this.verifiedVector(r, r.vector) : null,
      };
    });
  }

  /** Every indexed vector with its key and id, in key order (for rebuilding a vector store). */
  *indexedVectors(batch = 4096): Generator<{ key: number; id: string; vector: Float32Array }[]> {
    let after = 0;
    for (;;) {
      const rows = this.guard(() => {
        const q = this.db.prepare(`SELECT ${this.columns}, vector FROM docs
          WHERE status = 'indexed' AND key > ? ORDER BY key LIMIT ?`);
        const got = q.all(after, batch) as (Row & { key: number; vector: Buffer | null })[];
        return got.map((r) => ({ key: r.key, id: r.id, vector: this.verifiedVector(r, r.vector) }));
      });
      if (rows.length === 0) return;
      yield rows;
      after = rows[rows.length - 1].key;
    }
  }

  /** Every indexed document's id and embedded text, for BM25. */
  indexedTexts(): { id: string; text: string }[] {
    return this.guard(() =>
      (this.db.prepare(`SELECT ${this.columns} FROM docs WHERE status = 'indexed' ORDER BY id`).all() as Row[]).map(
        (r) => ({ id: r.id, text: documentText(this.verifiedDocument(r)) }),
      ),
    );
  }

  /** The row as a document, after checking its content and row checksums. */
  private verifiedDocument(r: Row): StoredDocument {
    let metadata: Record<string, unknown> | undefined;
    if (r.metadata !== null) {
      try {
        metadata = JSON.parse(r.metadata) as Record<string, unknown>;
      } catch {
        throw this.damaged(`the metadata of document '${r.id}' is not valid JSON`);
      }
    }
    const doc: StoredDocument = { id: r.id, title: r.title, text: r.text, ...(metadata ? { metadata } : {}) };
    if (contentHash(doc) !== r.hash) throw this.damaged(`the text of document '${r.id}' does not match its checksum`);
    this.verifyRow(r);
    return doc;
  }

  private verifiedVector(
    r: Pick<Row, 'id' | 'hash' | 'key' | 'status' | 'vhash' | 'crc'>,
    blob: Buffer | null,
  ): Float32Array {
    if (!blob || blob.byteLength % 4 !== 0) throw this.damaged(`the vector of document '${r.id}' is missing or cut`);
    if (this.rowChecksums && vectorHash(blob) !== r.vhash)
      throw this.damaged(`the vector of document '${r.id}' does not match its checksum`);
    this.verifyRow(r);
    return blobToVector(blob);
  }

  private verifyRow(r: Pick<Row, 'id' | 'hash' | 'key' | 'status' | 'vhash' | 'crc'>): void {
    if (this.rowChecksums && rowCrc(r) !== r.crc)
      throw this.damaged(`the row of document '${r.id}' does not match its checksum`);
  }

  close(): void {
    this.db.close();
  }
}

function blobToVector(b: Buffer): Float32Array {
  // copy: the Buffer may sit at an unaligned offset of a shared pool
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
