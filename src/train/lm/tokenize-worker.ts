/**
 * A thread of tokenizeFiles: tokenizes one file at a time, each document's tokens followed by the
 * separator, and sends the stream back (transferred, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../../model/tokenizer.js';
import { InputFileError } from '../../model/bpe-trainer.js';
import { tokenizeDocuments, type TokenizeTask, type TokenizeReply } from './data.js';

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
      const reply: TokenizeReply = {
        index: task.index,
        error: e instanceof Error ? e.message : String(e),
        inputFile: e instanceof InputFileError,
      };
      parentPort!.postMessage(reply);
    },
  );
});
