/**
 * A training run folder that cannot be used as asked: it already has checkpoints and --resume was not
 * given, resume found none it can load, or what it holds does not fit this run. The message is one
 * sentence for the user that names the folder or file and what to do.
 */
export class RunFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFolderError';
  }
}
