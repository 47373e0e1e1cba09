/** A fault of the job queue (Redis unreachable or lost, a refused job) said as one sentence for the user. */
export class QueueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueError';
  }
}
