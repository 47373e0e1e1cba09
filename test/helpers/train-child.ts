/**
 * A training run in a child process, for the kill-and-resume test: runs `train sft` on the config given
 * as argv[2] (argv[3] = 'resume' to resume), prints "step N" after every step and sleeps SLEEP_MS after
 * each, so that the parent can SIGKILL it at a chosen point. Does nothing without arguments (the test
 * runner may load every file under dist/test).
 */
import { loadSftConfig } from '../../src/train/sft/config.js';
import { trainSft } from '../../src/train/sft/trainer.js';

const [, , configFile, mode] = process.argv;
if (configFile) {
  const sleepMs = Number(process.env.SLEEP_MS ?? '0');
  const pause = new Int32Array(new SharedArrayBuffer(4));
  await trainSft(loadSftConfig(configFile), {
    resume: mode === 'resume',
    progress: false,
    onStep: (step) => {
      process.stdout.write(`step ${step}\n`);
      if (sleepMs > 0) Atomics.wait(pause, 0, 0, sleepMs);
    },
  });
  process.stdout.write('done\n');
}
