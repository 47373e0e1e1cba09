import { UserError } from './command.js';
import { EvalInputError } from '../eval/input-error.js';
import { IndexError } from '../search-index/index-error.js';
import { ModelFileError } from '../model/model-file-error.js';
import { RemoteError } from '../client/remote-embedder.js';

/** Runs a command body, turning input errors of the layers below (which already name the file) into UserErrors. */
export async function asUserErrors<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof IndexError || e instanceof EvalInputError || e instanceof ModelFileError || e instanceof RemoteError) throw new UserError(e.message);
    throw e;
  }
}
