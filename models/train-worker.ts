/** Worker thread of `trainInWorker` (models/train-async.ts): trains one model, reporting progress. */
import { parentPort, workerData } from 'node:worker_threads';
import { trainLogistic } from './logistic-regression.js';
import type { TrainRequest, TrainWorkerMessage } from './train-async.js';

const request = workerData as TrainRequest;
const post = (message: TrainWorkerMessage): void => parentPort?.postMessage(message);
try {
  const model = trainLogistic(request.rows, request.featureNames, request.classes, {
    ...request.options,
    onProgress: (p) => post({ kind: 'progress', ...p }),
  });
  post({ kind: 'done', model });
} catch (err) {
  post({ kind: 'failed', message: err instanceof Error ? err.message : String(err) });
}
