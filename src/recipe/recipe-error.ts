/** A recipe run refused or failed for a reason its message says in one sentence, with what to do. */
export class RecipeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeError';
  }
}
