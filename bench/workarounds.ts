/**
 * Opt-in runtime workaround for a known engine bug, so the benchmark can run at full size before
 * the fix lands. Not applied unless asked for (`--patch-batch-leak`); results record whether it was.
 *
 * The bug: `RocksDatabase.write` (state/rocks.ts) creates an abstract-level chained batch, writes it
 * with `_writeSync` and never closes it. The batch stays attached to the database (its resource
 * set) with every key and value Buffer it was given, and its native WriteBatch keeps a copy of
 * them, so memory grows with every byte the engine ever wrote (~9 KB RSS per input record here).
 * Reproduced by test/bench.pending-bug.test.ts.
 */
import type { RocksDatabase, WriteOp } from '../state/rocks.js';

interface ClosableBatch {
  put(key: Buffer, value: Buffer): void;
  del(key: Buffer): void;
  _writeSync(options: { sync: boolean }): void;
  _closeSync(): void;
}

interface NativeWithResources {
  batch(): ClosableBatch;
  detachResource(resource: object): void;
}

/** Replaces `db.write` on this instance by the same code plus the missing cleanup (free the native batch, detach it). */
export function patchBatchLeak(db: RocksDatabase): void {
  const internals = db as unknown as { db: NativeWithResources; syncWrites: boolean };
  const native = internals.db;
  const sync = internals.syncWrites;
  db.write = (ops: readonly WriteOp[]): void => {
    if (ops.length === 0) return;
    const batch = native.batch();
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      batch._writeSync({ sync });
    } finally {
      batch._closeSync();
      native.detachResource(batch);
    }
  };
}
