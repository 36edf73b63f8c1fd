/**
 * `sampleloop archive`: writes a deployment's input topics as the logs `replay` reads — JSON lines,
 * gzip, rolling files `gateway-000001.jsonl.gz` (predictions), `business-000001.jsonl.gz`
 * (feedback), `requests-000001.jsonl.gz` (requests, when the topic exists). A manifest remembers
 * how far each partition was archived, so the next run continues where this one ended.
 */
import { createWriteStream, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createGzip, type Gzip } from 'node:zlib';
import type { DisplayRecord } from '../access/embedded.js';
import { UsageError } from '../engine/errors.js';
import { decodeRecord, type InputSchemaName } from '../schemas/codec.js';
import type { PrivacyPolicy } from '../processors/privacy.js';
import { INGEST_HEADERS } from '../processors/input-protection.js';

export type ArchiveKind = 'gateway' | 'business' | 'requests';

/** The record type of each kind's topic (what the engine decodes it as). */
const KIND_SCHEMA: Record<ArchiveKind, InputSchemaName> = { gateway: 'Prediction', business: 'Feedback', requests: 'Request' };

/** Reads topics page by page (the embedded log directly, or a running engine's HTTP API). */
export interface ArchiveSource {
  /** Partition count, or undefined when the topic does not exist. */
  partitions(topic: string): Promise<number | undefined>;
  /** Records at offsets >= `from`, values decoded (JSON as is, Avro through the registry). */
  read(topic: string, partition: number, from: number, max: number): Promise<DisplayRecord[]>;
  /**
   * The partition's end offset, for a log whose offsets have no gaps but deleted records (the embedded
   * log): records between the archive's position and the first one still held were deleted before
   * they could be archived (input trimming, retention) and are counted as `deleted`. Absent (Kafka,
   * where transaction markers also take offsets): not counted.
   */
  endOffset?(topic: string, partition: number): Promise<number>;
}

export interface ArchiveOptions {
  outDir: string;
  topics: ReadonlyArray<{ topic: string; kind: ArchiveKind }>;
  /** Start a new file once the current one holds this many uncompressed bytes. */
  maxFileBytes: number;
  /** Protect sensitive attributes before writing (null: write them as the topic holds them). */
  privacy: PrivacyPolicy | null;
  /** Ignore the manifest's positions and archive every record again (file numbers still continue). */
  fromStart?: boolean;
}

export interface ArchiveSummary {
  outDir: string;
  /** Files written by this run, in order. */
  files: string[];
  records: Record<ArchiveKind, number>;
  /** Records not written because their value could not be decoded (listed in archive-skipped.jsonl, without content). */
  skipped: number;
  /** Tombstones (null values) are not archived. */
  tombstones: number;
  /**
   * Per topic, records deleted from the log (input trimming `embedded.inputRetentionMs`, retention)
   * after the previous archive run's position and before this run could read them: they are in no
   * archive. Only topics with such records are listed; embedded mode only.
   */
  deleted: Record<string, number>;
  missingTopics: string[];
}

export const MANIFEST_FILE = 'archive-manifest.json';
export const SKIPPED_FILE = 'archive-skipped.jsonl';
const PAGE = 5_000;

interface Manifest {
  version: 1;
  /** Next file number per kind. */
  next: Partial<Record<ArchiveKind, number>>;
  /** Next offset to archive, per topic and partition. */
  positions: Record<string, Record<string, number>>;
}

export function archiveFileName(kind: ArchiveKind, sequence: number): string {
  return `${kind}-${String(sequence).padStart(6, '0')}.jsonl.gz`;
}

export async function archiveTopics(source: ArchiveSource, options: ArchiveOptions): Promise<ArchiveSummary> {
  const manifest = readManifest(options.outDir);
  const summary: ArchiveSummary = { outDir: options.outDir, files: [], records: { gateway: 0, business: 0, requests: 0 }, skipped: 0, tombstones: 0, deleted: {}, missingTopics: [] };
  const skippedLines: string[] = [];
  for (const { topic, kind } of options.topics) {
    const partitions = await source.partitions(topic);
    if (partitions === undefined) {
      summary.missingTopics.push(topic);
      continue;
    }
    const positions: Record<string, number> = options.fromStart ? {} : { ...(manifest.positions[topic] ?? {}) };
    const writer = new RollingGzipFiles(options.outDir, kind, options.maxFileBytes, nextSequence(options.outDir, kind, manifest), (file, sequence) => {
      summary.files.push(file);
      manifest.next[kind] = sequence + 1;
      manifest.positions[topic] = { ...positions };
      writeManifest(options.outDir, manifest);
    });
    try {
      const deleted = await countDeleted(source, topic, partitions, positions);
      if (deleted > 0) summary.deleted[topic] = deleted;
      for await (const { partition, record } of mergedByEventTime(source, topic, partitions, positions)) {
        const line = archiveLine(rawAvroValue(KIND_SCHEMA[kind], record.value), options.privacy);
        if (line === null) summary.tombstones++;
        else if (typeof line === 'object') {
          summary.skipped++;
          skippedLines.push(JSON.stringify({ topic, partition, offset: record.offset, reason: skipReason(record, line.reason) }));
        } else {
          await writer.write(line);
          summary.records[kind]++;
        }
        positions[String(partition)] = record.offset + 1;
      }
      await writer.close();
    } catch (err) {
      writer.abort();
      throw err;
    }
    manifest.positions[topic] = { ...positions };
    writeManifest(options.outDir, manifest);
  }
  if (skippedLines.length > 0) writeFileSync(join(options.outDir, SKIPPED_FILE), `${skippedLines.join('\n')}\n`, { flag: 'a' });
  return summary;
}

/**
 * Records of the partitions between `positions` and the first record still held, on a log without
 * offset gaps; moves `positions` past them, so the next run does not count them again.
 */
async function countDeleted(source: ArchiveSource, topic: string, partitions: number, positions: Record<string, number>): Promise<number> {
  if (!source.endOffset) return 0;
  let deleted = 0;
  for (let p = 0; p < partitions; p++) {
    const from = positions[String(p)] ?? 0;
    const [first] = await source.read(topic, p, from, 1);
    const firstHeld = first ? first.offset : await source.endOffset(topic, p);
    if (firstHeld > from) {
      deleted += firstHeld - from;
      positions[String(p)] = firstHeld;
    }
  }
  return deleted;
}

/** Why a record is not archived; a line sealed by ingest protection says so rather than looking like foreign bytes. */
function skipReason(record: DisplayRecord, decodeReason: string): string {
  if (record.headers[INGEST_HEADERS.payload] !== 'sealed') return decodeReason;
  const code = record.headers[INGEST_HEADERS.reasonCode];
  return `sealed when it was produced: the line could not be parsed${code ? ` (${code})` : ''}; online it is a dead letter (consume dead-letters --unseal)`;
}

/** Event time of an archived record: the value's `timestamp` field, else the Kafka record's. */
function eventTime(record: DisplayRecord): number {
  const value = record.value as { timestamp?: unknown } | null;
  return value !== null && typeof value === 'object' && typeof value.timestamp === 'number' ? value.timestamp : record.timestamp;
}

/**
 * A topic's records from `positions` on, every partition in offset order, interleaved by event time
 * (the earliest head first; ties by partition): archives of several partitions stay in time order,
 * so replay can merge them instead of sorting. One page per partition is held in memory.
 */
async function* mergedByEventTime(
  source: ArchiveSource,
  topic: string,
  partitions: number,
  positions: Readonly<Record<string, number>>,
): AsyncGenerator<{ partition: number; record: DisplayRecord }> {
  const cursors: Array<{ partition: number; from: number; page: DisplayRecord[]; at: number; last: boolean }> = [];
  for (let p = 0; p < partitions; p++) {
    const cursor = { partition: p, from: positions[String(p)] ?? 0, page: [] as DisplayRecord[], at: 0, last: false };
    if (await refill(source, topic, cursor)) cursors.push(cursor);
  }
  while (cursors.length > 0) {
    let best = 0;
    for (let i = 1; i < cursors.length; i++) {
      const a = cursors[i] as (typeof cursors)[number];
      const b = cursors[best] as (typeof cursors)[number];
      if (eventTime(a.page[a.at] as DisplayRecord) < eventTime(b.page[b.at] as DisplayRecord)) best = i;
    }
    const cursor = cursors[best] as (typeof cursors)[number];
    yield { partition: cursor.partition, record: cursor.page[cursor.at] as DisplayRecord };
    cursor.at++;
    if (cursor.at >= cursor.page.length && !(await refill(source, topic, cursor))) cursors.splice(best, 1);
  }
}

/** Reads the partition's next page; false when nothing is left. */
async function refill(source: ArchiveSource, topic: string, cursor: { partition: number; from: number; page: DisplayRecord[]; at: number; last: boolean }): Promise<boolean> {
  if (cursor.last) return false;
  cursor.page = await source.read(topic, cursor.partition, cursor.from, PAGE);
  cursor.at = 0;
  cursor.last = cursor.page.length < PAGE;
  if (cursor.page.length === 0) return false;
  cursor.from = (cursor.page[cursor.page.length - 1] as DisplayRecord).offset + 1;
  return true;
}

/**
 * The engine also accepts raw Avro (no Confluent frame) written with our schema; the display decoder
 * cannot tell which schema that is and shows it as `{base64}`. Decode it as the topic's record type,
 * as the engine does, so what became a sample online is archived too. Anything else is unchanged.
 */
function rawAvroValue(name: InputSchemaName, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  const base64 = (value as { base64?: unknown }).base64;
  if (keys.length !== 1 || typeof base64 !== 'string') return value;
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length === 0 || bytes[0] === 0) return value; // empty, or framed with an unknown schema id
  const decoded = decodeRecord<Record<string, unknown>>(name, bytes, { maxBytes: Number.MAX_SAFE_INTEGER });
  return decoded.ok ? decoded.value : value;
}

/**
 * One archive line from a decoded value: the record as JSON, sensitive attributes protected when a
 * policy is given. Null for tombstones; `{reason}` when the value could not be decoded (it is a
 * dead letter online; its bytes may hold personal data, so they are not copied).
 */
export function archiveLine(value: unknown, privacy: PrivacyPolicy | null): string | null | { reason: string } {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) return { reason: 'not a JSON object' };
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1 && (keys[0] === 'text' || keys[0] === 'base64')) return { reason: keys[0] === 'text' ? 'not valid JSON' : 'neither JSON nor Avro known to the registry' };
  const attributes = record.attributes;
  if (privacy !== null && typeof attributes === 'object' && attributes !== null && !Array.isArray(attributes)) {
    const category = typeof record.category === 'string' ? record.category : null;
    return JSON.stringify({ ...record, attributes: privacy.protect(category, attributes as Record<string, string>) });
  }
  return JSON.stringify(record);
}

function readManifest(outDir: string): Manifest {
  const path = join(outDir, MANIFEST_FILE);
  if (!existsSync(path)) return { version: 1, next: {}, positions: {} };
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
    if (parsed.version !== 1 || typeof parsed.positions !== 'object' || typeof parsed.next !== 'object') throw new Error('unexpected layout');
    return parsed;
  } catch (err) {
    throw new UsageError(`${path} is not an archive manifest (${(err as Error).message}); move it away to start a new archive`);
  }
}

function writeManifest(outDir: string, manifest: Manifest): void {
  const path = join(outDir, MANIFEST_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** After the manifest's number and after every file already there, so nothing is overwritten. */
function nextSequence(outDir: string, kind: ArchiveKind, manifest: Manifest): number {
  let next = manifest.next[kind] ?? 1;
  const pattern = new RegExp(`^${kind}-(\\d{6,})\\.jsonl\\.gz$`);
  for (const name of readdirSync(outDir)) {
    const m = pattern.exec(name);
    if (m) next = Math.max(next, Number(m[1]) + 1);
  }
  return next;
}

/** gzip files of at most `maxBytes` uncompressed bytes each (a single longer line gets a file of its own). */
class RollingGzipFiles {
  private current: { gzip: Gzip; file: WriteStream; path: string; sequence: number; bytes: number } | undefined;

  constructor(
    private readonly outDir: string,
    private readonly kind: ArchiveKind,
    private readonly maxBytes: number,
    private sequence: number,
    /** Called once a file is complete and in place. */
    private readonly onFile: (path: string, sequence: number) => void,
  ) {}

  async write(line: string): Promise<void> {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.current && this.current.bytes > 0 && this.current.bytes + bytes > this.maxBytes) await this.close();
    const current = this.current ?? this.open();
    current.bytes += bytes;
    if (!current.gzip.write(`${line}\n`)) await once(current.gzip, 'drain');
  }

  private open(): NonNullable<RollingGzipFiles['current']> {
    const path = join(this.outDir, archiveFileName(this.kind, this.sequence));
    const gzip = createGzip();
    const file = createWriteStream(`${path}.tmp`);
    gzip.pipe(file);
    this.current = { gzip, file, path, sequence: this.sequence++, bytes: 0 };
    return this.current;
  }

  async close(): Promise<void> {
    const current = this.current;
    if (!current) return;
    this.current = undefined;
    current.gzip.end();
    await once(current.file, 'finish');
    renameSync(`${current.path}.tmp`, current.path);
    this.onFile(current.path, current.sequence);
  }

  abort(): void {
    const current = this.current;
    if (!current) return;
    this.current = undefined;
    current.gzip.destroy();
    current.file.destroy();
    rmSync(`${current.path}.tmp`, { force: true });
  }
}
