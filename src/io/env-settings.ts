/**
 * Numbers, switches and flags read from the environment (SEARCH_R3_THREADS, SEARCH_R3_GPU_TIMEOUT_MS,
 * SEARCH_R3_GPU_IDLE_RELEASE_MS, SEARCH_R3_CHECK_FINITE, SEARCH_R3_GPU_PROFILE, SEARCH_R3_DAWN_FLAGS). A bad
 * value is refused in one sentence naming the variable: ignored, the setting would silently not apply, and read
 * as NaN or 0 a GPU watchdog would never fire or fire at once. Unset or empty means the default.
 */

import { TIMER_MAX_MS } from './option-checks.js';

/** A variable of the environment holds a value its setting cannot take. */
export class SettingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingError';
  }
}

/** The variable `name` as a positive integer up to `max`; undefined when it is unset or empty. */
export function positiveIntSetting(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    const upTo = max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : '';
    throw new SettingError(`${name} must be a positive integer${upTo}, not '${v}'; set it to one, or unset it.`);
  }
  return n;
}

/** The threads of a CPU pool: SEARCH_R3_THREADS when set, else undefined (the caller's default). */
export const threadsSetting = (): number | undefined => positiveIntSetting('SEARCH_R3_THREADS');

/** How long a read may wait for the GPU thread before it is declared stuck: SEARCH_R3_GPU_TIMEOUT_MS, 10 min. */
export const gpuTimeoutSetting = (): number => positiveIntSetting('SEARCH_R3_GPU_TIMEOUT_MS') ?? 600_000;

/**
 * How long a model worker on a GPU waits with no request before it gives the GPU memory no tensor holds back
 * to the driver, by default. A server in use (requests seconds apart) keeps its buffer pool warm and creates
 * no buffers; one left alone frees its peak (a batch of long documents, a long generation) for other programs
 * on the GPU within half a minute, and its next request creates the buffers it needs once (milliseconds).
 */
export const GPU_IDLE_RELEASE_MS = 30_000;

/** That wait: SEARCH_R3_GPU_IDLE_RELEASE_MS when set (tests shorten it), else GPU_IDLE_RELEASE_MS. */
export const gpuIdleReleaseSetting = (): number =>
  positiveIntSetting('SEARCH_R3_GPU_IDLE_RELEASE_MS', process.env, TIMER_MAX_MS) ?? GPU_IDLE_RELEASE_MS;

/**
 * The variable `name` as a switch: '1' on, '0' off; undefined when it is unset or empty. Any other value (true,
 * off, yes) is refused: the reader of SEARCH_R3_CHECK_FINITE turns the check off only on '0', so 'false' would
 * leave it on without a word.
 */
export function switchSetting(name: string, env: NodeJS.ProcessEnv = process.env): boolean | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  if (v === '0' || v === '1') return v === '1';
  throw new SettingError(`${name} must be 0 or 1, not '${v}'; set it to one of them, or unset it.`);
}

/**
 * SEARCH_R3_DAWN_FLAGS: flags for Dawn's instance, separated by spaces, each name=value (adapter=<name>,
 * enable-dawn-features=<toggles>; docs/gpu.md); [] when unset. Dawn refuses a name it does not know, but takes
 * one with nothing after '=' (adapter=), or no name at all, without a word: the GPU meant would not be the one used.
 */
export function dawnFlagsSetting(env: NodeJS.ProcessEnv = process.env): string[] {
  const flags = (env.SEARCH_R3_DAWN_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
  const bad = flags.find((f) => !/^[\w-]+=\S+$/.test(f));
  if (bad !== undefined)
    throw new SettingError(
      `SEARCH_R3_DAWN_FLAGS holds '${bad}', which is no name=value flag (adapter=<name>, ` +
        'enable-dawn-features=<toggles>); set it to such flags separated by spaces, or unset it.',
    );
  return flags;
}

/** The switches the backends read: SEARCH_R3_CHECK_FINITE (per-op NaN/Inf check), SEARCH_R3_GPU_PROFILE. */
const SWITCHES = ['SEARCH_R3_CHECK_FINITE', 'SEARCH_R3_GPU_PROFILE'];

/** Refuses, before a command starts, any of the settings above that holds a bad value. */
export function checkSettings(): void {
  threadsSetting();
  gpuTimeoutSetting();
  gpuIdleReleaseSetting();
  dawnFlagsSetting();
  for (const name of SWITCHES) switchSetting(name);
}
