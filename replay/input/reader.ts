import type { ArchiveFile } from './files.js';
import { FileFeed } from './feed.js';
import { inFileOrder, mergedByTime } from './merge.js';
import { emptyStats, RecordValidator, type ReadSpec, type ReadStats, type RejectedLine, type ReplayItem } from './records.js';

/**
 * `merge`: the files merged into replay order on the fly (reorder buffer of `window` items per file);
 * `files`: file after file in archive order, for the on-disk sort.
 */
export type ReadMode = { kind: 'merge'; window: number } | { kind: 'files' };

export interface ReadBatch {
  items: ReplayItem[];
  /** Lines rejected since the previous batch. */
  rejects: RejectedLine[];
  /** Compressed bytes read so far, over all files. */
  bytes: number;
  /** Lines read so far. */
  records: number;
}

/**
 * Reads, validates and orders the archive: the work replay can do away from the thread that runs the
 * topology (in a worker thread, see worker.ts). `stats` holds the counts once it is done.
 */
export class ArchiveReader {
  readonly stats: ReadStats = emptyStats();
  private rejects: RejectedLine[] = [];
  private readonly feeds: FileFeed[];

  constructor(
    readonly spec: ReadSpec,
    private readonly mode: ReadMode,
    private readonly batchSize: number,
  ) {
    const validator = new RecordValidator(spec, this.stats, this.rejects);
    this.feeds = spec.files.map((file: ArchiveFile, i) => new FileFeed(file, i, spec, validator));
  }

  async *batches(): AsyncGenerator<ReadBatch> {
    const source = this.mode.kind === 'merge' ? mergedByTime(this.feeds, this.mode.window, this.batchSize) : inFileOrder(this.feeds, this.batchSize);
    for await (const items of source) yield this.batch(items);
    // The rejects of the last lines read.
    if (this.rejects.length > 0) yield this.batch([]);
  }

  /** The rejects not yet handed out (after a failure, e.g. the line --strict stopped at). */
  takeRejects(): RejectedLine[] {
    return this.rejects.splice(0, this.rejects.length);
  }

  bytesRead(): number {
    let bytes = 0;
    for (const feed of this.feeds) bytes += feed.bytesRead;
    return bytes;
  }

  private batch(items: ReplayItem[]): ReadBatch {
    return { items, rejects: this.takeRejects(), bytes: this.bytesRead(), records: this.stats.records.gateway + this.stats.records.business };
  }
}
