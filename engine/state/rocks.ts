import { createRequire } from 'node:module';
import { StateError } from '../errors.js';

/**
 * Thin synchronous facade over @nxtedition/rocksdb (the maintained fork of `rocksdb`).
 * Its batch writes, multi-gets and bounded range queries run synchronously, which lets a stream
 * task process a record without awaiting state I/O (see docs/benchmarks.md for the measurement
 * behind the choice).
 */
export type WriteOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

interface NativeBatch {
  _put(key: Buffer, value: Buffer, options: object): void;
  _del(key: Buffer, options: object): void;
  _writeSync(options: { sync: boolean }): void;
  _closeSync(): void;
}

interface NativeDb {
  open(): Promise<void>;
  close(): Promise<void>;
  _chainedBatch(): NativeBatch;
  detachResource(resource: object): void;
  _getManySync(keys: Buffer[], options: object): Array<Buffer | undefined>;
  querySync(options: object): { rows: Buffer[]; finished: boolean };
  getProperty(name: string): string;
}

type RocksLevelCtor = new (location: string, options: object) => NativeDb;

const require = createRequire(import.meta.url);
const { RocksLevel } = require('@nxtedition/rocksdb') as { RocksLevel: RocksLevelCtor };

const BUFFER_ENCODING = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;
const NO_OPTIONS = {};

/**
 * Column-family options for the binding (see docs/benchmarks.md, "RocksDB options"). Durability is not
 * affected: the WAL stays on, batches stay atomic and `syncWrites` still decides fsync per commit.
 */
export const ROCKS_TUNING: Readonly<Record<string, unknown>> = {
  // ZSTD+dictionary on every level (the binding's default) cost 2-5x the background CPU: keep L0 and the base level uncompressed, ZSTD below.
  compaction: 'level', // leveled preset: per-level compression as above, 2 x 32 MiB memtables merged per flush, L0 compacted at 2 files
  compression: false, // no ZSTD dictionary training; the preset's lower levels stay ZSTD
  memtableMemoryBudget: 128 << 20, // at most 6 x 32 MiB of memtables (the preset's default, 256 MiB, allows 6 x 64 MiB)
};

export interface RocksOptions {
  /** fsync the write-ahead log on every commit (survives power loss, not only process crashes). */
  syncWrites?: boolean;
  /** Binding open options replacing ROCKS_TUNING, for bench/rocksdb-options.ts; the engine never sets it. */
  tuning?: Readonly<Record<string, unknown>>;
}

export class RocksDatabase {
  private closed = false;

  private constructor(
    readonly location: string,
    private readonly db: NativeDb,
    private readonly syncWrites: boolean,
  ) {}

  static async open(location: string, options: RocksOptions = {}): Promise<RocksDatabase> {
    // The WAL is written on every commit: compressing it (the binding's default) costs more CPU than it saves I/O here.
    const db = new RocksLevel(location, { ...BUFFER_ENCODING, createIfMissing: true, walCompression: false, cacheSize: 64 << 20, ...(options.tuning ?? ROCKS_TUNING) });
    try {
      await db.open();
    } catch (err) {
      const lockHeld = /lock/i.test(String((err as { cause?: unknown }).cause ?? err));
      throw new StateError(
        lockHeld
          ? `the state directory ${location} is in use by another sampleloop process (RocksDB lock held); stop it or use another --data-dir`
          : `cannot open RocksDB at ${location}: ${String(err)}`,
        { cause: err, retriable: lockHeld },
      );
    }
    return new RocksDatabase(location, db, options.syncWrites ?? false);
  }

  get(key: Buffer): Buffer | undefined {
    return this.db._getManySync([key], BUFFER_ENCODING)[0];
  }

  getMany(keys: Buffer[]): Array<Buffer | undefined> {
    return keys.length === 0 ? [] : this.db._getManySync(keys, BUFFER_ENCODING);
  }

  /** Entries with gte <= key < lt in key order, at most `limit`. */
  range(gte: Buffer, lt: Buffer, limit = Number.MAX_SAFE_INTEGER, reverse = false): Array<[Buffer, Buffer]> {
    const { rows } = this.db.querySync({ ...BUFFER_ENCODING, gte, lt, limit: Math.min(limit, 0x7fffffff), reverse });
    const out: Array<[Buffer, Buffer]> = new Array(rows.length / 2);
    for (let i = 0, j = 0; i < rows.length; i += 2, j++) out[j] = [rows[i] as Buffer, rows[i + 1] as Buffer];
    return out;
  }

  /** Writes every operation atomically: all of them or none survive a crash. */
  write(ops: readonly WriteOp[]): void {
    if (ops.length === 0) return;
    // The native batch directly: abstract-level's public batch API would record every operation and keep
    // the batch attached to the database until an asynchronous close, holding all written bytes meanwhile.
    const batch = this.db._chainedBatch();
    try {
      for (const op of ops) {
        if (op.type === 'put') batch._put(op.key, op.value, NO_OPTIONS);
        else batch._del(op.key, NO_OPTIONS);
      }
      batch._writeSync({ sync: this.syncWrites });
    } finally {
      batch._closeSync();
      this.db.detachResource(batch);
    }
  }

  property(name: string): string {
    return this.db.getProperty(name);
  }

  approximateSizeBytes(): number {
    const live = Number(this.property('rocksdb.estimate-live-data-size'));
    const mem = Number(this.property('rocksdb.cur-size-all-mem-tables'));
    return (Number.isFinite(live) ? live : 0) + (Number.isFinite(mem) ? mem : 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }
}

/** Smallest key greater than every key that starts with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
}
