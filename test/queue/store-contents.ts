/** What an index folder and its LanceDB table hold, read directly (not through the code under test). */
import Database from 'better-sqlite3';
import * as lancedb from '@lancedb/lancedb';
import path from 'node:path';

/** id → the f32 vector bytes of every indexed document in docs.sqlite. */
export function sqliteVectors(indexDir: string): Map<string, Buffer> {
  const db = new Database(path.join(indexDir, 'docs.sqlite'), { readonly: true });
  try {
    const rows = db.prepare("SELECT id, vector FROM docs WHERE status = 'indexed'").all() as {
      id: string;
      vector: Buffer;
    }[];
    return new Map(rows.map((r) => [r.id, r.vector]));
  } finally {
    db.close();
  }
}

/** Every row of the LanceDB vectors table: id and the vector's bytes. */
export async function lanceRows(uri: string): Promise<{ id: string; vector: Buffer }[]> {
  const db = await lancedb.connect(uri);
  try {
    const t = await db.openTable('vectors');
    const rows = (await t.query().select(['id', 'vector']).toArray()) as {
      id: string;
      vector: { toArray(): Float32Array };
    }[];
    t.close();
    return rows.map((r) => {
      const v = Float32Array.from(r.vector.toArray());
      return { id: r.id, vector: Buffer.from(v.buffer) };
    });
  } finally {
    db.close();
  }
}
