import { cpSync, existsSync, rmSync } from 'node:fs';
import { writeFileAtomicallySync } from '../io/atomic-file.js';
import path from 'node:path';
import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { subcommandError } from './subcommand.js';
import { intAtLeast } from './args.js';
import { DEVICE_OPTION, deviceHelp, selectDevice } from './device-option.js';
import { ofConfigFile } from '../train/config-merge.js';
import { loadRlConfig, type RlConfig } from '../train/rl/config.js';
import { otherStageSaid } from '../train/config-stage.js';
import { rlRunDescription, trainRl } from '../train/rl/trainer.js';
import { listCheckpoints, readNewestCheckpoint, skippedCheckpointNotes } from '../train/checkpoint.js';
import { loadEnvironment } from '../train/rl/environment-checkpoint.js';
import { RUN_CONFIG_FILE } from '../train/run-watch.js';
import { type Continuation, RunCheck, recordedStage } from '../train/run-record.js';
import { checkRunOutput } from '../train/training-run.js';
import { formatAudit, summariseAudit } from '../rlenv/audit.js';
import { counted } from '../io/counted.js';

const HELP = `search-r3 rlenv audit — the local-refresh environment against exact mode

usage: search-r3 rlenv audit --config <rl-config.json> [--steps N] [--from <run-folder>] [--output <folder>] [--quiet]
         [--device auto|cpu|webgpu]

Runs N real GRPO steps of the given stage-2 config (rollouts, rewards, optimiser updates: the policy
and so every document vector drift as in training). At each step the same responses are scored by the
config's environment (local refresh) and by an exact-mode twin that re-encodes the whole corpus with
the current policy. Reports document encodes per step, environment wall time per step, the mean
staleness of the local table, and how far local rewards are from exact ones (mean and max |Δ|,
Spearman's ρ pooled over all responses and per step). Step 1 starts from a fully encoded corpus, so it
is left out of the figures (both tables are exact there).

With --from, the audit continues a training run instead: it starts from the run's newest checkpoint,
with the policy, optimiser, data position and environment table as training left them (as stale as
they got), and audits every step it runs. The run folder itself is not touched. As with train rl
--resume, the config must have the run's model, data (by content) and settings (its run-config.json,
copied to the audit's folder), except its environment section, the one audited.

options:
  --config <file>    a train rl config (its environment section is the one audited; mode "local")
  --steps <n>        steps to run (default 20; at least 2, as step 1 is left out of the figures; with
                     --from, at least 1)
  --from <folder>    a train rl run folder whose newest checkpoint (with its environment) to start from
                     (it is only read: --output must be another folder)
  --output <folder>  run folder for the audit (default <config output>-audit); gets metrics.jsonl
                     (train and audit records) and audit.json (the summary)
  --quiet            no progress output
${deviceHelp(21)}`;

/** compare local-refresh and exact environments on real training steps */
const auditCommand: Command & { name: string } = {
  name: 'audit',
  help: HELP,
  async run(argv: string[]): Promise<number> {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        steps: { type: 'string' },
        output: { type: 'string' },
        from: { type: 'string' },
        quiet: { type: 'boolean' },
        ...DEVICE_OPTION,
      },
    });
    if (!values.config)
      throw new UserError(
        'rlenv audit needs --config <file.json> (a train rl config; see search-r3 rlenv audit --help).',
      );
    // from scratch, step 1 compares two freshly encoded tables, so an audit needs a second step
    const steps = intAtLeast(values.steps, 'steps', values.from ? 1 : 2) ?? 20;
    selectDevice(values.device);
    let cfg: RlConfig;
    try {
      cfg = loadRlConfig(values.config);
    } catch (e) {
      throw otherStageSaid(e, 'rl');
    }
    // the twin is exact: an exact environment against it compares a table with its own copy
    if (cfg.environment.mode !== 'local')
      throw new UserError(
        `${values.config}: "environment.mode" is "${cfg.environment.mode}", and rlenv audit measures the ` +
          'local-refresh environment against an exact one, so there is nothing to audit; set environment.mode to ' +
          '"local"',
      );
    cfg.output = path.resolve(values.output ?? `${cfg.output}-audit`);
    if (!values.from && listCheckpoints(path.join(cfg.output, 'checkpoints')).length > 0) {
      // train rl would say "pass --resume", which an audit does not take
      throw new UserError(
        `${cfg.output} already holds checkpoints (an earlier audit, or a run); name another --output, or delete ` +
          'it to audit again.',
      );
    }
    const start = values.from ? await startFromCheckpoint(path.resolve(values.from), cfg) : null;
    const total = (start?.step ?? 0) + steps;
    cfg.checkpoint.every = total + 1; // the audit needs no checkpoints beyond the final one
    const t0 = Date.now();
    const config = values.config;
    const s = await trainRl(cfg, { progress: !values.quiet, audit: true, steps: total, resume: start !== null }).catch(
      (e: unknown) => Promise.reject(ofConfigFile(e, config)),
    );
    // from scratch, step 1 scores a freshly encoded corpus in both tables: nothing to compare
    const summary = summariseAudit(s.audit.filter((a) => start !== null || a.step > 1));
    const e = cfg.environment;
    const from = start ? `from ${start.dir} (step ${start.step}); ` : '';
    const header =
      `${from}environment: ${s.data.documents} documents; local refresh budget ${e.budget}, candidates ` +
      `${e.candidates}/response, ` +
      `neighbours ${e.neighbours}/candidate, rolling ${e.rolling}, full every ${e.fullEvery || 'never'}, ` +
      `drift correction ${e.driftCorrection ? 'on' : 'off'}; ` +
      `${cfg.rollout.queries} queries × ${cfg.rollout.group} responses per step, ` +
      `${counted(cfg.loss.innerEpochs, 'update')} per step, lr ${cfg.optimizer.lr}, ` +
      `reward ${cfg.reward.kind}@${cfg.reward.k}`;
    const out = {
      config: path.resolve(values.config),
      steps,
      header,
      summary,
      setupSeconds: s.setupSeconds,
      totalSeconds: (Date.now() - t0) / 1000,
    };
    const file = path.join(cfg.output, 'audit.json');
    writeFileAtomicallySync(file, JSON.stringify(out, null, 1));
    console.log(`${header}\n${formatAudit(summary)}\n(total ${out.totalSeconds.toFixed(0)} s; summary in ${file})`);
    return 0;
  },
};

/** An audit continues a run as --resume would, with the run's settings; it has no run of its own to start. */
const AUDIT_FROM: Continuation = { name: 'rlenv audit --from', verb: 'audit' };

/**
 * Copies a run's newest intact checkpoint (read and checked, damaged newer ones skipped with a
 * warning) into the audit's folder (cfg.output), so that the audit resumes from it. The run is only read.
 */
async function startFromCheckpoint(run: string, cfg: RlConfig): Promise<{ dir: string; step: number }> {
  const output = cfg.output;
  if (!existsSync(run)) throw new UserError(`--from: ${run} does not exist; give the output folder of a train rl run`);
  if (path.resolve(output) === run)
    throw new UserError(`--output ${output} is the run --from reads; the audit writes into a folder of its own`);
  const stage = recordedStage(run);
  if (stage !== null && stage !== 'rl') {
    const says = `is the run folder of a train ${stage} run (its ${RUN_CONFIG_FILE} says so)`;
    throw new UserError(`--from: ${run} ${says}; give the output folder of a train rl run`);
  }
  const root = path.join(run, 'checkpoints');
  if (listCheckpoints(root).length === 0) {
    throw new UserError(`--from: ${run} has no checkpoints/step-* folder; give the output folder of a train rl run`);
  }
  const start = await readNewestCheckpoint(root, loadEnvironment);
  const { dir, state, extra } = start.contents;
  for (const line of skippedCheckpointNotes(start)) console.error(line);
  if (!extra) {
    const why = 'holds no environment (written before checkpoints saved it); audit without --from instead';
    throw new UserError(`--from: ${dir} ${why}`);
  }
  if (listCheckpoints(path.join(output, 'checkpoints')).length > 0) {
    throw new UserError(`${output} already holds an audit's checkpoints; choose another --output or remove it`);
  }
  // checked before the copy, which would make --output a run's folder that a refused audit leaves behind (and a
  // rerun then refuses as an earlier audit's), or write the run's files among others' or under a file
  checkRunOutput(output);
  await (await RunCheck.read(run, rlRunDescription(cfg, true))).checkResume(AUDIT_FROM);
  cpSync(dir, path.join(output, 'checkpoints', path.basename(dir)), { recursive: true });
  // the run's record comes with its checkpoint, so the audit resumes only with the run's model, data and
  // settings (its environment may differ: that is what the audit measures), as train rl --resume would
  const record = path.join(run, RUN_CONFIG_FILE);
  if (existsSync(record)) cpSync(record, path.join(output, RUN_CONFIG_FILE));
  else rmSync(path.join(output, RUN_CONFIG_FILE), { force: true });
  return { dir, step: state.step };
}

const subcommands = [auditCommand];

export const rlenvCommand: Command = {
  help: `search-r3 rlenv — the RL retrieval environment\n\nusage: search-r3 rlenv audit [options]\n\n${HELP}`,
  subcommands: subcommands.map((c) => c.name),
  async run(argv: string[]): Promise<number> {
    const [sub, ...rest] = argv;
    const cmd = subcommands.find((c) => c.name === sub);
    if (!cmd)
      throw subcommandError(
        'rlenv',
        sub,
        subcommands.map((c) => c.name),
      );
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(cmd.help);
      return 0;
    }
    return cmd.run(rest);
  },
};
