/**
 * Training off the event loop: `trainLogistic` in a worker thread, so the engine keeps processing
 * (and a Kafka consumer keeps polling) while a model trains. Falls back to the calling thread when
 * the compiled worker is not there (running from the TypeScript sources without a build).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../config/paths.js';
import { trainLogistic, type LabeledRow, type LogisticModel, type TrainOptions } from './logistic-regression.js';
import { ModelError } from './model-error.js';

export interface TrainRequest {
  rows: LabeledRow[];
  featureNames: string[];
  classes: string[];
  options: Omit<TrainOptions, 'onProgress'>;
}

export type TrainWorkerMessage =
  | { kind: 'progress'; iteration: number; loss: number }
  | { kind: 'done'; model: LogisticModel }
  | { kind: 'failed'; message: string };

/** Same result as `trainLogistic` (bit for bit: the same code on the same rows), computed in a worker thread. */
export async function trainInWorker(request: TrainRequest, onProgress: TrainOptions['onProgress'] = () => {}): Promise<LogisticModel> {
  const script = workerScript();
  if (script === undefined) return trainLogistic(request.rows, request.featureNames, request.classes, { ...request.options, onProgress });
  const worker = new Worker(script, { workerData: request });
  try {
    return await new Promise<LogisticModel>((resolve, reject) => {
      worker.on('message', (message: TrainWorkerMessage) => {
        if (message.kind === 'progress') onProgress({ iteration: message.iteration, loss: message.loss });
        else if (message.kind === 'done') resolve(message.model);
        else reject(new ModelError(message.message));
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new ModelError(`the training worker exited (code ${code}) before returning a model`)));
    });
  } finally {
    await worker.terminate();
  }
}

/** The compiled worker: next to this module in dist/, or in dist/ of the package when running from the TS sources. */
function workerScript(): URL | undefined {
  const here = fileURLToPath(import.meta.url);
  const path = here.endsWith('.ts') ? join(packageRoot(), 'dist', 'models', 'train-worker.js') : join(dirname(here), 'train-worker.js');
  return existsSync(path) ? pathToFileURL(path) : undefined;
}
