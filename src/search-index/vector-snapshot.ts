/**
 * Every indexed vector of docs.sqlite in one array, read while another process (a running `search-r3
 * index`) may commit: the rows come in batches, each its own read, so a commit can land between two of
 * them. The array grows with the rows actually read (a count taken before them may already be stale), and
 * a read that a commit overlapped is read again, a few times at most: then what was read is kept, and the
 * generation it is tagged with (the one before the read) makes the next caller read again.
 */

/** What the document table gives: its commit generation, and the indexed rows in batches. */
export interface IndexedRowsSource {
  generation(): number;
  rows(): Iterable<readonly { key: number; id: string; vector: Float32Array }[]>;
}

export interface VectorSnapshot {
  /** The generation before the read: equal to the table's now when no commit overlapped the last try. */
  generation: number;
  keys: number[];
  ids: string[];
  /** keys.length rows of `dim` floats. */
  data: Float32Array;
}

const READ_TRIES = 3;

export function readVectorSnapshot(source: IndexedRowsSource, dim: number, expectedRows: number): VectorSnapshot {
  for (let attempt = 1; ; attempt++) {
    const generation = source.generation();
    const keys: number[] = [],
      ids: string[] = [];
    let data = new Float32Array(Math.max(expectedRows, 1) * dim);
    for (const batch of source.rows()) {
      for (const r of batch) {
        if ((keys.length + 1) * dim > data.length) {
          const grown = new Float32Array(2 * data.length);
          grown.set(data);
          data = grown;
        }
        data.set(r.vector, keys.length * dim);
        keys.push(r.key);
        ids.push(r.id);
      }
    }
    if (source.generation() === generation || attempt === READ_TRIES) {
      const used = keys.length * dim;
      return { generation, keys, ids, data: data.length === used ? data : data.slice(0, used) };
    }
  }
}
