/**
 * metrics.jsonl, a training run's log: one JSON record per line, appended as training goes. A run
 * killed mid-write leaves half a line, and a damaged file may hold lines that are no record at all;
 * readers drop such lines and count them, so a damaged log never stops a resume or a chart.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { writeTextFileAtomically } from '../io/atomic-file.js';
import type { MetricRecord } from './report.js';
import { counted } from '../io/counted.js';

export interface ParsedMetrics {
  records: MetricRecord[];
  /** Non-empty lines that are not a JSON object with a string "type" and a finite "step". */
  damagedLines: number;
}

function asRecord(line: string): MetricRecord | null {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return null;
  const { type, step } = r as Record<string, unknown>;
  return typeof type === 'string' && typeof step === 'number' && Number.isFinite(step) ? (r as MetricRecord) : null;
}

/** The records of metrics.jsonl text, in order, and how many lines were damaged. */
export function parseMetrics(text: string): ParsedMetrics {
  const records: MetricRecord[] = [];
  let damagedLines = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const r = asRecord(line);
    if (r) records.push(r);
    else damagedLines++;
  }
  return { records, damagedLines };
}

/** The records of a metrics.jsonl file; none when there is no file. */
export function readMetricsFile(file: string): ParsedMetrics {
  return existsSync(file) ? parseMetrics(readFileSync(file, 'utf8')) : { records: [], damagedLines: 0 };
}

/** A run's metrics.jsonl, open for appending; `records` holds every record the file has. */
export class MetricsLog {
  private constructor(
    readonly file: string,
    readonly records: MetricRecord[],
  ) {}

  /**
   * Opens the log of a run: a fresh run (resumedStep null) starts it empty; a resumed run keeps the
   * intact records up to its checkpoint's step (it logs the later steps again). The kept records are
   * written back atomically, so no half line stays for the next record to be appended to. `note`
   * says how many damaged lines were dropped, when there were any.
   */
  static async open(file: string, resumedStep: number | null): Promise<{ log: MetricsLog; note: string | null }> {
    const parsed = resumedStep === null ? { records: [], damagedLines: 0 } : readMetricsFile(file);
    const kept = parsed.records.filter((r) => r.step <= (resumedStep ?? 0));
    await writeTextFileAtomically(file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const note =
      parsed.damagedLines === 0
        ? null
        : `warning: ${file}: ${counted(parsed.damagedLines, 'damaged line')} dropped ` +
          `(a run killed mid-write leaves one); kept the ${kept.length} intact records up to step ${resumedStep}`;
    return { log: new MetricsLog(file, kept), note };
  }

  /**
   * Adds a record's line. A write the disk refuses midway (full, a quota, a file size limit) is cut back off, so
   * no half line is left for the dashboard or a chart to count as damage, and the error names the file, which a
   * write to an open file does not.
   */
  append(r: MetricRecord): void {
    const fd = openSync(this.file, 'a');
    try {
      const size = fstatSync(fd).size;
      try {
        writeFileSync(fd, `${JSON.stringify(r)}\n`);
      } catch (err) {
        ftruncateSync(fd, size);
        const e = err as NodeJS.ErrnoException;
        if (typeof e?.code === 'string') e.path ??= this.file;
        throw err;
      }
    } finally {
      closeSync(fd);
    }
    this.records.push(r);
  }
}
