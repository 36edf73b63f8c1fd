import { getHeapStatistics } from 'node:v8';

/**
 * Works around an engine bug (test/replay.pending-bug.test.ts): RocksDatabase.write keeps every key
 * and value it wrote reachable until the database is closed. Replay closes and reopens its
 * databases (a second or less each: RocksDB flushes its memtables) when that starts to matter:
 * once the heap is more than half full and at least MIN_BYTES were written since the last reopen,
 * or after MAX_BYTES whatever the heap.
 */
const MIN_BYTES = 4 * 1024 * 1024;
const MAX_BYTES = 256 * 1024 * 1024;
const HEAP_SHARE = 0.5;

/** Rough bytes one record costs the engine's writes (state + output + index entries). */
export const WRITTEN_BYTES_PER_RECORD = 1024;

export function shouldReopen(writtenBytes: number): boolean {
  if (writtenBytes >= MAX_BYTES) return true;
  if (writtenBytes < MIN_BYTES) return false;
  const heap = getHeapStatistics();
  return heap.used_heap_size > heap.heap_size_limit * HEAP_SHARE;
}
