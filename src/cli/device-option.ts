/**
 * --device auto|cpu|webgpu, shared by every command that computes with search-r3's own engine: which
 * device the tensors live on. The choice is made once, before any model is loaded, and said on stderr.
 */
import * as T from '../tensor/index.js';
import { UserError } from './command.js';
import { optionHelp } from './option-help.js';

export const DEVICE_OPTION = { device: { type: 'string' } } as const;

const DEVICES: readonly T.DeviceChoice[] = ['auto', 'cpu', 'webgpu'];

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
  if (!(DEVICES as readonly string[]).includes(v)) {
    throw new UserError(`--device must be auto, cpu or webgpu (got '${v}').`);
  }
  return v as T.DeviceChoice;
}

/**
 * Applies --device and says what was taken ("device: webgpu (NVIDIA H200)") through `say` (stderr by
 * default); an unavailable WebGPU is a UserError in one sentence.
 */
export function selectDevice(
  v: string | undefined,
  say: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): T.DeviceReport | null {
  const choice = parseDevice(v);
  if (choice === null) return null;
  try {
    const report = T.useDevice(choice);
    say(`device: ${report.description}`);
    return report;
  } catch (e) {
    throw new UserError(`--device ${choice}: ${e instanceof Error ? e.message : String(e)}.`);
  }
}
