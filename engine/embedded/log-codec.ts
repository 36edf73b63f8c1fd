import type { Headers } from '../record.js';

/** Binary layout of keys and entries in the embedded log's RocksDB database. */
export const KEY_RECORD = 0x10;
export const KEY_END_OFFSET = 0x11;
export const KEY_GROUP_OFFSET = 0x20;
export const KEY_TOPIC = 0x30;
export const KEY_SCHEMA = 0x40;

export function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  buf.writeUInt32BE(value >>> 0, at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}

export function u64(value: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, value, 0);
  return b;
}

/** [tag] topic 0x00 u32(partition) — the prefix of every record of one partition. */
export function partitionPrefix(tag: number, topic: string, partition: number): Buffer {
  const t = Buffer.byteLength(topic);
  const b = Buffer.allocUnsafe(1 + t + 1 + 4);
  b[0] = tag;
  b.write(topic, 1, 'utf8');
  b[1 + t] = 0;
  b.writeUInt32BE(partition, 2 + t);
  return b;
}

export function recordKey(prefix: Buffer, offset: number): Buffer {
  const b = Buffer.allocUnsafe(prefix.length + 8);
  prefix.copy(b, 0);
  writeU64(b, offset, prefix.length);
  return b;
}

export function offsetOfRecordKey(key: Buffer): number {
  return readU64(key, key.length - 8);
}

export function groupOffsetKey(group: string, topic: string, partition: number): Buffer {
  return Buffer.concat([Buffer.from([KEY_GROUP_OFFSET]), Buffer.from(`${group}\u0000`, 'utf8'), partitionPrefix(0, topic, partition).subarray(1)]);
}

export function topicKey(topic: string): Buffer {
  return Buffer.concat([Buffer.from([KEY_TOPIC]), Buffer.from(topic, 'utf8')]);
}

export interface LogEntry {
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

export function encodeEntry(entry: LogEntry): Buffer {
  const headerPairs = Object.entries(entry.headers);
  let size = 8 + 4 + (entry.key?.length ?? 0) + 4 + (entry.value?.length ?? 0) + 2;
  const encodedHeaders: Array<[Buffer, Buffer]> = [];
  for (const [k, v] of headerPairs) {
    const kb = Buffer.from(k, 'utf8');
    const vb = Buffer.from(v, 'utf8');
    encodedHeaders.push([kb, vb]);
    size += 2 + kb.length + 4 + vb.length;
  }
  const b = Buffer.allocUnsafe(size);
  let at = b.writeDoubleBE(entry.timestamp, 0);
  at = writeBytes(b, entry.key, at);
  at = writeBytes(b, entry.value, at);
  at = b.writeUInt16BE(encodedHeaders.length, at);
  for (const [kb, vb] of encodedHeaders) {
    at = b.writeUInt16BE(kb.length, at);
    at += kb.copy(b, at);
    at = b.writeUInt32BE(vb.length, at);
    at += vb.copy(b, at);
  }
  return b;
}

export function decodeEntry(b: Buffer): LogEntry {
  const timestamp = b.readDoubleBE(0);
  let at = 8;
  const keyLen = b.readInt32BE(at);
  at += 4;
  const key = keyLen < 0 ? null : b.subarray(at, at + keyLen);
  at += Math.max(keyLen, 0);
  const valueLen = b.readInt32BE(at);
  at += 4;
  const value = valueLen < 0 ? null : b.subarray(at, at + valueLen);
  at += Math.max(valueLen, 0);
  const count = b.readUInt16BE(at);
  at += 2;
  const headers: Headers = {};
  for (let i = 0; i < count; i++) {
    const kl = b.readUInt16BE(at);
    at += 2;
    const k = b.toString('utf8', at, at + kl);
    at += kl;
    const vl = b.readUInt32BE(at);
    at += 4;
    headers[k] = b.toString('utf8', at, at + vl);
    at += vl;
  }
  return { timestamp, key, value, headers };
}

function writeBytes(b: Buffer, bytes: Buffer | null, at: number): number {
  if (bytes === null) return b.writeInt32BE(-1, at);
  at = b.writeInt32BE(bytes.length, at);
  return at + bytes.copy(b, at);
}
