import { parseArgs } from './parse-options.js';
import * as T from '../tensor/index.js';
import type { Command } from './command.js';
import { DEVICE_OPTION, deviceHelp, selectDevice } from './device-option.js';

const HELP = `search-r3 device — which device search-r3 computes on, and whether it computes right there

usage: search-r3 device [--device auto|cpu|webgpu] [--json]

Takes the device as every command that computes would (the same --device), says which it took and why,
describes the GPU adapter when it is one (vendor, architecture, features, limits), and checks it: one
matrix product computed on the device against a float64 product on the host. Exit code 0 when the
product agrees (relative error ≤ 1e-4), 1 when it does not, 2 when the device cannot be used (with the
reason in one sentence). Run it first on a new machine, or where --device auto did not take the GPU you
expected.

options:
${deviceHelp(18)}
  --json          the same as one JSON object on stdout
  -h, --help      this help`;

/** The product the check computes: sizes that leave partial tiles in every dimension of a GPU gemm. */
const CHECK = { m: 150, k: 97, n: 203 };
const CHECK_TOLERANCE = 1e-4;

/** max|got − want| / max|want| of the check's product against a float64 one computed here. */
function checkProduct(): { relErr: number; seconds: number } {
  const { m, k, n } = CHECK;
  const rng = new T.Rng(1);
  const a = T.randn([m, k], rng),
    b = T.randn([k, n], rng);
  const ah = a.read(),
    bh = b.read();
  const s = performance.now();
  const got = T.matmul(a, b).read();
  const seconds = (performance.now() - s) / 1000;
  let diff = 0,
    ref = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let want = 0;
      for (let p = 0; p < k; p++) want += ah[i * k + p] * bh[p * n + j];
      diff = Math.max(diff, Math.abs(got[i * n + j] - want));
      ref = Math.max(ref, Math.abs(want));
    }
  }
  return { relErr: diff / Math.max(ref, 1e-30), seconds };
}

/** What SEARCH_R3_BACKEND chose, said as a --device choice is. */
function environmentChoice(lines: string[]): T.DeviceReport {
  const backend = T.backendName();
  const gpu = backend === 'webgpu' ? ` (${T.webgpuKernels()!.gpu.facts.description})` : ` (${backend} kernels)`;
  const report = { backend, description: `${backend === 'webgpu' ? 'webgpu' : 'cpu'}${gpu}, by SEARCH_R3_BACKEND` };
  lines.push(`device: ${report.description}`);
  return report;
}

const mib = (bytes: number): string => `${Math.round(bytes / 2 ** 20)} MiB`;

export const deviceCommand: Command = {
  help: HELP,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: { ...DEVICE_OPTION, json: { type: 'boolean' } },
    });
    const lines: string[] = [];
    // the device every command would take: --device, else SEARCH_R3_BACKEND's choice, else auto
    const chosen = selectDevice(values.device ?? (process.env.SEARCH_R3_BACKEND ? undefined : 'auto'), (line) =>
      lines.push(line),
    );
    const report = chosen ?? environmentChoice(lines);
    const facts = report.backend === 'webgpu' ? T.webgpuKernels()!.gpu.facts : null;
    const check = checkProduct();
    const ok = check.relErr <= CHECK_TOLERANCE;
    const product = `a ${CHECK.m}×${CHECK.k} by ${CHECK.k}×${CHECK.n} product`;
    if (values.json) {
      const out = { device: report.description, backend: report.backend, adapter: facts, check: { ...check, ok } };
      console.log(JSON.stringify(out, null, 2));
    } else {
      console.log(lines.join('\n'));
      if (facts) {
        const kind = facts.software ? 'a software adapter: it runs on the CPU' : 'a hardware adapter';
        const made = `vendor ${facts.vendor || '?'}, architecture ${facts.architecture || '?'}`;
        console.log(`adapter: ${facts.description}; ${made}; ${kind}`);
        console.log(`features: ${facts.features.join(', ') || 'none'}`);
        console.log(
          `limits: buffers up to ${mib(facts.maxBufferSize)}, bound up to ${mib(facts.maxStorageBufferBindingSize)}; ` +
            `subgroups of ${facts.subgroupMinSize || '?'} or more`,
        );
        if (facts.dawnFlags.length > 0) console.log(`Dawn flags: ${facts.dawnFlags.join(' ')}`);
      }
      const verdict = ok ? 'agrees with' : 'DIFFERS from';
      console.log(
        `check: ${product} on this device ${verdict} float64 on the host ` +
          `(relative error ${check.relErr.toExponential(1)}, ${(check.seconds * 1000).toFixed(1)} ms)`,
      );
    }
    if (!ok) {
      process.stderr.write(
        `search-r3: ${report.description} computed ${product} with relative error ` +
          `${check.relErr.toExponential(1)} (more than ${CHECK_TOLERANCE}): its results cannot be trusted.\n`,
      );
      return 1;
    }
    return 0;
  },
};
