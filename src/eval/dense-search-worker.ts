import { parentPort } from 'node:worker_threads';
import { searchSlice, type SliceTask } from './dense-kernel.js';

// One slice of queries per message; progress messages after each document chunk, then the result, whose typed
// arrays are transferred back, not copied.
parentPort!.on('message', (task: SliceTask) => {
  const result = searchSlice(task, (docsDone) => parentPort!.postMessage({ progress: docsDone }));
  parentPort!.postMessage(result, [
    ...result.docs.map((a) => a.buffer as ArrayBuffer),
    ...result.scores.map((a) => a.buffer as ArrayBuffer),
  ]);
});
