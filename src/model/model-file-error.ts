/**
 * A model file (config.json, *.safetensors, tokenizer.json, ...) that we cannot use as it is.
 * The message is one sentence for the user that names the file (and the tensor or field) and the
 * problem; the CLI prints it without a stack trace.
 */
export class ModelFileError extends Error {
  constructor(
    readonly file: string,
    /** The problem, without the file (for a reader who must not see the machine's paths). */
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFileError';
  }
}
