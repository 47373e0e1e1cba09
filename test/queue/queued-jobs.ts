/** Waits on the queue itself for what an index run has queued, rather than on its progress lines. */
import { Queue } from 'bullmq';
import { until } from '../helpers/until.js';

/**
 * Waits until queue `name` on the Redis at `port` holds `jobs` waiting jobs: the index run that queued them
 * holds the queue (it takes the hold first) and waits for workers. Its first progress line says as much only
 * once its process is 5 s old.
 */
export async function queuedJobs(port: number, name: string, jobs: number, output: () => string): Promise<void> {
  const queue = new Queue(name, { connection: { host: '127.0.0.1', port } });
  try {
    await until(
      async () => (await queue.getWaitingCount()) >= jobs,
      30_000,
      () => `queue '${name}' never held ${jobs} jobs; the run's output:\n${output()}`,
      20,
    );
  } finally {
    await queue.close();
  }
}
