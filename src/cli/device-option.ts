/**
 * --device auto|cpu|webgpu, shared by every command that computes with search-r3's own engine: which
 * device the tensors live on. The choice is made once, before any model is loaded, and said on stderr
 * when --device was given, a GPU was taken, or auto looked for one and declined it (a run left to its
 * default on a machine without a GPU prints nothing new). SEARCH_R3_BACKEND=webgpu without --device
 * chooses webgpu, said as its choice; the CPU backends it may name are left to the tensor layer.
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

/** Whether SEARCH_R3_BACKEND asks for the GPU, which --device would override. */
const environmentGpu = (): boolean => process.env.SEARCH_R3_BACKEND === 'webgpu';

/**
 * Parses --device (undefined: auto, unless SEARCH_R3_BACKEND chose already: webgpu for its webgpu, null for
 * a CPU backend, which the tensor layer takes).
 */
export function parseDevice(v: string | undefined): T.DeviceChoice | null {
  if (v === undefined) return !process.env.SEARCH_R3_BACKEND ? 'auto' : environmentGpu() ? 'webgpu' : null;
  if (!(T.DEVICE_CHOICES as readonly string[]).includes(v)) {
    throw new UserError(`--device must be auto, cpu or webgpu (got '${v}').`);
  }
  return v as T.DeviceChoice;
}

const toStderr = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * Says the device taken ("device: webgpu (NVIDIA H200)") when --device was given (`v`), it is a GPU, or a
 * GPU was looked for and declined; the CPU by default on a machine with no GPU goes unsaid, so a default
 * run's output is as it always was.
 */
export function sayDevice(v: string | undefined, report: T.DeviceReport, say: (line: string) => void = toStderr): void {
  const r = chosenReport(v, report);
  if (v !== undefined || r.backend === 'webgpu' || r.declined) say(`device: ${r.description}`);
}

/** The report, saying that SEARCH_R3_BACKEND chose the GPU where it did (no --device, `v`). */
function chosenReport(v: string | undefined, report: T.DeviceReport): T.DeviceReport {
  if (v !== undefined || !environmentGpu() || report.backend !== 'webgpu') return report;
  return { ...report, description: `${report.description}, by SEARCH_R3_BACKEND` };
}

/**
 * The one sentence for a device that cannot be used, wherever the model was to be loaded: `choice` as
 * parseDevice made it of --device `v`, so that a choice of SEARCH_R3_BACKEND's is named as its.
 */
export function deviceError(choice: T.DeviceChoice, e: unknown, v: string | undefined): UserError {
  const why = e instanceof Error ? e.message : String(e);
  if (v === undefined && choice === 'webgpu' && environmentGpu())
    return new UserError(`SEARCH_R3_BACKEND=webgpu: ${why}; use --device cpu or unset SEARCH_R3_BACKEND.`);
  return new UserError(`--device ${choice}: ${why}.`);
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
    throw deviceError(choice, e, v);
  }
  sayDevice(v, report, say);
  return chosenReport(v, report);
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
export function workerStartError(choice: T.DeviceChoice | undefined, e: unknown, v: string | undefined): unknown {
  return choice !== undefined && e instanceof Error && e.name === 'GpuError' ? deviceError(choice, e, v) : e;
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
