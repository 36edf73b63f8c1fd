import type { ReplayItem, ReplayStream } from './records.js';

/** A record as the topology driver takes it; key and value are UTF-8 bytes. */
export interface ReplayRecord {
  stream: ReplayStream;
  timestamp: number;
  key: Buffer;
  value: Buffer;
}

/**
 * How batches cross from the reading thread to the topology's thread:
 * - `packed`: one byte buffer with every key and value, plus a Float64Array of (time, stream, key
 *   length, value length) per record; both ArrayBuffers are transferred (moved, not copied), and the
 *   receiver's keys and values are views into them;
 * - `clone`: an array of plain objects with string key and JSON, structured-cloned; the receiver
 *   encodes each string to bytes.
 * bench/replay.ts measures both (`--transfer`); `packed` costs the receiving thread less.
 */
export type TransferMode = 'packed' | 'clone';

export type WireBatch =
  | { kind: 'packed'; meta: Float64Array; bytes: Uint8Array }
  | { kind: 'clone'; items: Array<{ s: ReplayStream; t: number; k: string; j: string }> };

const FIELDS = 4;

export function encodeBatch(items: readonly ReplayItem[], mode: TransferMode): { batch: WireBatch; transfer: ArrayBuffer[] } {
  if (mode === 'clone') return { batch: { kind: 'clone', items: items.map((i) => ({ s: i.stream, t: i.timestamp, k: i.key, j: i.json })) }, transfer: [] };
  const meta = new Float64Array(items.length * FIELDS);
  let total = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as ReplayItem;
    const keyBytes = Buffer.byteLength(item.key, 'utf8');
    const valueBytes = Buffer.byteLength(item.json, 'utf8');
    meta[i * FIELDS] = item.timestamp;
    meta[i * FIELDS + 1] = item.stream;
    meta[i * FIELDS + 2] = keyBytes;
    meta[i * FIELDS + 3] = valueBytes;
    total += keyBytes + valueBytes;
  }
  // Not Buffer.allocUnsafe: small ones come from a shared pool, which cannot be transferred.
  const bytes = Buffer.from(new ArrayBuffer(total));
  let at = 0;
  for (const item of items) {
    at += bytes.write(item.key, at, 'utf8');
    at += bytes.write(item.json, at, 'utf8');
  }
  return { batch: { kind: 'packed', meta, bytes: new Uint8Array(bytes.buffer, 0, total) }, transfer: [meta.buffer as ArrayBuffer, bytes.buffer as ArrayBuffer] };
}

export function decodeBatch(batch: WireBatch): ReplayRecord[] {
  if (batch.kind === 'clone') return batch.items.map((i) => ({ stream: i.s, timestamp: i.t, key: Buffer.from(i.k, 'utf8'), value: Buffer.from(i.j, 'utf8') }));
  const { meta, bytes } = batch;
  const n = meta.length / FIELDS;
  const out: ReplayRecord[] = new Array(n);
  let at = bytes.byteOffset;
  for (let i = 0; i < n; i++) {
    const keyBytes = meta[i * FIELDS + 2] as number;
    const valueBytes = meta[i * FIELDS + 3] as number;
    const key = Buffer.from(bytes.buffer, at, keyBytes);
    const value = Buffer.from(bytes.buffer, at + keyBytes, valueBytes);
    at += keyBytes + valueBytes;
    out[i] = { stream: meta[i * FIELDS + 1] as ReplayStream, timestamp: meta[i * FIELDS] as number, key, value };
  }
  return out;
}

/** The same records without crossing threads (replay without a worker). */
export function itemsToRecords(items: readonly ReplayItem[]): ReplayRecord[] {
  return items.map((i) => ({ stream: i.stream, timestamp: i.timestamp, key: Buffer.from(i.key, 'utf8'), value: Buffer.from(i.json, 'utf8') }));
}
