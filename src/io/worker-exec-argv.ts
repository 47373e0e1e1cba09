/**
 * Node options for a worker thread. A Worker inherits the process's execArgv, and that includes what only
 * the process's own entry can use: `--input-type` (with `-e`/`-p` and their code), which a worker refuses
 * at start. A program started as `node --input-type=module -e "…"` would then lose every thread it starts
 * (the GPU's, the model server's, the search threads'); these options are dropped, the rest kept.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (['-e', '--eval', '-p', '--print', '--input-type'].includes(a)) i++;
    else if (!/^--(input-type|eval|print)=/.test(a)) out.push(a);
  }
  return out;
}
