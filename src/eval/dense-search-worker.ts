import { parentPort } from 'node:worker_threads';
import { searchSlice, type SliceTask } from './dense-kernel.js';

// One slice of queries per message; the result's typed arrays are transferred back, not copied.
parentPort!.on('message', (task: SliceTask) => {
  const result = searchSlice(task);
  parentPort!.postMessage(result, [...result.docs.map((a) => a.buffer as ArrayBuffer), ...result.scores.map((a) => a.buffer as ArrayBuffer)]);
});
