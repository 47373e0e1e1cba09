/** Every WGSL kernel by name: the GPU thread compiles them from here on first use. */
import { attentionKernels } from './attention.js';
import { elementwiseKernels } from './elementwise.js';
import { matmulKernels } from './matmul.js';
import { rowKernels } from './rows.js';
import { skinnyKernels } from './skinny.js';

const sources: Record<string, string> = {
  ...elementwiseKernels,
  ...rowKernels,
  ...matmulKernels,
  ...skinnyKernels,
  ...attentionKernels,
};

export function kernelSource(name: string): string {
  const code = sources[name];
  if (code === undefined) throw new Error(`no WGSL kernel named '${name}'`);
  return code;
}
