/**
 * WGSL every kernel starts with. Binding 0 holds the dispatch's parameters (64 words; gpu-dispatch.ts's
 * Params writes them); flatId and rowId turn the (possibly two-dimensional) grid into one index.
 * The GPU thread builds each pipeline's layout from the declarations `@group(0) @binding(k) var<storage,
 * read>` / `var<storage, read_write>` (binding 0 at a dynamic offset): declare every binding so.
 */
export const PRELUDE = /* wgsl */ `
@group(0) @binding(0) var<storage, read> P: array<u32, 64>;
fn pu(i: u32) -> u32 { return P[i]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(P[i]); }
fn pf(i: u32) -> f32 { return bitcast<f32>(P[i]); }
fn flatId(wg: vec3u, lid: u32, groups: vec3u) -> u32 { return (wg.x + wg.y * groups.x) * 256u + lid; }
fn rowId(wg: vec3u, groups: vec3u) -> u32 { return wg.x + wg.y * groups.x; }
`;

/** ±Inf or NaN told by the bits: WGSL lets a compiler assume arithmetic never meets either. */
export const FINITE = /* wgsl */ `
fn isFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }`;

/** The entry point of a flat kernel (256 invocations per group); the body sees `i`, its flat index. */
export function flatKernel(decls: string, body: string): string {
  return `${PRELUDE}
${decls}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) groups: vec3u) {
  let i = flatId(wg, lid, groups);
${body}
}`;
}
