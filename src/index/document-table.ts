/**
 * docs.sqlite: every document's id, title, text, metadata, content hash, its exact f32 vector and its
 * status ('pending' until encoded, then 'indexed'), plus a generation counter bumped by every commit.
 * Staging documents as 'pending' first and encoding them in a fixed order (longest first, then id) is
 * what makes a killed run resumable bit-exactly: the remaining pending rows are exactly the chunks the
 * killed run had not committed, and they are chunked the same way again.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { documentText, type SourceDocument } from './document-source.js';

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

interface DocRow { id: string; title: string; text: string; metadata: string | null; key: number | null; status: string }

export function contentHash(d: SourceDocument): string {
  return createHash('sha256').update(JSON.stringify([d.title, d.text, d.metadata ?? null])).digest('hex').slice(0, 32);
}

export class DocumentTable {
  readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed chunk survives a power cut, not only a killed process.
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS docs (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        metadata TEXT,
        hash TEXT NOT NULL,
        key INTEGER UNIQUE,
        vector BLOB,
        status TEXT NOT NULL CHECK (status IN ('pending', 'indexed'))
      );
      CREATE INDEX IF NOT EXISTS docs_pending ON docs (status, length(title) + length(text) DESC, id);
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta VALUES ('generation', 0), ('next_key', 1);
    `);
  }

  private meta(k: string): number { return (this.db.prepare('SELECT v FROM meta WHERE k = ?').get(k) as { v: number }).v; }
  private setMeta(k: string, v: number): void { this.db.prepare('UPDATE meta SET v = ? WHERE k = ?').run(v, k); }

  generation(): number { return this.meta('generation'); }

  /**
   * Marks new and changed documents pending (unchanged ones are left alone). Returns how many were staged.
   * One transaction per call: callers pass the input in slices.
   */
  stage(docs: readonly SourceDocument[]): number {
    const get = this.db.prepare('SELECT hash, status FROM docs WHERE id = ?');
    const upsert = this.db.prepare(`INSERT INTO docs (id, title, text, metadata, hash, status) VALUES (@id, @title, @text, @metadata, @hash, 'pending')
      ON CONFLICT(id) DO UPDATE SET title = excluded.title, text = excluded.text, metadata = excluded.metadata, hash = excluded.hash, status = 'pending'`);
    let staged = 0;
    this.db.transaction(() => {
      for (const d of docs) {
        const hash = contentHash(d);
        const old = get.get(d.id) as { hash: string; status: string } | undefined;
        if (old && old.hash === hash) continue;
        upsert.run({ id: d.id, title: d.title, text: d.text, metadata: d.metadata ? JSON.stringify(d.metadata) : null, hash });
        staged++;
      }
    })();
    return staged;
  }

  pendingCount(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM docs WHERE status = 'pending'").get() as { n: number }).n;
  }

  indexedCount(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM docs WHERE status = 'indexed'").get() as { n: number }).n;
  }

  /** The next `n` pending documents in the fixed encoding order. */
  nextPending(n: number): PendingDocument[] {
    const rows = this.db.prepare(`SELECT id, title, text, metadata, key, status FROM docs WHERE status = 'pending'
      ORDER BY length(title) + length(text) DESC, id LIMIT ?`).all(n) as DocRow[];
    return rows.map((r) => ({ ...toDoc(r), oldKey: r.key }));
  }

  /**
   * Stores the vectors of encoded documents and marks them indexed, in one transaction. Each gets a fresh
   * key (an update never reuses the old one, so a stale HNSW entry cannot be mistaken for the new vector).
   */
  commitVectors(docs: readonly PendingDocument[], vectors: readonly Float32Array[]): { generation: number; keys: number[] } {
    const set = this.db.prepare("UPDATE docs SET key = ?, vector = ?, status = 'indexed' WHERE id = ?");
    let keys: number[] = [];
    let generation = 0;
    this.db.transaction(() => {
      let next = this.meta('next_key');
      keys = docs.map(() => next++);
      docs.forEach((d, i) => set.run(keys[i], Buffer.from(vectors[i].buffer, vectors[i].byteOffset, vectors[i].byteLength), d.id));
      this.setMeta('next_key', next);
      generation = this.meta('generation') + 1;
      this.setMeta('generation', generation);
    })();
    return { generation, keys };
  }

  /** Deletes documents; returns the keys of their vectors (to remove from the vector store) and the new generation. */
  delete(ids: readonly string[]): { generation: number; keys: number[]; deleted: string[] } {
    const get = this.db.prepare('SELECT key FROM docs WHERE id = ?');
    const del = this.db.prepare('DELETE FROM docs WHERE id = ?');
    const keys: number[] = [];
    const deleted: string[] = [];
    let generation = 0;
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
    return { generation, keys, deleted };
  }

  /** Ids of every stored document. */
  allIds(): string[] {
    return (this.db.prepare('SELECT id FROM docs ORDER BY id').all() as { id: string }[]).map((r) => r.id);
  }

  byKeys(keys: readonly number[]): Map<number, StoredDocument> {
    const get = this.db.prepare("SELECT id, title, text, metadata, key, status FROM docs WHERE key = ? AND status = 'indexed'");
    const out = new Map<number, StoredDocument>();
    for (const k of keys) {
      const r = get.get(k) as DocRow | undefined;
      if (r) out.set(k, toDoc(r));
    }
    return out;
  }

  get(id: string): (StoredDocument & { status: string; vector: Float32Array | null }) | undefined {
    const r = this.db.prepare('SELECT id, title, text, metadata, key, status, vector FROM docs WHERE id = ?').get(id) as (DocRow & { vector: Buffer | null }) | undefined;
    if (!r) return undefined;
    return { ...toDoc(r), status: r.status, vector: r.vector ? blobToVector(r.vector) : null };
  }

  /** Every indexed vector with its key and id, in key order (for rebuilding a vector store). */
  *indexedVectors(batch = 4096): Generator<{ key: number; id: string; vector: Float32Array }[]> {
    let after = 0;
    const q = this.db.prepare("SELECT key, id, vector FROM docs WHERE status = 'indexed' AND key > ? ORDER BY key LIMIT ?");
    for (;;) {
      const rows = q.all(after, batch) as { key: number; id: string; vector: Buffer }[];
      if (rows.length === 0) return;
      yield rows.map((r) => ({ key: r.key, id: r.id, vector: blobToVector(r.vector) }));
      after = rows[rows.length - 1].key;
    }
  }

  /** Every indexed document's id and embedded text, for BM25. */
  indexedTexts(): { id: string; text: string }[] {
    return (this.db.prepare("SELECT id, title, text FROM docs WHERE status = 'indexed' ORDER BY id").all() as DocRow[])
      .map((r) => ({ id: r.id, text: documentText(r) }));
  }

  close(): void { this.db.close(); }
}

function toDoc(r: DocRow): StoredDocument {
  return { id: r.id, title: r.title, text: r.text, ...(r.metadata ? { metadata: JSON.parse(r.metadata) as Record<string, unknown> } : {}) };
}

function blobToVector(b: Buffer): Float32Array {
  // copy: the Buffer may sit at an unaligned offset of a shared pool
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
