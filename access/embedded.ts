import type { EmbeddedLog } from '../engine/embedded/log.js';
import { UsageError } from '../engine/errors.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { decodeFramed, encodeFramed, referencedSchemaId } from '../schemas/codec.js';
import { schemaJson, type SchemaName } from '../schemas/index.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import type { InputProtection } from '../processors/input-protection.js';

/** A record as `consume` prints it. */
export interface DisplayRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string | null;
  headers: Record<string, string>;
  /** Decoded value: Avro through the registry, JSON as is, other bytes as { base64 }. */
  value: unknown;
}

export interface ReadOptions {
  /** Offset to start at in every partition (default: the start of the log). */
  from?: number;
  partition?: number;
  max?: number;
}

export interface StoreSummary {
  store: string;
  task: string;
  entries: number;
  bytes: number;
}

export interface TopicSummary {
  topic: string;
  partitions: number;
  /** null when it cannot be read (Kafka: the client has no DescribeConfigs). */
  compact: boolean | null;
  retentionMs: number | null;
  records: number;
  endOffsets: number[];
}

/** What the CLI does with the embedded log, either directly or through a running engine's HTTP API. */
export interface LogAccess {
  /**
   * `appendedBefore`: records of the same input that earlier calls appended (a large input goes in
   * pieces), so that an error can say what is safe to send again.
   */
  produce(topic: string, jsonLines: string, options?: { keyField?: string; createPartitions?: number; appendedBefore?: number }): Promise<{ appended: number }>;
  read(topic: string, options?: ReadOptions): Promise<DisplayRecord[]>;
  topics(): Promise<TopicSummary[]>;
  stores(): Promise<StoreSummary[]>;
  /**
   * Appends values encoded as Confluent-framed Avro of one of sampleloop's schemas (subject `<topic>-value`),
   * creating the topic when missing (1 partition, not compacted, no retention). Only with direct access.
   */
  produceAvro?(topic: string, schema: SchemaName, records: ReadonlyArray<{ key: string | null; value: object; timestamp: number }>): Promise<{ appended: number }>;
}

/**
 * Each non-empty line becomes one record holding the line's bytes unchanged, so a malformed line
 * reaches the engine and ends in the dead-letter topic instead of vanishing at the producer. A
 * record's log timestamp is its line's `timestamp` when that is valid (a non-negative integer, as
 * Avro's timestamp-millis); a line without one takes the previous valid line's (the next one's
 * before the first), so it never stamps a record far from the traffic around it; only an input with
 * no valid timestamp at all is stamped `now`.
 */
export function jsonLinesToRecords(topic: string, text: string, keyField: string, now: number): OutputRecord[] {
  const records: OutputRecord[] = [];
  let firstValid = -1;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.length === 0) continue;
    let key: Buffer | null = null;
    let timestamp = Number.NaN;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown> | null;
      const k = parsed?.[keyField];
      if (typeof k === 'string' && k.length > 0) key = Buffer.from(k, 'utf8');
      // A fractional or negative one would become the log timestamp the dead letter of this record must carry.
      const t = parsed?.timestamp;
      if (typeof t === 'number' && Number.isSafeInteger(t) && t >= 0) timestamp = t;
    } catch {
      // kept as is: the engine dead-letters it with the reason
    }
    if (firstValid < 0 && !Number.isNaN(timestamp)) firstValid = timestamp;
    records.push({ topic, key, value: Buffer.from(line, 'utf8'), timestamp, headers: {} });
  }
  let previous = firstValid < 0 ? now : firstValid;
  for (const r of records) {
    if (Number.isNaN(r.timestamp)) r.timestamp = previous;
    else previous = r.timestamp;
  }
  return records;
}

export function toDisplay(record: SourceRecord, registry: SchemaRegistry): DisplayRecord {
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
    key: record.key === null ? null : record.key.toString('utf8'),
    headers: record.headers,
    value: displayValue(record.value, registry),
  };
}

function displayValue(bytes: Buffer | null, registry: SchemaRegistry): unknown {
  if (bytes === null) return null;
  if (referencedSchemaId(bytes) !== undefined) {
    try {
      return plain(decodeFramed(bytes, (id) => registry.cached(id)).value);
    } catch {
      return { base64: bytes.toString('base64') };
    }
  }
  const text = bytes.toString('utf8');
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return { text };
    }
  }
  return { base64: bytes.toString('base64') };
}

/** Avro-decoded values as plain JSON: bytes become UTF-8 text when they are text, base64 otherwise. */
function plain(value: unknown): unknown {
  if (Buffer.isBuffer(value)) {
    const text = value.toString('utf8');
    return Buffer.from(text, 'utf8').equals(value) && !/[\u0000-\u0008\u000e-\u001f]/.test(text) ? text : { base64: value.toString('base64') };
  }
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

/**
 * The CLI's and the topic API's access to the embedded log. With `ingest`, records of the input
 * topics are protected (InputProtection) before they are appended: give it wherever users' records come in.
 */
export function directAccess(log: EmbeddedLog, registry: SchemaRegistry, now: () => number = Date.now, { ingest }: { ingest?: InputProtection } = {}): LogAccess {
  return {
    produce: (topic, text, produceOptions = {}) => {
      log.ensureTopic(topic, produceOptions.createPartitions === undefined ? {} : { partitions: produceOptions.createPartitions });
      const records = jsonLinesToRecords(topic, text, produceOptions.keyField ?? 'requestId', now());
      log.append(ingest ? ingest.protectRecords(records) : records);
      return Promise.resolve({ appended: records.length });
    },
    read: (topic, options = {}) => {
      const config = log.topic(topic);
      if (!config) throw new UsageError(`unknown topic "${topic}"; existing topics: ${log.listTopics().map(([t]) => t).join(', ') || '(none)'}`);
      if (options.partition !== undefined && options.partition >= config.partitions) {
        throw new UsageError(`topic "${topic}" has ${config.partitions} partition(s), numbered from 0; there is no partition ${options.partition}`);
      }
      const out: DisplayRecord[] = [];
      const max = options.max ?? Number.MAX_SAFE_INTEGER;
      for (let p = 0; p < config.partitions; p++) {
        if (options.partition !== undefined && options.partition !== p) continue;
        let from = options.from ?? 0;
        while (out.length < max) {
          const batch = log.read(topic, p, from, Math.min(5000, max - out.length));
          for (const r of batch) out.push(toDisplay(r, registry));
          if (batch.length === 0) break;
          from = (batch[batch.length - 1] as SourceRecord).offset + 1;
        }
      }
      return Promise.resolve(out);
    },
    topics: () =>
      Promise.resolve(
        log.listTopics().map(([topic, c]) => {
          const endOffsets: number[] = [];
          let records = 0;
          for (let p = 0; p < c.partitions; p++) {
            endOffsets.push(log.endOffset(topic, p));
            records += log.count(topic, p);
          }
          return { topic, partitions: c.partitions, compact: c.compact, retentionMs: c.retentionMs, records, endOffsets };
        }),
      ),
    stores: () => Promise.resolve(storeSummaries(log)),
    produceAvro: async (topic, schema, records) => {
      const id = await registry.register(`${topic}-value`, schemaJson(schema));
      log.ensureTopic(topic);
      const encoded = records.map((r) => ({ topic, key: r.key === null ? null : Buffer.from(r.key, 'utf8'), value: encodeFramed(schema, id, r.value), timestamp: r.timestamp, headers: {} }));
      log.append(ingest ? ingest.protectRecords(encoded) : encoded);
      return { appended: records.length };
    },
  };
}

/** Entry counts and bytes of every state store instance (key prefix 0x50 + store + NUL + task + NUL). */
export function storeSummaries(log: EmbeddedLog): StoreSummary[] {
  const byInstance = new Map<string, StoreSummary>();
  const start = Buffer.from([0x50]);
  let from = start;
  const end = Buffer.from([0x51]);
  for (;;) {
    const rows = log.db.range(from, end, 10_000);
    for (const [k, v] of rows) {
      const text = k.toString('utf8', 1);
      const [store = '', task = ''] = text.split('\u0000');
      const id = `${store}\u0000${task}`;
      const entry = byInstance.get(id) ?? { store, task, entries: 0, bytes: 0 };
      entry.entries++;
      entry.bytes += k.length + v.length;
      byInstance.set(id, entry);
    }
    if (rows.length < 10_000) break;
    from = Buffer.concat([(rows[rows.length - 1] as [Buffer, Buffer])[0], Buffer.from([0])]);
  }
  return [...byInstance.values()].sort((a, b) => (a.store + a.task).localeCompare(b.store + b.task));
}
