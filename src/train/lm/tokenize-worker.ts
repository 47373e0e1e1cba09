/**
 * A thread of tokenizeFiles: tokenizes one file at a time, each document's tokens followed by the
 * separator, and sends the stream back (transferred, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../../model/tokenizer.js';
import { type TokenizeReply, type TokenizeTask, tokenizeDocuments } from './tokenize-files.js';

const { tokenizerJson, tokenizerConfig, separator } = workerData as {
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
  separator: number;
};
const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);

parentPort!.on('message', (task: TokenizeTask) => {
  tokenizeDocuments([task.file], tokenizer, separator).then(
    (s) => {
      const reply: TokenizeReply = { index: task.index, tokens: s.tokens, documents: s.documents };
      parentPort!.postMessage(reply, [s.tokens.buffer as ArrayBuffer]);
    },
    (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      const code = (err as { code?: unknown }).code;
      const reply: TokenizeReply = {
        index: task.index,
        error: { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) },
      };
      parentPort!.postMessage(reply);
    },
  );
});
