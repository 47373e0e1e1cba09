/**
 * Node options for a worker thread. A Worker inherits the process's execArgv, and that includes what only
 * the process's own entry can use: `--input-type` (with `-e`/`-p` and their code), which a worker refuses
 * at start. A program started as `node --input-type=module -e "…"` would then lose every thread it starts
 * (the GPU's, the model server's, the search threads'); these options are dropped, the rest kept.
 *
 * Where there is nothing to drop, the answer is undefined: the worker then inherits the options itself, which
 * leaves out those of the process alone. Given explicitly, the same list can be refused: Node ≥ 24's test
 * runner starts each test file with per-process options in its execArgv (--stack-trace-limit, --v8-pool-size,
 * …), and a Worker handed them throws ERR_WORKER_INVALID_EXEC_ARGV, so an app tested with `node --test`
 * could start no thread of ours.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (['-e', '--eval', '-p', '--print', '--input-type'].includes(a)) i++;
    else if (!/^--(input-type|eval|print)=/.test(a)) out.push(a);
  }
  return out.length === execArgv.length ? undefined : out;
}
