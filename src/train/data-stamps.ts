/**
 * What a run's data files held when it was recorded (run-config.json's "data"): for each config key that
 * names data, the size, mtime and SHA-256 of every file of it the run reads. A path says where data is, not
 * what it is: a file edited or replaced under the same path is other data, and a resume on it would mix two
 * trainings under one run. A file whose size and mtime are unchanged is trusted without reading it (make's
 * and rsync's rule), so a resume hashes only what was touched, copied or changed; the same bytes with a new
 * mtime (a `touch`, a copy to another machine) are the same data.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { sha256File } from '../io/checksums.js';

/** A config key naming a data file or folder, and the files under it the run reads (they need not exist). */
export interface DataRead {
  /** The config key, as a refusal names it: "data[0].path", "eval.beir", "data.train[1]". */
  key: string;
  /** The file or folder the key names. */
  path: string;
  files: readonly string[];
}

/** One file as recorded; `name` is relative to the key's folder (a file key's: the folder it is in). */
export interface FileStamp {
  name: string;
  bytes: number;
  mtimeMs: number;
  sha256: string;
}

/** The record's "data": per config key, the path it named and the files of it that existed, in read order. */
export type DataStamps = Record<string, { path: string; files: FileStamp[] }>;

/** A data file whose content is not what the record says: changed, gone, or new under the key's folder. */
export interface DataChange {
  key: string;
  file: string;
  was: FileStamp | null;
  is: FileStamp | null;
}

/**
 * The stamps of `reads`, and how they differ from `earlier` (the record's): a key the record lacks is
 * only stamped (hashing every file of it), a file whose size and mtime match the record keeps its SHA-256.
 */
export async function stampData(
  reads: readonly DataRead[],
  earlier: DataStamps | null,
): Promise<{ stamps: DataStamps; changes: DataChange[] }> {
  const stamps: DataStamps = {};
  const changes: DataChange[] = [];
  // one file read under two keys (a BEIR corpus trained on and evaluated on) is hashed once
  const hashed = new Map<string, string>();
  for (const read of reads) {
    const base = await folderOf(read.path);
    const before = earlier?.[read.key];
    const recorded = new Map((before?.files ?? []).map((f) => [f.name, f] as const));
    const files: FileStamp[] = [];
    for (const file of read.files) {
      const st = await fsp.stat(file).catch(() => null);
      if (st === null || !st.isFile()) continue;
      const name = path.relative(base, file);
      const was = recorded.get(name);
      recorded.delete(name);
      const trusted = was !== undefined && was.bytes === st.size && was.mtimeMs === st.mtimeMs;
      const sha256 = trusted ? was.sha256 : (hashed.get(file) ?? (await sha256File(file)));
      hashed.set(file, sha256);
      const is: FileStamp = { name, bytes: st.size, mtimeMs: st.mtimeMs, sha256 };
      files.push(is);
      if (before !== undefined && was?.sha256 !== sha256) changes.push({ key: read.key, file, was: was ?? null, is });
    }
    for (const was of recorded.values())
      changes.push({ key: read.key, file: path.join(base, was.name), was, is: null });
    stamps[read.key] = { path: read.path, files };
  }
  return { stamps, changes };
}

/** The record's "data" when it is one this version reads; null otherwise (a record from before it). */
export function recordedStamps(v: unknown): DataStamps | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const entries = Object.values(v as Record<string, unknown>);
  const isStamp = (f: unknown): boolean => {
    const s = f as Partial<FileStamp> | null;
    return (
      typeof s?.name === 'string' &&
      typeof s.bytes === 'number' &&
      typeof s.mtimeMs === 'number' &&
      typeof s.sha256 === 'string'
    );
  };
  const ok = entries.every((e) => {
    const x = e as { path?: unknown; files?: unknown } | null;
    return typeof x?.path === 'string' && Array.isArray(x.files) && x.files.every(isStamp);
  });
  return ok ? (v as DataStamps) : null;
}

/** One change in words: the key, the file, and what differs. */
export function describeDataChange(c: DataChange): string {
  const at = `${c.key} ${c.file}`;
  if (c.is === null) return `${at} is gone (it was read when the run was recorded)`;
  if (c.was === null) return `${at} is new (the run did not read it)`;
  const size = c.was.bytes === c.is.bytes ? `same size, ${c.is.bytes} bytes` : `${c.was.bytes} → ${c.is.bytes} bytes`;
  return `${at} has other content (${size}; SHA-256 ${c.was.sha256.slice(0, 12)}… → ${c.is.sha256.slice(0, 12)}…)`;
}

/** The folder a key's files are named relative to: the key's folder, or the folder of the file it names. */
async function folderOf(p: string): Promise<string> {
  const st = await fsp.stat(p).catch(() => null);
  return st?.isDirectory() ? p : path.dirname(p);
}
