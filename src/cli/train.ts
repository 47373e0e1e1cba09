/**
 * `search-r3 train <stage>`: one command for the three training stages (lm, sft, rl). Each stage has its
 * own help (`search-r3 train lm --help`); all take the same options and report the same errors.
 */
import { constants as osConstants } from 'node:os';
import { parseArgs } from './parse-options.js';
import { UserError, type Command } from './command.js';
import { subcommandError } from './subcommand.js';
import { positiveNumber } from './args.js';
import { DEVICE_OPTION, deviceHelp, selectDevice } from './device-option.js';
import { trainLmStage } from './train-lm.js';
import { trainRlStage } from './train-rl.js';
import { trainSftStage } from './train-sft.js';
import { MAX_SECONDS_HELP, SESSION_ENDED } from './train-session.js';
import { ofConfigFile } from '../train/config-merge.js';
import { otherStageSaid } from '../train/config-stage.js';
import type { Stage } from '../train/run-record.js';

/** A training stage: its help, and a run from a config file that returns the line it prints and whether it ended. */
export interface TrainStage {
  name: Stage;
  /** One line for the stage list. */
  summary: string;
  help: string;
  /** What makes a step's work smaller on the GPU: the config's keys (Command.gpuSizeSettings). */
  gpuSizeSettings: string;
  train(
    config: string,
    options: { resume: boolean; progress: boolean; deadline?: number; stop?: AbortSignal },
  ): Promise<{ line: string; finished: boolean; steps: number }>;
}

export { SESSION_ENDED };

/** In the order a model is made. */
const stages: readonly TrainStage[] = [trainLmStage, trainSftStage, trainRlStage];

const HELP = `search-r3 train — train a model, one stage at a time

usage: search-r3 train <stage> --config <file.json> [--resume] [--max-seconds <n>] [--quiet]
                         [--device auto|cpu|webgpu]

stages (search-r3 train <stage> --help: what it trains, and its config):
${stages.map((s) => `  ${s.name.padEnd(4)}  ${s.summary}`).join('\n')}

Each stage trains into the run folder its config names ("output"): metrics.jsonl, checkpoints/ and
final/. A run stopped at any point continues with --resume as if it had never stopped; a NaN or Inf
stops training before its update, names the step and keeps the last checkpoint. SIGINT (Ctrl-C),
SIGTERM or SIGHUP stops it after the step in progress, with a checkpoint (exit code 128 + the signal's
number); one more, a second or more later, stops it at once. A step computes without pause, so signals
sent during it are seen when it ends, as one (SIGKILL ends it at once, with the steps since the last
checkpoint). One run folder takes one trainer at a time.

options:
  --config <file>  the stage's config (JSON; unknown keys are an error)
  --resume         continue from the newest intact checkpoint of the run folder
${MAX_SECONDS_HELP}
  --quiet          no progress output
${deviceHelp(19)}
  -h, --help       this help`;

async function runStage(stage: TrainStage, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      resume: { type: 'boolean' },
      quiet: { type: 'boolean' },
      'max-seconds': { type: 'string' },
      ...DEVICE_OPTION,
    },
  });
  const started = Date.now();
  const name = `train ${stage.name}`;
  if (!values.config) throw new UserError(`${name} needs --config <file.json> (see search-r3 ${name} --help).`);
  const limit = values['max-seconds'];
  const seconds = positiveNumber(limit, 'max-seconds', 'a number of seconds');
  selectDevice(values.device);
  const stop = stopAtCheckpoint();
  let r: { line: string; finished: boolean; steps: number };
  try {
    r = await stage.train(values.config, {
      resume: values.resume ?? false,
      progress: !values.quiet,
      ...(seconds !== undefined ? { deadline: started + seconds * 1000 } : {}),
      stop: stop.signal,
    });
  } catch (e) {
    throw otherStageSaid(ofConfigFile(e, values.config), stage.name);
  } finally {
    stop.release();
  }
  console.log(r.line);
  if (r.finished) return 0;
  const signal = stop.signal.reason as NodeJS.Signals | undefined;
  if (stop.signal.aborted && signal !== undefined) {
    // every step done is checkpointed; a fresh run stopped before its first has nothing to resume
    const next = r.steps > 0 ? 'at a checkpoint; continue with --resume' : 'before its first; run it again';
    console.log(`stopped by ${signal} before the last step, ${next}`);
    return 128 + osConstants.signals[signal];
  }
  console.log(`session ended at --max-seconds ${limit}, before the last step; continue with --resume`);
  return SESSION_ENDED;
}

/** The signals a trainer stops at a checkpoint on: Ctrl-C, kill, and a closed terminal (or its recipe's). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Node's default on these signals ends the process inside a step, losing every step since the last
 * checkpoint. Instead the first asks the run to stop after the step in progress, with a checkpoint
 * (RunOptions.stop); one more stops it at once, the last checkpoint kept, for a step too long to wait for.
 * Returns the signal the run watches and what gives the signals back to Node.
 */
function stopAtCheckpoint(): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  let firstAt: number | null = null;
  const on = (signal: NodeJS.Signals): void => {
    const below = process.stderr.isTTY ? '\n' : ''; // a progress bar may hold the line
    if (firstAt === null) {
      firstAt = Date.now();
      process.stderr.write(
        // what to do next is said when it stops: a run stopped before its first step has nothing to resume
        `${below}search-r3: ${signal}: stopping after the step in progress, with a checkpoint (send it again to ` +
          'stop at once).\n',
      );
      controller.abort(signal);
      return;
    }
    // Ctrl-C reaches a recipe and its training step at once, and the recipe forwards it: one request, twice.
    // Signals that came during a synchronous step are handled back to back when it ends, and count as one too.
    if (Date.now() - firstAt < 1000) return;
    process.stderr.write(
      `${below}search-r3: ${signal}: stopped at once; the last checkpoint is kept, continue with --resume.\n`,
    );
    process.exit(128 + osConstants.signals[signal]);
  };
  for (const s of STOP_SIGNALS) process.on(s, on);
  return {
    signal: controller.signal,
    release: () => {
      for (const s of STOP_SIGNALS) process.off(s, on);
    },
  };
}

export const trainCommand: Command = {
  help: HELP,
  // the device's own advice (a smaller batch or sequence length) would make another run, which --resume
  // refuses: this names the settings that save memory and that a resume takes (run-record.ts)
  afterGpuFailure:
    'run it again with --resume to continue from its last checkpoint (without --resume if it wrote none yet), ' +
    'on this device or with --device cpu; for less memory the resume may lower batch.subBatch (train sft), or ' +
    'batchSize with accumulation raised to keep batchSize × accumulation (train lm), which train the same ' +
    'steps, while another batch or sequence length is another run, for a new "output" folder',
  gpuSizeSettings: (subcommand) => stages.find((s) => s.name === subcommand)?.gpuSizeSettings,
  subcommands: stages.map((s) => s.name),
  subcommandNoun: 'stage',
  helpOf: (subcommand) => stages.find((s) => s.name === subcommand)?.help,
  async run(argv: string[]): Promise<number> {
    const [name, ...rest] = argv;
    const stage = stages.find((s) => s.name === name);
    if (!stage)
      throw subcommandError(
        'train',
        name,
        stages.map((s) => s.name),
        'stage',
      );
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(stage.help);
      return 0;
    }
    return runStage(stage, rest);
  },
};
