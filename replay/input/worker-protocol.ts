import type { TransferMode, WireBatch } from './batch.js';
import type { ReadMode } from './reader.js';
import type { ReadSpec, ReadStats, RejectedLine } from './records.js';

/** `workerData` of worker.js. */
export interface WorkerInput {
  spec: ReadSpec;
  mode: ReadMode;
  batchSize: number;
  transfer: TransferMode;
  /** Batches posted and not yet acknowledged before the worker waits (bounds the memory between threads). */
  maxInFlight: number;
}

/** Messages of the worker; the main thread answers each `batch` with an acknowledgement (any message). */
export type FromWorker =
  | { type: 'batch'; batch: WireBatch; rejects: RejectedLine[]; bytes: number; records: number }
  | { type: 'end'; stats: ReadStats; bytes: number }
  | { type: 'disorder'; file: number; line: number; rejects: RejectedLine[]; stats: ReadStats }
  | { type: 'strict'; reasonCode: string; message: string; rejects: RejectedLine[]; stats: ReadStats }
  | { type: 'error'; message: string; stack: string; rejects: RejectedLine[]; stats: ReadStats };
