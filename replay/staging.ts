import { mkdirSync } from 'node:fs';
import { readU64, writeU64 } from '../engine/embedded/log-codec.js';
import { prefixEnd, RocksDatabase, type WriteOp } from '../engine/state/rocks.js';

const SORTED = 0x01;
const LATEST = 0x02;
const WRITE_BATCH = 5_000;
export const STAGING_PAGE = 5_000;

export interface StagedRecord {
  timestamp: number;
  value: Buffer;
}

/**
 * Disk-backed scratch space of a replay (its own RocksDB database, so archives larger than the heap
 * are fine):
 * - records sorted by (stream, event time, arrival sequence): RocksDB keeps keys sorted on disk, so
 *   reading a stream back gives event-time order, ties in the order the archive holds them;
 * - the latest value per key (a put replaces the previous one), read back in key order.
 */
export class ReplayStaging {
  private pending: WriteOp[] = [];
  private sequence = 0;

  private constructor(private readonly db: RocksDatabase) {}

  /** The database itself: the join keeps its state in it too (under its own key prefix). */
  get database(): RocksDatabase {
    return this.db;
  }

  static async open(dir: string): Promise<ReplayStaging> {
    mkdirSync(dir, { recursive: true });
    return new ReplayStaging(await RocksDatabase.open(dir));
  }

  /** Adds a record of `stream` (0–255) at event time `timestamp` (integer ms >= 0). */
  add(stream: number, timestamp: number, value: Buffer): void {
    const key = Buffer.allocUnsafe(18);
    key[0] = SORTED;
    key[1] = stream;
    writeU64(key, timestamp, 2);
    writeU64(key, this.sequence++, 10);
    this.pending.push({ type: 'put', key, value });
    if (this.pending.length >= WRITE_BATCH) this.flush();
  }

  /** Keeps `value` as the latest for `key`, replacing an earlier one. */
  putLatest(key: Buffer, value: Buffer): void {
    this.pending.push({ type: 'put', key: Buffer.concat([Buffer.from([LATEST]), key]), value });
    if (this.pending.length >= WRITE_BATCH) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    this.db.write(this.pending);
    this.pending = [];
  }

  /** Pages of one stream's records in (event time, sequence) order. */
  *sorted(stream: number, pageSize = STAGING_PAGE): Generator<StagedRecord[]> {
    const prefix = Buffer.from([SORTED, stream]);
    for (const rows of this.pages(prefix, pageSize)) yield rows.map(([k, v]) => ({ timestamp: readU64(k, 2), value: v }));
  }

  /** Pages of `[key, latest value]` in key order (byte order of the keys). */
  *latest(pageSize = STAGING_PAGE): Generator<Array<[Buffer, Buffer]>> {
    for (const rows of this.pages(Buffer.from([LATEST]), pageSize)) yield rows.map(([k, v]) => [k.subarray(1), v]);
  }

  private *pages(prefix: Buffer, pageSize: number): Generator<Array<[Buffer, Buffer]>> {
    this.flush();
    const end = prefixEnd(prefix);
    let from = prefix;
    for (;;) {
      const rows = this.db.range(from, end, pageSize);
      if (rows.length > 0) yield rows;
      if (rows.length < pageSize) return;
      from = Buffer.concat([(rows[rows.length - 1] as [Buffer, Buffer])[0], Buffer.from([0])]);
    }
  }

  async close(): Promise<void> {
    this.pending = [];
    await this.db.close();
  }
}
