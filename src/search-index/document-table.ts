/**
 * docs.sqlite: table `docs` holds what search ranks: every indexed document's id, title, text, metadata,
 * content hash and exact f32 vector, plus a generation counter bumped by every commit. Table `staged`
 * holds the new and changed documents waiting for their vectors (pending). A commit moves a staged
 * document into `docs` together with its vector in one transaction, so a changed document is searched
 * with its previous text and vector until its new vector is committed, and an interrupted update leaves
 * every document searchable as the last commit left it. Encoding staged documents in a fixed order
 * (longest first, then id) is what makes a killed run resumable bit-exactly: the remaining staged rows
 * are exactly the chunks the killed run had not committed, and they are chunked the same way again.
 * (Older versions staged a document in its own row, status 'pending'; a writer moves such rows to `staged`.)
 *
 * SQLite checks the file's structure but not the bytes of a row, so each row carries checksums: `hash`
 * covers title, text and metadata, `vhash` the vector, and `crc` ties them to the id, key and status.
 * Every read verifies what it returns, so a flipped bit surfaces as one sentence naming the file rather
 * than as a wrong text or a silently different ranking. The table opens read-only for searching
 * (rollback journal, so a reader creates no file beside it), read-write for indexing.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { NO_INODES, outOfInodes } from '../io/file-system-cause.js';
import { contentHash, documentText, storedDocument, wellFormedId, type SourceDocument } from './document-source.js';
import { IndexError } from './index-error.js';
import type { VectorRow } from './vector-store.js';

export const DOCS_FILE = 'docs.sqlite';

export interface StoredDocument {
  id: string;
  title: string;
  text: string;
  metadata?: Record<string, unknown>;
}

/** A staged document: the content its vector is encoded from. */
export type PendingDocument = StoredDocument;

/** How the documents given to stage() relate to what the table held. */
export interface StageCounts {
  /** Ids the table did not have. */
  added: number;
  /** Ids whose content differs from what was indexed or staged. */
  changed: number;
  /** Same content as indexed: nothing to do (a change staged meanwhile and given back is dropped). */
  unchanged: number;
  /** Same content, still staged by an earlier (killed) run. */
  resumed: number;
  /** Rows that failed their checksums and were staged again from the given content. */
  repaired: number;
}

interface Named {
  name: string;
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

/** A row as its vector is read and checked: no texts. */
type StoredVectorRow = Pick<Row, 'id' | 'hash' | 'key' | 'status' | 'vhash' | 'crc'> & { vector: Buffer | null };

const BASE_COLUMNS = 'id, title, text, metadata, hash, key, status';
/** The info key of the table's identity (see DocumentTable.identity). */
const IDENTITY = 'table_id';
/** A staged row read as a Row: no key or vector yet, its checksum taken as for a 'pending' row. */
const STAGED_COLUMNS = "id, title, text, metadata, hash, NULL AS key, 'pending' AS status, NULL AS vhash, crc";

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
  CREATE TABLE IF NOT EXISTS staged (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT,
    hash TEXT NOT NULL,
    crc TEXT
  );
  CREATE INDEX IF NOT EXISTS staged_order ON staged (length(title) + length(text) DESC, id);
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

function stagedCrc(id: string, hash: string): string {
  return rowCrc({ id, hash, key: null, status: 'pending', vhash: null });
}

/**
 * A write that the machine refused: SQLite reports a full disk as SQLITE_FULL, but a quota (EDQUOT), the file size
 * limit (EFBIG) or a failing disk only as a disk I/O error, with no system code to tell them apart. The file is as
 * its last commit left it (the transaction rolls back), so these are no damage, and rebuilding is the wrong advice.
 */
const REFUSED_WRITE = new Set([
  'SQLITE_IOERR_WRITE',
  'SQLITE_IOERR_FSYNC',
  'SQLITE_IOERR_DIR_FSYNC',
  'SQLITE_IOERR_TRUNCATE',
]);

/** One sentence for a failed SQLite call on `file`, saying what the user can do about it. */
export function sqliteFailure(file: string, e: unknown): IndexError {
  const code = (e as { code?: unknown }).code;
  const why = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')
    return new IndexError(`${file} is locked by another process (${why}); try again once it has finished.`);
  if (code === 'SQLITE_READONLY_ROLLBACK') {
    return new IndexError(
      `${file} holds an unfinished write of a process that was killed, which this process may not roll back ` +
        `(an index run holds the write lock, or the folder is not writable for it); run 'search-r3 index' on ` +
        `this folder once to roll it back, then search again.`,
    );
  }
  if (code === 'SQLITE_FULL')
    return new IndexError(
      `${file}: the disk is full; free space and run the command again (nothing committed was lost).`,
    );
  if (typeof code === 'string' && REFUSED_WRITE.has(code)) {
    return new IndexError(
      `${file} could not be written (${why}): the disk may be full, over its quota or past the file size limit ` +
        `(ulimit -f); free space or raise the limit, then run the command again (nothing committed was lost).`,
    );
  }
  if (typeof code === 'string' && code.startsWith('SQLITE_READONLY'))
    return new IndexError(`${file} cannot be written (${why}); check the folder's permissions.`);
  if (typeof code === 'string' && code.startsWith('SQLITE_CANTOPEN')) {
    // SQLite cannot create its journal beside the file either: the folder's file system is out of inodes
    if (outOfInodes(path.resolve(file)))
      return new IndexError(`${file} cannot be opened: ${NO_INODES[0]}; ${NO_INODES[1]}, then run the command again.`);
    return new IndexError(`${file} cannot be opened (${why}); check that it exists and is readable.`);
  }
  return damagedFile(file, why);
}

/** An error of a call on `file` as the user sees it: SQLite's as one sentence, others unchanged. */
function failure(file: string, e: unknown): unknown {
  if (sqliteBuildMissing(e)) return new IndexError(SQLITE_BUILD_MISSING);
  return isSqliteError(e) ? sqliteFailure(file, e) : e;
}

/**
 * better-sqlite3 without its native build, which its install script makes: npm 12 and later run a dependency's
 * install script only when the project approved it (package.json's allowScripts), so a plain `npm install
 * search-r3` leaves it unbuilt. Node's error lists a dozen paths it looked in; what the user needs is the fix.
 */
function sqliteBuildMissing(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith('Could not locate the bindings file');
}

const SQLITE_BUILD_MISSING =
  "better-sqlite3, which keeps an index's documents, has no native build: its install script failed or did " +
  "not run (npm 12 and later run a dependency's install script only once the project approves it). In your " +
  'project run: npm install-scripts approve better-sqlite3 search-r3 && npm rebuild better-sqlite3 search-r3';

/**
 * Rolls back the journal a killed writer left beside `file` (the unfinished transaction), as the next writer
 * would first thing: a connection that may write restores the last commit when it first reads the file.
 * SQLite treats a journal as unfinished only while no connection holds the file's write lock, so a running
 * writer's transaction is never touched. Returns whether the journal is gone: false when this process may not
 * write the file or its folder (a read-only mount, another user's index).
 */
function rollBackJournal(file: string): boolean {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true });
    db.prepare('SELECT count(*) FROM sqlite_master').get();
  } catch {
    return false;
  } finally {
    db?.close();
  }
  return !existsSync(`${file}-journal`);
}

/**
 * The columns of `docs` that every version of the index has written. A docs.sqlite with tables is an index's when
 * its `docs` table has them: a table of that name alone is no sign (another program may keep its documents in one),
 * and a run killed while making the tables left them all or none, or (older versions) this table first.
 */
const OWN_DOCS_COLUMNS = ['id', 'title', 'text', 'metadata', 'hash', 'key', 'vector', 'status'];

/**
 * Refuses another program's SQLite database that happens to be called docs.sqlite: a writer would add its tables
 * to it and switch its journal mode, or, where it has a table of the same name, call it damaged.
 */
function refuseForeignDatabase(db: Database.Database, file: string): void {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Named[]).map(
    (t) => t.name,
  );
  if (tables.length === 0) return;
  const columns = new Set((db.prepare('PRAGMA table_info(docs)').all() as Named[]).map((c) => c.name));
  if (OWN_DOCS_COLUMNS.every((c) => columns.has(c))) return;
  throw new IndexError(
    `${file} is another program's database (its tables: ${tables.slice(0, 5).join(', ')}), and an index would add ` +
      'its own to it; give the index a folder of its own, or move the file away.',
  );
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
    private readonly db: Database.Database,
    readonly readOnly: boolean,
    /** Whether rows carry checksums (tables written by older versions have none until a writer adds them). */
    private readonly rowChecksums: boolean,
    /** Whether a reader may roll back a journal that a killed writer left (no writer runs). */
    private readonly mayRollBack: () => boolean = () => false,
  ) {}

  /** Opens (creating when missing) for indexing: checks the file's structure, adds what older versions lacked. */
  static openForWriting(file: string): DocumentTable {
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      // before anything that writes (REINDEX, the journal mode): another program's file is left as it was
      refuseForeignDatabase(db, file);
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
      // one transaction: a run killed while it creates the tables leaves none of them, not a docs table
      // without its meta table, which readers would take for a damaged index
      db.transaction(() => db!.exec(SCHEMA))();
      const t = new DocumentTable(file, db, false, true);
      t.addRowChecksums();
      t.moveLegacyPending();
      // two writers opening a table without one at once must not give it two (each would key bm25.bin apart)
      db.prepare('INSERT OR IGNORE INTO info (k, v) VALUES (?, ?)').run(IDENTITY, randomUUID());
      // a damaged counter must not hand out a key that is taken
      db.prepare("UPDATE meta SET v = max(v, (SELECT coalesce(max(key), 0) + 1 FROM docs)) WHERE k = 'next_key'").run();
      return t;
    } catch (e) {
      db?.close();
      throw failure(file, e);
    }
  }

  /**
   * Opens an existing table for reading only: nothing in or beside the file is created or changed, except a
   * journal that a killed writer left, which is rolled back (see rollBackJournal) when `mayRollBack()` says
   * no writer is running.
   */
  static openReadOnly(file: string, mayRollBack: () => boolean = () => false): DocumentTable {
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      const probe = new DocumentTable(file, db, true, false, mayRollBack);
      const tables = probe.guard(
        () =>
          new Set(
            (db!.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Named[]).map((r) => r.name),
          ),
      );
      for (const t of ['docs', 'meta']) if (!tables.has(t)) throw damagedFile(file, `it has no '${t}' table`);
      const columns = new Set((db.prepare('PRAGMA table_info(docs)').all() as Named[]).map((c) => c.name));
      return new DocumentTable(file, db, true, columns.has('crc'), mayRollBack);
    } catch (e) {
      db?.close();
      throw failure(file, e);
    }
  }

  /**
   * Opens an existing table to look before a writer opens it (which upgrades an older table's schema and
   * journal): nothing is written, and unlike a read-only connection, closing this one removes the -wal and -shm
   * files that an older index's WAL journal makes SQLite create. undefined where the file is not an index's table
   * as it stands, or cannot be read: the writer's own open then says why.
   */
  static openToLook(file: string): DocumentTable | undefined {
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { fileMustExist: true });
      refuseForeignDatabase(db, file);
      const t = new DocumentTable(file, db, true, false);
      for (const table of ['docs', 'meta']) if (!t.hasTable(table)) throw damagedFile(file, `no '${table}' table`);
      return t;
    } catch {
      db?.close();
      return undefined;
    }
  }

  /** The columns of a Row (a table from before checksums reads them as NULL). */
  private get columns(): string {
    return `${BASE_COLUMNS}, ${this.checksumColumns}`;
  }

  /** What verifiedVector checks a vector against: the row checksum covers the text by its hash alone. */
  private get vectorColumns(): string {
    return `id, hash, key, status, ${this.checksumColumns}, vector`;
  }

  private get checksumColumns(): string {
    return this.rowChecksums ? 'vhash, crc' : 'NULL AS vhash, NULL AS crc';
  }

  /**
   * Runs a read or write, turning SQLite's failures into one sentence naming the file. A reader that finds a
   * killed writer's journal rolls it back when it may, and reads again.
   */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      const hotJournal = (e as { code?: unknown }).code === 'SQLITE_READONLY_ROLLBACK';
      if (!(hotJournal && this.mayRollBack() && rollBackJournal(this.file))) throw failure(this.file, e);
    }
    try {
      return f();
    } catch (e) {
      throw failure(this.file, e);
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

  /**
   * Rows an older version staged in place (status 'pending', their indexed text and vector already
   * dropped) move to `staged`, where this version looks for what to encode. A row failing its checksum keeps
   * the checksum it had, so it is found damaged there too.
   */
  private moveLegacyPending(): void {
    const rows = this.db
      .prepare(`SELECT ${BASE_COLUMNS}, vhash, crc FROM docs WHERE status = 'pending'`)
      .all() as Row[];
    if (rows.length === 0) return;
    const put = this.db.prepare(
      'INSERT OR REPLACE INTO staged (id, title, text, metadata, hash, crc) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const drop = this.db.prepare('DELETE FROM docs WHERE id = ?');
    this.db.transaction(() => {
      for (const r of rows) {
        put.run(r.id, r.title, r.text, r.metadata, r.hash, rowCrc(r) === r.crc ? stagedCrc(r.id, r.hash) : r.crc);
        drop.run(r.id);
      }
      // an updated row kept its old key, whose vector may still be in the store: a new generation rebuilds it
      this.setMeta('generation', this.meta('generation') + 1);
    })();
  }

  /** Whether the table exists (a reader may open a file written before it did). */
  private hasTable(name: string): boolean {
    return this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
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

  /**
   * A random id given to the table when a writer first opens it: what a file derived from the documents (bm25.bin)
   * is matched on besides the generation, since a table made anew (docs.sqlite deleted and the index run again)
   * counts its generations from 0 again and can reach the very generation and document count of the one it
   * replaced. Undefined for a table no writer of this version has opened yet (a reader may not add it).
   */
  identity(): string | undefined {
    return this.info(IDENTITY);
  }

  /** A text value kept beside the documents (the manifest's copy), or undefined. */
  info(k: string): string | undefined {
    return this.guard(() => {
      if (!this.hasTable('info')) return undefined;
      return (this.db.prepare('SELECT v FROM info WHERE k = ?').get(k) as { v: string } | undefined)?.v;
    });
  }

  setInfo(k: string, v: string): void {
    this.guard(() =>
      this.db.prepare('INSERT INTO info (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v').run(k, v),
    );
  }

  /**
   * Stages new and changed documents (unchanged ones are left alone) and says how many of each. The indexed
   * row of a changed document stays as it is until commitVectors replaces it. Ids in `damaged` (rows that
   * failed their checksums, deleted by the caller) are staged again whatever their stored hash says. One
   * transaction per call: callers pass the input in slices. Each document is hashed and stored in its stored
   * form (storedDocument: an id that would not come back as given is refused before anything is written).
   */
  stage(given: readonly SourceDocument[], damaged: ReadonlySet<string> = new Set()): StageCounts {
    const counts: StageCounts = { added: 0, changed: 0, unchanged: 0, resumed: 0, repaired: 0 };
    const docs = given.map((d) => storedDocument(d, this.file));
    this.guard(() => {
      const indexed = this.db.prepare('SELECT hash FROM docs WHERE id = ?');
      const staged = this.db.prepare('SELECT hash FROM staged WHERE id = ?');
      const put = this.db.prepare(`INSERT INTO staged (id, title, text, metadata, hash, crc)
        VALUES (@id, @title, @text, @metadata, @hash, @crc)
        ON CONFLICT(id) DO UPDATE SET title = excluded.title, text = excluded.text, metadata = excluded.metadata,
          hash = excluded.hash, crc = excluded.crc`);
      const unstage = this.db.prepare('DELETE FROM staged WHERE id = ?');
      this.db.transaction(() => {
        for (const d of docs) {
          const hash = contentHash(d);
          const current = (indexed.get(d.id) as { hash: string } | undefined)?.hash;
          const next = (staged.get(d.id) as { hash: string } | undefined)?.hash;
          if (damaged.has(d.id)) counts.repaired++;
          else if (next === hash) {
            counts.resumed++;
            continue;
          } else if (current === hash) {
            if (next !== undefined) unstage.run(d.id);
            counts.unchanged++;
            continue;
          } else if (current !== undefined) counts.changed++;
          else counts.added++;
          const metadata = d.metadata ? JSON.stringify(d.metadata) : null;
          put.run({ id: d.id, title: d.title, text: d.text, metadata, hash, crc: stagedCrc(d.id, hash) });
        }
      })();
    });
    return counts;
  }

  /** Documents waiting for their vectors (staged, or left 'pending' in `docs` by an older version). */
  pendingCount(): number {
    return this.guard(() => {
      const count = (sql: string): number => (this.db.prepare(sql).get() as { n: number }).n;
      const legacy = count("SELECT count(*) AS n FROM docs WHERE status = 'pending'");
      return legacy + (this.hasTable('staged') ? count('SELECT count(*) AS n FROM staged') : 0);
    });
  }

  /** Pending documents that are changes of indexed ones: searched with their previous text and vector meanwhile. */
  outdatedCount(): number {
    return this.guard(() => {
      if (!this.hasTable('staged')) return 0;
      const sql = "SELECT count(*) AS n FROM staged WHERE id IN (SELECT id FROM docs WHERE status = 'indexed')";
      return (this.db.prepare(sql).get() as { n: number }).n;
    });
  }

  indexedCount(): number {
    return this.guard(
      () => (this.db.prepare("SELECT count(*) AS n FROM docs WHERE status = 'indexed'").get() as { n: number }).n,
    );
  }

  /** The next `n` staged documents in the fixed encoding order. */
  nextPending(n: number): PendingDocument[] {
    return this.guard(() => {
      const rows = this.db
        .prepare(`SELECT ${STAGED_COLUMNS} FROM staged ORDER BY length(title) + length(text) DESC, id LIMIT ?`)
        .all(n) as Row[];
      return rows.map((r) => this.verifiedDocument(r));
    });
  }

  /**
   * Stores the vectors of encoded staged documents, in one transaction: each document's staged text and its
   * vector replace its indexed row together, under a fresh key (an update never reuses the old one, so a
   * stale HNSW entry cannot be mistaken for the new vector). A document no longer staged with the content it
   * was encoded from (deleted, or staged again meanwhile) is left out. Returns the vectors stored and the
   * keys they replace, for the vector store.
   */
  commitVectors(
    docs: readonly PendingDocument[],
    vectors: readonly Float32Array[],
  ): { generation: number; added: VectorRow[]; removed: number[] } {
    const added: VectorRow[] = [];
    const removed: number[] = [];
    let generation = 0;
    this.guard(() => {
      const old = this.db.prepare('SELECT key FROM docs WHERE id = ?');
      // copied from the staged row, so the indexed text is byte for byte the one that was encoded
      const put = this.db.prepare(`INSERT INTO docs (id, title, text, metadata, hash, key, vector, status, vhash, crc)
        SELECT id, title, text, metadata, hash, @key, @vector, 'indexed', @vhash, @crc FROM staged
        WHERE id = @id AND hash = @hash
        ON CONFLICT(id) DO UPDATE SET title = excluded.title, text = excluded.text, metadata = excluded.metadata,
          hash = excluded.hash, key = excluded.key, vector = excluded.vector, status = 'indexed',
          vhash = excluded.vhash, crc = excluded.crc`);
      const unstage = this.db.prepare('DELETE FROM staged WHERE id = ?');
      this.db.transaction(() => {
        let next = this.meta('next_key');
        docs.forEach((d, i) => {
          const hash = contentHash(d);
          const was = (old.get(d.id) as { key: number | null } | undefined)?.key ?? null;
          const bytes = Buffer.from(vectors[i].buffer, vectors[i].byteOffset, vectors[i].byteLength);
          const vhash = vectorHash(bytes);
          const crc = rowCrc({ id: d.id, hash, key: next, status: 'indexed', vhash });
          if (put.run({ id: d.id, hash, key: next, vector: bytes, vhash, crc }).changes === 0) return;
          unstage.run(d.id);
          if (was !== null) removed.push(was);
          added.push({ key: next++, id: d.id, vector: vectors[i] });
        });
        this.setMeta('next_key', next);
        generation = this.meta('generation') + 1;
        this.setMeta('generation', generation);
      })();
    });
    return { generation, added, removed };
  }

  /**
   * Deletes documents; returns the keys of their vectors (to remove from the vector store) and the new generation.
   * An id with a lone surrogate is refused (wellFormedId): SQLite would look up its U+FFFD twin, another document.
   */
  delete(ids: readonly string[]): { generation: number; keys: number[]; deleted: string[] } {
    for (const id of ids) wellFormedId(id, this.file);
    const keys: number[] = [];
    const deleted: string[] = [];
    let generation = 0;
    this.guard(() => {
      const get = this.db.prepare('SELECT key FROM docs WHERE id = ?');
      const del = this.db.prepare('DELETE FROM docs WHERE id = ?');
      const unstage = this.db.prepare('DELETE FROM staged WHERE id = ?');
      this.db.transaction(() => {
        for (const id of ids) {
          const key = (get.get(id) as { key: number | null } | undefined)?.key ?? null;
          if (del.run(id).changes + unstage.run(id).changes === 0) continue;
          if (key !== null) keys.push(key);
          deleted.push(id);
        }
        generation = this.meta('generation') + (deleted.length > 0 ? 1 : 0);
        this.setMeta('generation', generation);
      })();
    });
    return { generation, keys, deleted };
  }

  /** Ids of the indexed and staged rows whose content, vector or row checksum does not match (reads every row). */
  damagedIds(): string[] {
    return this.guard(() => {
      const out = new Set<string>();
      const rows = [
        this.db.prepare(`SELECT ${this.columns}, vector FROM docs`),
        this.db.prepare(`SELECT ${STAGED_COLUMNS}, NULL AS vector FROM staged`),
      ];
      for (const q of rows) {
        for (const r of q.iterate() as Iterable<Row & { vector: Buffer | null }>) {
          try {
            this.verifiedDocument(r);
            if (r.status === 'indexed') this.verifiedVector(r, r.vector);
          } catch (e) {
            if (!(e instanceof IndexError)) throw e;
            out.add(r.id);
          }
        }
      }
      return [...out];
    });
  }

  /** Ids of every document, indexed or staged. */
  allIds(): string[] {
    return this.guard(() => {
      const sql = this.hasTable('staged')
        ? 'SELECT id FROM docs UNION SELECT id FROM staged ORDER BY id'
        : 'SELECT id FROM docs ORDER BY id';
      return (this.db.prepare(sql).all() as { id: string }[]).map((r) => r.id);
    });
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

  /** The document as search returns it (its indexed row), or as staged when it has none yet (status 'pending'). */
  get(id: string): (StoredDocument & { status: string; vector: Float32Array | null }) | undefined {
    return this.guard(() => {
      const staged = (): unknown =>
        this.hasTable('staged')
          ? this.db.prepare(`SELECT ${STAGED_COLUMNS}, NULL AS vector FROM staged WHERE id = ?`).get(id)
          : undefined;
      const r = (this.db.prepare(`SELECT ${this.columns}, vector FROM docs WHERE id = ?`).get(id) ?? staged()) as
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
        // without the texts: a search reads every vector at its start, and they would be most of what it reads
        const q = this.db.prepare(`SELECT ${this.vectorColumns} FROM docs
          WHERE status = 'indexed' AND key > ? ORDER BY key LIMIT ?`);
        const got = q.all(after, batch) as (StoredVectorRow & { key: number })[];
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

  /** The embedded text of each of `ids` that is indexed (others are left out), for BM25 to remove them. */
  indexedTextsOf(ids: readonly string[]): Map<string, string> {
    return this.guard(() => {
      const get = this.db.prepare(`SELECT ${this.columns} FROM docs WHERE id = ? AND status = 'indexed'`);
      const out = new Map<string, string>();
      for (const id of ids) {
        const r = get.get(id) as Row | undefined;
        if (r) out.set(id, documentText(this.verifiedDocument(r)));
      }
      return out;
    });
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

  private verifiedVector(r: Omit<StoredVectorRow, 'vector'>, blob: Buffer | null): Float32Array {
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
