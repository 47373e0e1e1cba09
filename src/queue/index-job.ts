/**
 * What travels through the queue for distributed indexing. A job is one chunk of the index's pending
 * documents (the chunk a single-process run would encode at that point) with everything that decides its
 * vectors: the model fingerprint, prompt templates, cut length and batch size. Payload and result each
 * carry a sha256 of their content, so a job damaged in Redis is dead-lettered by name instead of storing
 * wrong vectors.
 */
import { createHash } from 'node:crypto';
import type { PromptTemplates } from '../embed/index.js';
import { refusal } from '../io/option-checks.js';
import { QueueError } from './queue-error.js';

/** The queue name used when --queue-name is not given. */
export const DEFAULT_QUEUE_NAME = 'search-r3-index';

/**
 * --queue-name's value, or the default. BullMQ refuses an empty name, or one holding ':' (its keys' separator),
 * only once Redis is connected, as a stack trace after which the process never exits: refused here first.
 */
export function queueNameOption(given: string | undefined): string {
  if (given === undefined) return DEFAULT_QUEUE_NAME;
  if (given === '' || given.includes(':'))
    throw new QueueError(refusal('--queue-name', "a non-empty name without ':'", given));
  return given;
}

/** The model identity a job's vectors must come from (a worker with another refuses the job). */
export interface JobModel {
  /** model-fingerprint.ts: the weights, tokenizer and config. */
  id: string;
  dimension: number;
  maxLength: number;
  templates: PromptTemplates;
  /** Tokens per forward batch; part of the identity because the batch shape fixes the last bits. */
  batchTokens: number | null;
}

export interface IndexJobData {
  /** The coordinator run the job belongs to (a job of an earlier run is dropped). */
  run: string;
  /** The chunk's position in the run's plan. */
  chunk: number;
  model: JobModel;
  ids: string[];
  /** The document texts as the model reads them (title, newline, text). */
  texts: string[];
  sum: string;
}

export interface IndexJobResult {
  /** The vectors, n × dimension f32 little-endian, base64. */
  vectors: string;
  count: number;
  dimension: number;
  truncated: number;
  /** Milliseconds the model spent encoding (the rest of a job's time is queue overhead). */
  encodeMs: number;
  sum: string;
}

function sha256(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

function payloadSum(d: Omit<IndexJobData, 'sum'>): string {
  return sha256(JSON.stringify([d.run, d.chunk, d.model, d.ids, d.texts]));
}

export function makeJob(run: string, chunk: number, model: JobModel, ids: string[], texts: string[]): IndexJobData {
  const d = { run, chunk, model, ids, texts };
  return { ...d, sum: payloadSum(d) };
}

export function jobId(run: string, chunk: number): string {
  return `${run}-${chunk}`;
}

/** The job's payload, checked; throws an Error saying what is wrong with it. */
export function readJob(data: unknown): IndexJobData {
  const d = data as Partial<IndexJobData> | null;
  if (typeof d !== 'object' || d === null) throw new Error('the payload is not an object');
  const m = d.model as Partial<JobModel> | undefined;
  const strings = (a: unknown): a is string[] => Array.isArray(a) && a.every((x) => typeof x === 'string');
  if (
    typeof d.run !== 'string' ||
    !Number.isInteger(d.chunk) ||
    typeof m !== 'object' ||
    m === null ||
    typeof m.id !== 'string' ||
    !Number.isInteger(m.dimension) ||
    !Number.isInteger(m.maxLength) ||
    typeof m.templates !== 'object' ||
    !strings(d.ids) ||
    !strings(d.texts) ||
    d.ids.length !== d.texts.length ||
    typeof d.sum !== 'string'
  )
    throw new Error('the payload lacks fields of a search-r3 index job');
  const job = d as IndexJobData;
  if (payloadSum(job) !== job.sum) throw new Error('the payload does not match its checksum (damaged in the queue)');
  return job;
}

export function makeResult(
  vectors: readonly Float32Array[],
  dimension: number,
  truncated: number,
  encodeMs: number,
): IndexJobResult {
  const packed = new Float32Array(vectors.length * dimension);
  vectors.forEach((v, i) => packed.set(v, i * dimension));
  const bytes = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
  return {
    vectors: bytes.toString('base64'),
    count: vectors.length,
    dimension,
    truncated,
    encodeMs,
    sum: sha256(bytes),
  };
}

/** The vectors of a finished job, checked against the job; throws an Error saying what is wrong. */
export function readResult(value: unknown, job: IndexJobData): { vectors: Float32Array[]; r: IndexJobResult } {
  const r = value as Partial<IndexJobResult> | null;
  if (typeof r !== 'object' || r === null || typeof r.vectors !== 'string' || typeof r.sum !== 'string')
    throw new Error('the result lacks its vectors');
  const bytes = Buffer.from(r.vectors, 'base64');
  if (sha256(bytes) !== r.sum) throw new Error('the result does not match its checksum');
  const d = job.model.dimension;
  if (r.count !== job.ids.length || r.dimension !== d || bytes.length !== job.ids.length * d * 4)
    throw new Error(`the result holds ${r.count} vectors of dimension ${r.dimension}, not ${job.ids.length} of ${d}`);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const vectors = Array.from({ length: job.ids.length }, (_, i) => all.slice(i * d, (i + 1) * d));
  return { vectors, r: r as IndexJobResult };
}

/** Where a refused job's model and this worker's differ, as words; null when they agree. */
export function modelMismatch(job: JobModel, worker: Omit<JobModel, 'batchTokens'>): string | null {
  if (job.id !== worker.id) return `it needs model ${job.id} and this worker's model is ${worker.id}`;
  if (job.dimension !== worker.dimension)
    return `it needs ${job.dimension}-d vectors and this worker's model gives ${worker.dimension}-d`;
  if (job.maxLength !== worker.maxLength)
    return `it cuts texts at ${job.maxLength} tokens, this worker at ${worker.maxLength}`;
  const a = job.templates as unknown as Record<string, unknown>,
    b = worker.templates as unknown as Record<string, unknown>;
  if ([...new Set([...Object.keys(a), ...Object.keys(b)])].some((k) => a[k] !== b[k]))
    return 'its prompt templates differ';
  return null;
}
