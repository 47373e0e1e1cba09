import path from 'node:path';
import { modelFolderExists } from '../model/json-file.js';
import type { IndexManifest } from '../search-index/manifest.js';
import { UserError } from './command.js';

/**
 * The model folder index.json records, for a command on an existing index given no --model (nor --remote).
 * An index built by remote embedding servers records their model id where a folder would be (they do not say
 * where their model lives), and a folder may have moved since: each is one sentence saying what to pass.
 * `remote`: whether the command takes --remote, so that it may be offered.
 */
export function recordedModelFolder(m: IndexManifest, indexDir: string, remote: boolean): string {
  const manifest = path.join(indexDir, 'index.json');
  const orRemote = remote ? ', or --remote <urls> of servers that run it' : '';
  if (m.model.source === m.model.id) {
    const pass = remote
      ? 'pass --remote <urls> of servers that run that model, or --model <dir> of its folder'
      : 'pass --model <dir> of its folder';
    throw new UserError(
      `the index ${indexDir} was built by remote embedding servers (model ${m.model.id}, recorded in ${manifest}) ` +
        `and names no model folder; ${pass}.`,
    );
  }
  if (!modelFolderExists(m.model.source))
    throw new UserError(
      `the model this index was built with is no longer at ${m.model.source} (recorded in ${manifest}); ` +
        `pass --model <dir> where it is now${orRemote}.`,
    );
  return m.model.source;
}
