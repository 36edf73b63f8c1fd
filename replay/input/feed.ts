import type { ArchiveFile } from './files.js';
import { readArchiveRecords } from './lines.js';
import type { RecordValidator, ReplayItem } from './records.js';

/**
 * One archive file read on demand: `pull()` reads and validates the next chunk (about 1 MB of text)
 * and queues its items; between pulls the read is paused. Because chunks are parsed only when the
 * consumer asks, the order in which lines of different files are parsed (and so rejects are listed,
 * and --strict stops) depends on the data alone, never on I/O timing.
 */
export class FileFeed {
  private queue: ReplayItem[] = [];
  private head = 0;
  private started = false;
  private finished = false;
  private failure: unknown;
  private resumeReader: (() => void) | undefined;
  private chunkArrived: (() => void) | undefined;
  /** Compressed bytes of the file read so far. */
  bytesRead = 0;

  constructor(
    private readonly file: ArchiveFile,
    private readonly index: number,
    private readonly options: { delimiter: string; maxRecordBytes: number },
    private readonly validator: RecordValidator,
  ) {}

  /** True when every item was taken and the file is read to its end. */
  get exhausted(): boolean {
    return this.finished && this.head >= this.queue.length;
  }

  get available(): number {
    return this.queue.length - this.head;
  }

  /** The next queued item; call only when `available > 0`. */
  take(): ReplayItem {
    const item = this.queue[this.head++] as ReplayItem;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    return item;
  }

  /** Reads the next chunk (nothing once the file ended); rethrows a read failure or a --strict stop. */
  async pull(): Promise<void> {
    if (this.finished) return this.rethrow();
    const arrived = new Promise<void>((resolve) => (this.chunkArrived = resolve));
    if (!this.started) {
      this.started = true;
      this.read();
    } else {
      const resume = this.resumeReader;
      this.resumeReader = undefined;
      resume?.();
    }
    await arrived;
    this.rethrow();
  }

  private read(): void {
    const signal = (): void => {
      const arrived = this.chunkArrived;
      this.chunkArrived = undefined;
      arrived?.();
    };
    readArchiveRecords(
      this.file,
      {
        delimiter: this.options.delimiter,
        maxLineBytes: this.options.maxRecordBytes,
        onBytes: (bytes) => (this.bytesRead = bytes),
        afterChunk: () => {
          signal();
          return new Promise<void>((resolve) => (this.resumeReader = resolve));
        },
      },
      (raw) => {
        const item = this.validator.accept(this.index, raw);
        if (item !== undefined) this.queue.push(item);
      },
    ).then(
      () => {
        this.finished = true;
        signal();
      },
      (err: unknown) => {
        this.failure = err ?? new Error('reading failed');
        this.finished = true;
        signal();
      },
    );
  }

  private rethrow(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
