import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { ConfigError, LogError } from '../errors.js';
import { partitionForKey } from '../partitioner.js';
import type { OutputRecord, SourceRecord } from '../record.js';
import { prefixEnd, RocksDatabase, type WriteOp } from '../state/rocks.js';
import {
  decodeEntry,
  encodeEntry,
  groupOffsetKey,
  KEY_END_OFFSET,
  KEY_GROUP_OFFSET,
  KEY_RECORD,
  KEY_TOPIC,
  offsetOfRecordKey,
  partitionPrefix,
  readU64,
  recordKey,
  topicKey,
  u64,
} from './log-codec.js';

export interface TopicConfig {
  partitions: number;
  /** Keep only the latest record per key (`cleanup.policy=compact`). */
  compact: boolean;
  /** Delete records older than this; null keeps them forever. */
  retentionMs: number | null;
}

export interface GroupOffset {
  group: string;
  topic: string;
  partition: number;
  offset: number;
}

export interface AppendedRecord {
  topic: string;
  partition: number;
  offset: number;
}

/**
 * The embedded default: durable, partitioned, offset-addressed topics in one local RocksDB
 * database, which also holds the state stores and the consumer offsets. Because one RocksDB
 * write batch is atomic, `commit` makes a processing step's outputs, state changes and input
 * offsets durable together: exactly-once across `kill -9`.
 */
export class EmbeddedLog {
  private readonly topics = new Map<string, TopicConfig>();
  private readonly endOffsets = new Map<string, number>();
  private readonly prefixes = new Map<string, Buffer>();
  private readonly roundRobin = new Map<string, number>();
  private readonly appended = new EventEmitter();

  private constructor(readonly db: RocksDatabase) {
    this.appended.setMaxListeners(0);
  }

  static async open(dir: string, options: { syncWrites?: boolean } = {}): Promise<EmbeddedLog> {
    mkdirSync(dir, { recursive: true });
    const db = await RocksDatabase.open(dir, { syncWrites: options.syncWrites ?? false });
    const log = new EmbeddedLog(db);
    log.loadTopics();
    return log;
  }

  private loadTopics(): void {
    const start = Buffer.from([KEY_TOPIC]);
    for (const [k, v] of this.db.range(start, prefixEnd(start))) {
      const name = k.toString('utf8', 1);
      const config = JSON.parse(v.toString('utf8')) as TopicConfig;
      this.topics.set(name, config);
      for (let p = 0; p < config.partitions; p++) {
        const stored = this.db.get(partitionPrefix(KEY_END_OFFSET, name, p));
        this.endOffsets.set(`${name}/${p}`, stored ? readU64(stored, 0) : 0);
      }
    }
  }

  /** Creates the topic when missing; an existing topic keeps its partition count. */
  ensureTopic(name: string, wanted: Partial<TopicConfig> = {}): TopicConfig {
    validateTopicName(name);
    const existing = this.topics.get(name);
    if (existing) {
      if (wanted.compact && !existing.compact) {
        const upgraded = { ...existing, compact: true };
        this.db.write([{ type: 'put', key: topicKey(name), value: Buffer.from(JSON.stringify(upgraded)) }]);
        this.topics.set(name, upgraded);
        return upgraded;
      }
      return existing;
    }
    // Retention is for non-compacted topics only (docs/configuration.md): on a compacted topic such as
    // samples it would delete the latest value of every key once it is older than retentionMs.
    const compact = wanted.compact ?? false;
    const config: TopicConfig = { partitions: wanted.partitions ?? 1, compact, retentionMs: compact ? null : (wanted.retentionMs ?? null) };
    if (!Number.isInteger(config.partitions) || config.partitions < 1) throw new ConfigError(`topic "${name}": partitions must be a positive integer, got ${config.partitions}`);
    this.db.write([{ type: 'put', key: topicKey(name), value: Buffer.from(JSON.stringify(config)) }]);
    this.topics.set(name, config);
    for (let p = 0; p < config.partitions; p++) this.endOffsets.set(`${name}/${p}`, 0);
    return config;
  }

  topic(name: string): TopicConfig | undefined {
    return this.topics.get(name);
  }

  listTopics(): Array<[string, TopicConfig]> {
    return [...this.topics.entries()].sort(([a], [b]) => a.localeCompare(b));
  }

  private requireTopic(name: string): TopicConfig {
    const config = this.topics.get(name);
    if (!config) throw new LogError(`unknown topic "${name}"; existing topics: ${[...this.topics.keys()].sort().join(', ') || '(none)'}`);
    return config;
  }

  partitionFor(topic: string, key: Buffer | null): number {
    const { partitions } = this.requireTopic(topic);
    if (key !== null) return partitionForKey(key, partitions);
    const next = ((this.roundRobin.get(topic) ?? -1) + 1) % partitions;
    this.roundRobin.set(topic, next);
    return next;
  }

  /** Appends records now, atomically (a producer's write). */
  append(records: readonly OutputRecord[]): AppendedRecord[] {
    const ops: WriteOp[] = [];
    const result = this.stage(records, ops);
    this.db.write(ops);
    this.notify(result);
    return result;
  }

  /**
   * One atomic step: outputs appended, state written, consumer offsets moved. Either all of it
   * survives a crash or none of it does.
   */
  commit(outputs: readonly OutputRecord[], stateOps: readonly WriteOp[], offsets: readonly GroupOffset[]): AppendedRecord[] {
    const ops: WriteOp[] = [];
    const result = this.stage(outputs, ops);
    for (const op of stateOps) ops.push(op);
    for (const o of offsets) ops.push({ type: 'put', key: groupOffsetKey(o.group, o.topic, o.partition), value: u64(o.offset) });
    this.db.write(ops);
    this.notify(result);
    return result;
  }

  private stage(records: readonly OutputRecord[], ops: WriteOp[]): AppendedRecord[] {
    const result: AppendedRecord[] = new Array(records.length);
    const touched = new Map<string, { topic: string; partition: number; next: number }>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as OutputRecord;
      const { partitions } = this.requireTopic(r.topic);
      const partition = r.partition ?? this.partitionFor(r.topic, r.key);
      if (partition < 0 || partition >= partitions) throw new LogError(`topic "${r.topic}" has no partition ${partition}`);
      const id = `${r.topic}/${partition}`;
      let t = touched.get(id);
      if (!t) {
        t = { topic: r.topic, partition, next: this.endOffsets.get(id) ?? 0 };
        touched.set(id, t);
      }
      const offset = t.next++;
      ops.push({ type: 'put', key: recordKey(this.prefix(r.topic, partition), offset), value: encodeEntry(r) });
      result[i] = { topic: r.topic, partition, offset };
    }
    for (const [id, t] of touched) {
      ops.push({ type: 'put', key: partitionPrefix(KEY_END_OFFSET, t.topic, t.partition), value: u64(t.next) });
      this.endOffsets.set(id, t.next);
    }
    return result;
  }

  private prefix(topic: string, partition: number): Buffer {
    const id = `${topic}/${partition}`;
    let p = this.prefixes.get(id);
    if (!p) {
      p = partitionPrefix(KEY_RECORD, topic, partition);
      this.prefixes.set(id, p);
    }
    return p;
  }

  private notify(appended: AppendedRecord[]): void {
    if (appended.length > 0) this.appended.emit('append');
  }

  /** Records at offsets >= `from`, in offset order (gaps where compaction or retention removed records). */
  read(topic: string, partition: number, from: number, max: number): SourceRecord[] {
    this.requireTopic(topic);
    const prefix = this.prefix(topic, partition);
    const rows = this.db.range(recordKey(prefix, from), prefixEnd(prefix), max);
    const out: SourceRecord[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [k, v] = rows[i] as [Buffer, Buffer];
      const e = decodeEntry(v);
      out[i] = { topic, partition, offset: offsetOfRecordKey(k), key: e.key, value: e.value, timestamp: e.timestamp, headers: e.headers };
    }
    return out;
  }

  endOffset(topic: string, partition: number): number {
    return this.endOffsets.get(`${topic}/${partition}`) ?? 0;
  }

  startOffset(topic: string, partition: number): number {
    const prefix = this.prefix(topic, partition);
    const first = this.db.range(prefix, prefixEnd(prefix), 1)[0];
    return first ? offsetOfRecordKey(first[0]) : this.endOffset(topic, partition);
  }

  /** Every consumer group that has committed an offset in this log. */
  consumerGroups(): string[] {
    const start = Buffer.from([KEY_GROUP_OFFSET]);
    const groups = new Set<string>();
    for (const [k] of this.db.range(start, prefixEnd(start))) {
      const end = k.indexOf(0, 1);
      if (end > 1) groups.add(k.toString('utf8', 1, end));
    }
    return [...groups];
  }

  committedOffset(group: string, topic: string, partition: number): number | undefined {
    const v = this.db.get(groupOffsetKey(group, topic, partition));
    return v ? readU64(v, 0) : undefined;
  }

  /** Records currently stored in a partition (after compaction and retention). */
  count(topic: string, partition: number): number {
    const prefix = this.prefix(topic, partition);
    let n = 0;
    let from = prefix;
    const end = prefixEnd(prefix);
    for (;;) {
      const rows = this.db.range(from, end, 10_000);
      n += rows.length;
      if (rows.length < 10_000) return n;
      from = recordKey(prefix, offsetOfRecordKey((rows[rows.length - 1] as [Buffer, Buffer])[0]) + 1);
    }
  }

  /** Log compaction: removes every record superseded by a later record with the same key. */
  compact(topic: string, options: { tombstoneRetentionMs?: number; now?: number } = {}): number {
    const config = this.requireTopic(topic);
    if (!config.compact) return 0;
    const now = options.now ?? Date.now();
    const tombstoneRetentionMs = options.tombstoneRetentionMs ?? 24 * 3600_000;
    let removed = 0;
    for (let p = 0; p < config.partitions; p++) {
      const prefix = this.prefix(topic, p);
      const latest = new Map<string, number>();
      this.scan(prefix, (offset, entry) => {
        if (entry.key !== null) latest.set(entry.key.toString('latin1'), offset);
      });
      const ops: WriteOp[] = [];
      this.scan(prefix, (offset, entry, key) => {
        if (entry.key === null) return;
        const newest = latest.get(entry.key.toString('latin1'));
        const expiredTombstone = entry.value === null && newest === offset && entry.timestamp < now - tombstoneRetentionMs;
        if (newest !== offset || expiredTombstone) ops.push({ type: 'del', key });
      });
      this.db.write(ops);
      removed += ops.length;
    }
    return removed;
  }

  /** Deletes, per partition, the oldest records older than the topic's retention. */
  enforceRetention(now = Date.now()): number {
    let removed = 0;
    for (const [topic, config] of this.topics) {
      // Compacted topics keep their latest values; data dirs created before this rule may hold a
      // compacted topic with a retention set, which is ignored.
      if (config.retentionMs === null || config.compact) continue;
      const cutoff = now - config.retentionMs;
      for (let p = 0; p < config.partitions; p++) {
        const ops: WriteOp[] = [];
        this.scan(this.prefix(topic, p), (_offset, entry, key) => {
          if (entry.timestamp >= cutoff) return false;
          ops.push({ type: 'del', key });
          return true;
        });
        this.db.write(ops);
        removed += ops.length;
      }
    }
    return removed;
  }

  /** Deletes the records of a partition below `offset` (records a consumer has committed past); returns how many. */
  deleteBefore(topic: string, partition: number, offset: number): number {
    this.requireTopic(topic);
    const ops: WriteOp[] = [];
    this.scan(this.prefix(topic, partition), (recordOffset, _entry, key) => {
      if (recordOffset >= offset) return false;
      ops.push({ type: 'del', key });
      return true;
    });
    if (ops.length > 0) this.db.write(ops);
    return ops.length;
  }

  private scan(prefix: Buffer, visit: (offset: number, entry: ReturnType<typeof decodeEntry>, key: Buffer) => boolean | void): void {
    const end = prefixEnd(prefix);
    let from = prefix;
    for (;;) {
      const rows = this.db.range(from, end, 10_000);
      for (const [k, v] of rows) {
        if (visit(offsetOfRecordKey(k), decodeEntry(v), k) === false) return;
      }
      if (rows.length < 10_000) return;
      from = recordKey(prefix, offsetOfRecordKey((rows[rows.length - 1] as [Buffer, Buffer])[0]) + 1);
    }
  }

  /** Resolves on the next append, or after `timeoutMs`. */
  waitForAppend(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.appended.off('append', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.appended.once('append', done);
    });
  }

  async close(): Promise<void> {
    this.appended.emit('append');
    await this.db.close();
  }
}

export function validateTopicName(name: string): void {
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(name)) {
    throw new ConfigError(`invalid topic name "${name}": use 1-249 letters, digits, '.', '_' or '-' (as Kafka does)`);
  }
}
