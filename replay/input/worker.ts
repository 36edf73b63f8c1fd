/**
 * Worker-thread entry of replay: reads, validates and orders the archive (ArchiveReader) and posts
 * the records in batches to the thread that runs the topology, at most `maxInFlight` unacknowledged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { encodeBatch } from './batch.js';
import { DisorderError } from './merge.js';
import { ArchiveReader } from './reader.js';
import { StrictStop } from './records.js';
import type { FromWorker, WorkerInput } from './worker-protocol.js';

const input = workerData as WorkerInput;
const port = parentPort;
if (port === null) throw new Error('replay/input/worker.js runs as a worker thread');

let inFlight = 0;
let acked: (() => void) | undefined;
port.on('message', () => {
  inFlight--;
  const wake = acked;
  acked = undefined;
  wake?.();
});

const post = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

async function run(): Promise<void> {
  const reader = new ArchiveReader(input.spec, input.mode, input.batchSize);
  try {
    for await (const batch of reader.batches()) {
      const { batch: wire, transfer } = encodeBatch(batch.items, input.transfer);
      inFlight++;
      post({ type: 'batch', batch: wire, rejects: batch.rejects, bytes: batch.bytes, records: batch.records }, transfer);
      while (inFlight >= input.maxInFlight) await new Promise<void>((resolve) => (acked = resolve));
    }
    post({ type: 'end', stats: reader.stats, bytes: reader.bytesRead() });
  } catch (err) {
    const rejects = reader.takeRejects();
    if (err instanceof DisorderError) post({ type: 'disorder', file: err.file, line: err.line, rejects, stats: reader.stats });
    else if (err instanceof StrictStop) post({ type: 'strict', reasonCode: err.reasonCode, message: err.message, rejects, stats: reader.stats });
    else post({ type: 'error', message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? (err.stack ?? '') : '', rejects, stats: reader.stats });
  }
}

void run();
