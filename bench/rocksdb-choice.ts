/**
 * `rocksdb` (discontinued upstream; leveldown callback API) versus `@nxtedition/rocksdb` (maintained
 * fork; used synchronously by state/rocks.ts) on the state-store workload: batch puts of ~600-byte
 * values keyed by request ID, point gets, bounded range scans.
 * Run: `npm run build && node --expose-gc dist/bench/rocksdb-choice.js [--ops N]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { StateError, UsageError } from '../engine/errors.js';
import { RocksDatabase } from '../state/rocks.js';
import { collectGarbage, formatTable, isMainModule, machineInfo, rate, resultPath, writeResult, type MachineInfo } from './measure.js';
import { benchRequestId, mulberry32 } from './traffic.js';

export type Phase = 'put' | 'get' | 'scan' | 'getConcurrent';

/** One library driven the way it would be used on the hot path; each phase runs to completion. */
interface Store {
  putBatches(batches: ReadonlyArray<ReadonlyArray<readonly [Buffer, Buffer]>>): Promise<void>;
  /** Point gets one after the other (a stream task needs each answer before the next record). */
  getEach(keys: readonly Buffer[]): Promise<number>;
  /** Point gets with up to `inFlight` outstanding; null when the API is synchronous (no overlap possible). */
  getConcurrent: ((keys: readonly Buffer[], inFlight: number) => Promise<number>) | null;
  /** One bounded scan per start key; returns the rows read. */
  scanEach(starts: readonly Buffer[], limit: number): Promise<number>;
  close(): Promise<void>;
}

export interface Contender {
  name: string;
  api: string;
  open(dir: string): Promise<Store>;
}

const require = createRequire(import.meta.url);
const KEY_END = Buffer.from([0xff]);

// ---- rocksdb 5.x (leveldown / abstract-leveldown 7: callbacks only) ----

type Callback<T> = (err: Error | null | undefined, value?: T) => void;
interface LeveldownIterator {
  next(cb: (err: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void;
  end(cb: (err?: Error | null) => void): void;
}
interface Leveldown {
  open(options: object, cb: (err?: Error | null) => void): void;
  close(cb: (err?: Error | null) => void): void;
  batch(ops: Array<{ type: 'put'; key: Buffer; value: Buffer }>, cb: (err?: Error | null) => void): void;
  get(key: Buffer, options: object, cb: Callback<Buffer>): void;
  iterator(options: object): LeveldownIterator;
}

function settle<T>(run: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));
}

const classic: Contender = {
  name: 'rocksdb 5.2.1',
  api: 'async (callbacks)',
  async open(dir) {
    const factory = require('rocksdb') as (location: string) => Leveldown;
    const db = factory(dir);
    await settle<void>((cb) => db.open({ createIfMissing: true }, cb));
    const getOne = (key: Buffer): Promise<Buffer> => settle<Buffer>((cb) => db.get(key, { asBuffer: true }, cb));
    return {
      async putBatches(batches) {
        for (const batch of batches) {
          await settle<void>((cb) => db.batch(batch.map(([key, value]) => ({ type: 'put' as const, key, value })), cb));
        }
      },
      async getEach(keys) {
        let bytes = 0;
        for (const key of keys) bytes += (await getOne(key)).length;
        return bytes;
      },
      getConcurrent: (keys, inFlight) => concurrently(keys, inFlight, getOne),
      async scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) {
          const it = db.iterator({ gte, lt: KEY_END, limit, keyAsBuffer: true, valueAsBuffer: true });
          for (;;) {
            const key = await new Promise<Buffer | undefined>((resolve, reject) => it.next((err, k) => (err ? reject(err) : resolve(k))));
            if (key === undefined) break;
            rows++;
          }
          await settle<void>((cb) => it.end(cb));
        }
        return rows;
      },
      close: () => settle<void>((cb) => db.close(cb)),
    };
  },
};

// ---- @nxtedition/rocksdb 12.x ----

interface NxtBatch {
  put(key: Buffer, value: Buffer): void;
  _writeSync(options: { sync: boolean }): void;
}
interface NxtIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
}
interface NxtDb {
  open(): Promise<void>;
  close(): Promise<void>;
  batch(): NxtBatch;
  batch(ops: Array<{ type: 'put'; key: Buffer; value: Buffer }>): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  iterator(options: object): NxtIterator;
  _getManySync(keys: Buffer[], options: object): Array<Buffer | undefined>;
  querySync(options: object): { rows: Buffer[]; finished: boolean };
}
type NxtCtor = new (location: string, options: object) => NxtDb;
const BUFFERS = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;

function openNxt(dir: string, extra: object = {}): Promise<NxtDb> {
  const { RocksLevel } = require('@nxtedition/rocksdb') as { RocksLevel: NxtCtor };
  const db = new RocksLevel(dir, { ...BUFFERS, createIfMissing: true, ...extra });
  return db.open().then(() => db);
}

const nxtAsync: Contender = {
  name: '@nxtedition/rocksdb 12.2.12',
  api: 'async (promises)',
  async open(dir) {
    const db = await openNxt(dir);
    const getOne = async (key: Buffer): Promise<Buffer> => {
      const value = await db.get(key);
      if (value === undefined) throw new StateError(`benchmark key ${key.toString()} is missing`);
      return value;
    };
    return {
      async putBatches(batches) {
        for (const batch of batches) await db.batch(batch.map(([key, value]) => ({ type: 'put' as const, key, value })));
      },
      async getEach(keys) {
        let bytes = 0;
        for (const key of keys) bytes += (await getOne(key)).length;
        return bytes;
      },
      getConcurrent: (keys, inFlight) => concurrently(keys, inFlight, getOne),
      async scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) {
          const it = db.iterator({ gte, lt: KEY_END, limit });
          rows += (await it.nextv(limit)).length;
          await it.close();
        }
        return rows;
      },
      close: () => db.close(),
    };
  },
};

/** The engine's facade (state/rocks.ts): synchronous batch write, multi-get and bounded query. */
const nxtSync: Contender = {
  name: '@nxtedition/rocksdb 12.2.12',
  api: 'sync, via state/rocks.ts',
  async open(dir) {
    const db = await RocksDatabase.open(dir);
    return {
      putBatches(batches) {
        for (const batch of batches) db.write(batch.map(([key, value]) => ({ type: 'put' as const, key, value })));
        return Promise.resolve();
      },
      getEach(keys) {
        let bytes = 0;
        for (const key of keys) {
          const value = db.get(key);
          if (value === undefined) throw new StateError(`benchmark key ${key.toString()} is missing`);
          bytes += value.length;
        }
        return Promise.resolve(bytes);
      },
      getConcurrent: null,
      scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) rows += db.range(gte, KEY_END, limit).length;
        return Promise.resolve(rows);
      },
      close: () => db.close(),
    };
  },
};

/** Same synchronous calls with the fork's WAL compression (on by default, done on the writing thread) turned off: a tuning data point. */
const nxtSyncNoWalCompression: Contender = {
  name: '@nxtedition/rocksdb 12.2.12',
  api: 'sync, walCompression: false',
  async open(dir) {
    const db = await openNxt(dir, { walCompression: false });
    return {
      putBatches(batches) {
        for (const batch of batches) {
          const b = db.batch();
          for (const [key, value] of batch) b.put(key, value);
          b._writeSync({ sync: false });
        }
        return Promise.resolve();
      },
      getEach(keys) {
        let bytes = 0;
        for (const key of keys) bytes += (db._getManySync([key], BUFFERS)[0] as Buffer).length;
        return Promise.resolve(bytes);
      },
      getConcurrent: null,
      scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) rows += db.querySync({ ...BUFFERS, gte, lt: KEY_END, limit }).rows.length / 2;
        return Promise.resolve(rows);
      },
      close: () => db.close(),
    };
  },
};

export const CONTENDERS: readonly Contender[] = [classic, nxtAsync, nxtSync, nxtSyncNoWalCompression];

async function concurrently(keys: readonly Buffer[], inFlight: number, getOne: (key: Buffer) => Promise<Buffer>): Promise<number> {
  let next = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const value = await getOne(keys[next++] as Buffer);
      bytes += value.length; // after the await: `bytes += await ...` would read a stale total
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return bytes;
}

export interface Workload {
  ops: number;
  batchSize: number;
  valueBytes: number;
  scanLimit: number;
  concurrency: number;
  batches: Array<Array<readonly [Buffer, Buffer]>>;
  getKeys: Buffer[];
  scanStarts: Buffer[];
}

/**
 * Values shaped like an Avro map of doubles (short ASCII names + 8 random bytes), so they compress
 * about as well as real state; keys are UUID-shaped request IDs in random order.
 */
export function buildWorkload(ops: number, options: { batchSize?: number; valueBytes?: number; scanLimit?: number; concurrency?: number; seed?: number } = {}): Workload {
  const batchSize = options.batchSize ?? 500;
  const valueBytes = options.valueBytes ?? 600;
  const scanLimit = options.scanLimit ?? 10;
  const seed = options.seed ?? 7;
  const random = mulberry32(seed);
  const keys = Array.from({ length: ops }, (_, i) => Buffer.from(benchRequestId(seed, i), 'utf8'));
  const batches: Array<Array<readonly [Buffer, Buffer]>> = [];
  for (let i = 0; i < ops; i += batchSize) {
    batches.push(keys.slice(i, i + batchSize).map((key, j) => [key, shapedValue(valueBytes, random, i + j)] as const));
  }
  const pick = (): Buffer => keys[Math.floor(random() * keys.length)] as Buffer;
  return {
    ops,
    batchSize,
    valueBytes,
    scanLimit,
    concurrency: options.concurrency ?? 32,
    batches,
    getKeys: Array.from({ length: ops }, pick),
    scanStarts: Array.from({ length: Math.max(1, Math.floor(ops / scanLimit)) }, pick),
  };
}

function shapedValue(size: number, random: () => number, n: number): Buffer {
  const value = Buffer.allocUnsafe(size);
  let at = 0;
  let field = 0;
  while (at < size) {
    const name = `feature_${String(field++ % 40).padStart(2, '0')}`;
    at += value.write(name, at, 'latin1');
    for (let b = 0; b < 8 && at < size; b++) value[at++] = Math.floor(random() * 256) ^ (n & 0xff);
  }
  return value;
}

