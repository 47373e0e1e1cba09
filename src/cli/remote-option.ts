/** --remote and --api-key of index and search: the servers that embed, and the key they ask for. */
import { RemoteEmbedder, RemoteError } from '../client/remote-embedder.js';
import { UserError } from './command.js';

/**
 * Connects to the comma-separated servers of --remote with --api-key (else $SEARCH_R3_API_KEY). A server that
 * refuses the key answers in HTTP's words (send Authorization: Bearer); the sentence adds the option that sends it.
 */
export async function connectRemote(urls: string, apiKey: string | undefined): Promise<RemoteEmbedder> {
  const key = apiKey ?? process.env.SEARCH_R3_API_KEY;
  try {
    return await RemoteEmbedder.connect(
      urls
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      { apiKey: key },
    );
  } catch (e) {
    if (!(e instanceof RemoteError) || e.status !== 401) throw e;
    const how = key === undefined ? 'give it with --api-key <key> or SEARCH_R3_API_KEY' : 'check --api-key';
    throw new UserError(`${e.message.replace(/\.$/, '')}; ${how}.`);
  }
}
