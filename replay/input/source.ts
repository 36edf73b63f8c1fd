import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../../config/paths.js';
import { decodeBatch, itemsToRecords, type ReplayRecord, type TransferMode } from './batch.js';
import { DisorderError } from './merge.js';
import { ArchiveReader, type ReadMode } from './reader.js';
import { emptyStats, StrictStop, type ReadSpec, type ReadStats, type RejectedLine } from './records.js';
import type { FromWorker, WorkerInput } from './worker-protocol.js';

export interface SourceBatch {
  records: ReplayRecord[];
  rejects: RejectedLine[];
  /** Compressed bytes read so far. */
  bytes: number;
  /** Lines read so far. */
  lines: number;
}

export interface SourceOptions {
  /** Read in a worker thread (default) or on the calling thread. */
  worker: boolean;
  transfer: TransferMode;
  batchSize: number;
}

/** Replay's input: batches of valid records in the order of `mode`; `stats` is complete once the batches are. */
export interface ArchiveSource {
  batches(): AsyncGenerator<SourceBatch>;
  readonly stats: ReadStats;
  /** Stops reading (the worker is terminated). */
  close(): Promise<void>;
  /** Whether the records are read on another thread. */
  readonly threaded: boolean;
}

/** --strict met a bad line (the batches before the error carried its reject). */
export class StrictStopError extends Error {
  constructor(
    readonly reasonCode: string,
    message: string,
  ) {
    super(message);
  }
}

export function openArchiveSource(spec: ReadSpec, mode: ReadMode, options: SourceOptions): ArchiveSource {
  const script = options.worker ? workerScript() : undefined;
  return script ? new WorkerSource(script, { spec, mode, batchSize: options.batchSize, transfer: options.transfer, maxInFlight: 4 }) : new InlineSource(spec, mode, options.batchSize);
}

/** The compiled worker: next to this module in dist/, or dist/ of the package when running from the TS sources. */
function workerScript(): URL | undefined {
  const here = fileURLToPath(import.meta.url);
  const path = here.endsWith('.ts') ? join(packageRoot(), 'dist', 'replay', 'input', 'worker.js') : join(dirname(here), 'worker.js');
  return existsSync(path) ? pathToFileURL(path) : undefined;
}

class InlineSource implements ArchiveSource {
  readonly threaded = false;
  private readonly reader: ArchiveReader;

  constructor(spec: ReadSpec, mode: ReadMode, batchSize: number) {
    this.reader = new ArchiveReader(spec, mode, batchSize);
  }

  get stats(): ReadStats {
    return this.reader.stats;
  }

  async *batches(): AsyncGenerator<SourceBatch> {
    try {
      for await (const b of this.reader.batches()) yield { records: itemsToRecords(b.items), rejects: b.rejects, bytes: b.bytes, lines: b.records };
    } catch (err) {
      const rejects = this.reader.takeRejects();
      if (rejects.length > 0) yield { records: [], rejects, bytes: this.reader.bytesRead(), lines: 0 };
      if (err instanceof StrictStop) throw new StrictStopError(err.reasonCode, err.message);
      throw err;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

class WorkerSource implements ArchiveSource {
  readonly threaded = true;
  stats: ReadStats = emptyStats();
  private readonly worker: Worker;
  private readonly inbox: FromWorker[] = [];
  private wake: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(script: URL, input: WorkerInput) {
    this.worker = new Worker(script, { workerData: input });
    this.worker.on('message', (m: FromWorker) => this.deliver(m));
    this.worker.on('error', (err) => {
      this.failure = err;
      this.deliver(undefined);
    });
    this.worker.on('exit', (code) => {
      this.failure ??= code === 0 ? undefined : new Error(`the replay reader thread exited with code ${code}`);
      this.deliver(undefined);
    });
  }

  private deliver(message: FromWorker | undefined): void {
    if (message) this.inbox.push(message);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *batches(): AsyncGenerator<SourceBatch> {
    for (;;) {
      const message = this.inbox.shift();
      if (message === undefined) {
        if (this.failure) throw this.failure;
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      switch (message.type) {
        case 'batch':
          // Acknowledge first: the worker reads the next batch while this one is processed.
          this.worker.postMessage(0);
          yield { records: decodeBatch(message.batch), rejects: message.rejects, bytes: message.bytes, lines: message.records };
          break;
        case 'end':
          this.stats = message.stats;
          return;
        default: {
          this.stats = message.stats;
          if (message.rejects.length > 0) yield { records: [], rejects: message.rejects, bytes: 0, lines: 0 };
          if (message.type === 'disorder') throw new DisorderError(message.file, message.line);
          if (message.type === 'strict') throw new StrictStopError(message.reasonCode, message.message);
          const err = new Error(message.message);
          err.stack = message.stack;
          throw err;
        }
      }
    }
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
