/**
 * What Dawn says, made into our sentences. Its messages run over several lines (what went wrong, then
 * " - While …" for each call it happened inside, or a list of adapters), and it writes warnings to stderr
 * from native code while an adapter is requested: a clamp of two limits every time, a failed Vulkan call
 * with the C++ line it failed at.
 */

/** The first line of a Dawn message (what went wrong, without the calls it happened inside), no full stop. */
export function dawnSentence(message: string): string {
  const first = message.split('\n').find((l) => l.trim() !== '') ?? '';
  return first.trim().replace(/[.!]+$/, '');
}

/** Limits Dawn lowers on every adapter it offers, saying so each time: nothing a user can act on. */
const CLAMPED_LIMIT = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced /;
/** The C++ source line under a failed call ("    at CheckVkSuccessImpl (/home/…/VulkanError.cpp:106)"). */
const SOURCE_FRAME = /^\s+at \S+ \(.*:\d+\)$/;
/** A line of Dawn's log: its severity, then the text. */
const LOGGED = /^(?:Debug|Info|Warning|Error): (.*)$/;

export interface DawnStderr {
  /** The lines to pass on, in order: all but the clamp warnings, source frames and blank lines. */
  kept: string[];
  /** `kept` without Dawn's logged lines: what other code of the process wrote meanwhile. */
  others: string[];
  /** The text of Dawn's logged lines kept (why it found no adapter, say), without severity or full stop. */
  logged: string[];
}

/** Sorts what was written to stderr while Dawn looked for an adapter (see captureStderr). */
export function sortDawnStderr(text: string): DawnStderr {
  const kept = text.split('\n').filter((l) => l.trim() !== '' && !CLAMPED_LIMIT.test(l) && !SOURCE_FRAME.test(l));
  const logged = kept.map((l) => LOGGED.exec(l)?.[1] ?? null);
  return {
    kept,
    others: kept.filter((_, i) => logged[i] === null),
    logged: logged.flatMap((l) => (l === null ? [] : [dawnSentence(l)])),
  };
}

/**
 * Why requestAdapter failed, in one sentence. With `adapter=<name>` among Dawn's flags and no adapter of that
 * name, Dawn says "no suitable backends found" and lists the adapters there are, a line each: named here.
 */
export function adapterRequestSentence(message: string, dawnFlags: readonly string[]): string {
  const adapters = [...message.matchAll(/^\s*\* backend: '([^']*)', name: '(.*)'\.?\s*$/gm)].map(
    (m) => `'${m[2]}' (${m[1]})`,
  );
  const present = adapters.length > 0 ? `the adapters here: ${adapters.join(', ')}` : 'Dawn lists no adapter';
  const wanted = dawnFlags.find((f) => f.startsWith('adapter='))?.slice('adapter='.length);
  if (wanted !== undefined && /^Available adapters:/m.test(message)) {
    return `no adapter named '${wanted}' was found (SEARCH_R3_DAWN_FLAGS adapter=${wanted}); ${present}`;
  }
  return adapters.length > 0 ? `${dawnSentence(message)}; ${present}` : dawnSentence(message);
}
