/** A problem with an index or its input that the user can fix; the message names the file or field. */
export class IndexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexError';
  }
}
