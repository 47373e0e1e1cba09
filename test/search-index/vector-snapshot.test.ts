/**
 * Reading every indexed vector while another process commits (a search during `index`): the rows may
 * outnumber the count taken before them, and a read that a commit overlapped is read again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type IndexedRowsSource, readVectorSnapshot } from '../../src/search-index/vector-snapshot.js';

type Row = { key: number; id: string; vector: Float32Array };
const row = (key: number): Row => ({ key, id: `d${key}`, vector: Float32Array.of(key, -key) });

/** A table that commits `perRead[i]` more rows during read i, between its two batches. */
function committingTable(start: number, perRead: number[]): IndexedRowsSource & { reads: number } {
  let committed = start,
    generation = 1;
  const table = {
    reads: 0,
    generation: () => generation,
    *rows(): Generator<Row[]> {
      const read = table.reads++;
      const first = Array.from({ length: Math.ceil(committed / 2) }, (_, i) => row(i));
      yield first;
      if ((perRead[read] ?? 0) > 0) {
        committed += perRead[read];
        generation++;
      }
      yield Array.from({ length: committed - first.length }, (_, i) => row(first.length + i));
    },
  };
  return table;
}

test('rows committed during the read are kept, the array grows for them, and the read is redone', () => {
  const table = committingTable(5, [40]);
  const s = readVectorSnapshot(table, 2, 5);
  assert.equal(table.reads, 2, 'a commit overlapped the first read');
  assert.equal(s.generation, 2);
  assert.deepEqual(
    s.keys,
    Array.from({ length: 45 }, (_, i) => i),
  );
  assert.deepEqual(s.ids.slice(-1), ['d44']);
  assert.equal(s.data.length, 90);
  assert.deepEqual([...s.data.subarray(88)], [44, -44]);
});

test('a table that commits during every read is read three times, then taken as read, tagged stale', () => {
  const table = committingTable(3, [10, 10, 10, 10]);
  const s = readVectorSnapshot(table, 2, 3);
  assert.equal(table.reads, 3);
  assert.equal(s.keys.length, 33);
  assert.equal(s.data.length, 66);
  assert.notEqual(s.generation, table.generation(), 'the next caller reads again');
});

test('no commit: one read, an array of exactly the rows', () => {
  const table = committingTable(7, []);
  const s = readVectorSnapshot(table, 2, 7);
  assert.equal(table.reads, 1);
  assert.equal(s.keys.length, 7);
  assert.equal(s.data.length, 14);
  const empty = readVectorSnapshot(committingTable(0, []), 2, 0);
  assert.equal(empty.data.length, 0);
});
