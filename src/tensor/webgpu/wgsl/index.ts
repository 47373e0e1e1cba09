/** Every WGSL kernel by name: the GPU thread compiles them from here on first use. */
import { attentionKernels } from './attention.js';
import { elementwiseKernels } from './elementwise.js';

const sources: Record<string, string> = {
  ...elementwiseKernels,
  ...attentionKernels,
};

export function kernelSource(name: string): string {
  const code = sources[name];
  if (code === undefined) throw new Error(`no WGSL kernel named '${name}'`);
  return code;
}
