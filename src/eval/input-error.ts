/**
 * Bad evaluation input (a malformed line, a missing file, inconsistent ids). The message is one sentence meant for
 * the user, naming the file and, where there is one, the line. The CLI turns it into a UserError.
 */
export class EvalInputError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
  ) {
    super(file === undefined ? message : line === undefined ? `${file}: ${message}` : `${file}:${line}: ${message}`);
    this.name = 'EvalInputError';
  }
}
