/**
 * --device auto|cpu|webgpu, shared by every command that computes with search-r3's own engine: which
 * device the tensors live on. The choice is made once, before any model is loaded, and said on stderr
 * when --device was given, a GPU was taken, or auto looked for one and declined it (a run left to its
 * default on a machine without a GPU prints nothing new).
 */
import * as T from '../tensor/index.js';
import { UserError } from './command.js';
import { noEffect } from './args.js';
import { optionHelp } from './option-help.js';

export const DEVICE_OPTION = { device: { type: 'string' } } as const;

/** The --device help line, its description starting at `column` like the command's other options. */
export function deviceHelp(column: number): string {
  return optionHelp(
    [
      [
        '--device auto|cpu|webgpu',
        "where search-r3's engine computes: auto (default) takes a GPU through WebGPU when the machine has " +
          'one, else the CPU; webgpu insists (a software adapter such as lavapipe included); cpu never asks',
      ],
    ],
    column,
  );
}

/** Parses --device (undefined: auto, unless SEARCH_R3_BACKEND chose already). */
export function parseDevice(v: string | undefined): T.DeviceChoice | null {
  if (v === undefined) return process.env.SEARCH_R3_BACKEND ? null : 'auto';
  if (!(T.DEVICE_CHOICES as readonly string[]).includes(v)) {
    throw new UserError(`--device must be auto, cpu or webgpu (got '${v}').`);
  }
  return v as T.DeviceChoice;
}

const toStderr = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * Says the device taken ("device: webgpu (NVIDIA H200)") when --device was given (`v`), it is a GPU, or a
 * GPU was looked for and declined (Dawn's own warnings may be above); the CPU by default on a machine with
 * no GPU goes unsaid, so a default run's output is as it always was.
 */
export function sayDevice(v: string | undefined, report: T.DeviceReport, say: (line: string) => void = toStderr): void {
  if (v !== undefined || report.backend === 'webgpu' || report.declined) say(`device: ${report.description}`);
}

/** The one sentence for a device that cannot be used, wherever the model was to be loaded. */
export function deviceError(choice: T.DeviceChoice, e: unknown): UserError {
  return new UserError(`--device ${choice}: ${e instanceof Error ? e.message : String(e)}.`);
}

/**
 * Applies --device and says what was taken (see sayDevice) through `say`, stderr by default; an
 * unavailable WebGPU is a UserError in one sentence.
 */
export function selectDevice(v: string | undefined, say: (line: string) => void = toStderr): T.DeviceReport | null {
  const choice = parseDevice(v);
  if (choice === null) return null;
  let report: T.DeviceReport;
  try {
    report = T.useDevice(choice);
  } catch (e) {
    throw deviceError(choice, e);
  }
  sayDevice(v, report, say);
  return report;
}

/**
 * The device a model worker thread should take to compute where this thread already does: the device
 * selectDevice resolved (so `auto` is not asked again), or undefined when the environment chose.
 */
export function resolvedDevice(report: T.DeviceReport | null): T.DeviceChoice | undefined {
  if (report === null) return undefined;
  return report.backend === 'webgpu' ? 'webgpu' : 'cpu';
}

/**
 * An error from starting a model worker on `choice`: the device's own failure (a GpuError, which
 * crosses the thread by name) as the --device sentence, anything else as it is.
 */
export function workerStartError(choice: T.DeviceChoice | undefined, e: unknown): unknown {
  return choice !== undefined && e instanceof Error && e.name === 'GpuError' ? deviceError(choice, e) : e;
}

/** --device where this process runs no model (--remote): refused rather than ignored. */
export function refuseDevice(v: string | undefined, instead: string): void {
  if (v !== undefined) throw new UserError(`--device chooses where a local model runs; drop it with ${instead}.`);
}

/**
 * --device where this run computes no model (BM25): a wrong value is refused all the same, a right one is
 * said to have no effect, so that nobody reads the run as computed on the GPU. Not refused: a pipeline (the
 * recipe) passes one --device to each of its steps.
 */
export function unusedDevice(v: string | undefined, why: string): void {
  parseDevice(v);
  noEffect('--device', v, why);
}
