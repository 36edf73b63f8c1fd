import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SampleloopConfig } from '../../config/config.js';
import { toDisplay } from '../../access/embedded.js';
import { logDirOf } from '../../app/embedded.js';
import { EmbeddedLog } from '../../engine/embedded/log.js';
import { rocksRegistryStorage } from '../../schemas/registry-storage.js';
import { StateError, UsageError } from '../../engine/errors.js';
import type { OutputRecord } from '../../engine/record.js';
import { decodeFramed } from '../../schemas/codec.js';
import { LocalSchemaRegistry } from '../../schemas/registry.js';
import { AvroContainerFile, JsonLinesFile } from './files-out.js';
import { KafkaSink } from './kafka-sink.js';
import { outputTopics, SIDE_OUTPUTS, type OutputTarget, type ReplayOutput, type ReplaySink, type SideOutput } from './sink.js';

/** `embedded`, `embedded:<data-dir>`, `file:<path>.jsonl`, `file:<path>.avro` or `kafka` (the configured cluster). */
export function parseOutputTarget(spec: string, defaultDataDir: string): OutputTarget {
  if (spec === 'kafka') return { kind: 'kafka' };
  if (spec === 'embedded') return { kind: 'embedded', dataDir: resolve(defaultDataDir) };
  if (spec.startsWith('embedded:') && spec.length > 'embedded:'.length) return { kind: 'embedded', dataDir: resolve(spec.slice('embedded:'.length)) };
  if (spec.startsWith('file:')) {
    const path = resolve(spec.slice('file:'.length));
    const format = path.endsWith('.jsonl') ? 'jsonl' : path.endsWith('.avro') ? 'avro' : undefined;
    if (format === undefined) throw new UsageError(`--out ${spec}: the file must end in .jsonl (JSON lines) or .avro (Avro object container file)`);
    if (!statSync(dirname(path), { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--out ${spec}: directory ${dirname(path)} does not exist`);
    return { kind: 'file', path, format };
  }
  throw new UsageError(`--out "${spec}" is not a target; use embedded, embedded:<data-dir>, file:<path>.jsonl, file:<path>.avro or kafka`);
}

/** Base path of the side files: `out.jsonl` → `out`, so side outputs are `out.unmatched.jsonl`, ... */
export function sideFileBase(path: string): string {
  return path.replace(/\.(jsonl|avro)$/, '');
}

export function sideFileName(base: string, output: SideOutput | 'rejects'): string {
  return `${base}.${output === 'deadLetters' ? 'dead-letters' : output}.jsonl`;
}

export async function openSink(target: OutputTarget, config: SampleloopConfig): Promise<ReplaySink> {
  if (target.kind === 'file') return FileSink.create(target.path, target.format);
  if (target.kind === 'kafka') return KafkaSink.open(config);
  return EmbeddedSink.open(target.dataDir, config);
}

/** Samples as JSON lines or an Avro container file; side outputs as JSON lines next to it. */
class FileSink implements ReplaySink {
  readonly locations: Record<ReplayOutput, string>;
  readonly defaultRejectsPath: string;
  readonly registry = new LocalSchemaRegistry();
  readonly revocable = true;

  private constructor(
    private readonly samples: JsonLinesFile | AvroContainerFile,
    private readonly sides: Record<SideOutput, JsonLinesFile>,
    base: string,
  ) {
    this.defaultRejectsPath = sideFileName(base, 'rejects');
    this.locations = { samples: samples.path, ...(Object.fromEntries(SIDE_OUTPUTS.map((o) => [o, sides[o].path])) as Record<SideOutput, string>) };
  }

  static create(path: string, format: 'jsonl' | 'avro'): FileSink {
    const base = sideFileBase(path);
    const samples = format === 'avro' ? new AvroContainerFile(path, 'LabeledSample') : new JsonLinesFile(path);
    const sides = Object.fromEntries(SIDE_OUTPUTS.map((o) => [o, new JsonLinesFile(sideFileName(base, o))])) as Record<SideOutput, JsonLinesFile>;
    return new FileSink(samples, sides, base);
  }

  async write(output: ReplayOutput, record: OutputRecord): Promise<void> {
    if (output === 'samples') {
      if (record.value === null) return;
      // LabeledSample has no bytes fields: the decoded record is already plain JSON (what toDisplay would make of it).
      await this.samples.write(decodeFramed(record.value, (id) => this.registry.cached(id)).value as object);
      return;
    }
    await this.sides[output].write(toDisplay({ ...record, partition: 0, offset: 0 }, this.registry).value);
  }

  async commit(): Promise<void> {
    await this.samples.commit();
    for (const o of SIDE_OUTPUTS) await this.sides[o].commit();
  }

  abort(): Promise<void> {
    this.samples.abort();
    for (const o of SIDE_OUTPUTS) this.sides[o].abort();
    return Promise.resolve();
  }
}

const APPEND_BATCH = 1_000;

/**
 * Appends to the topics of an embedded data dir. The topology registers its output schemas in the
 * target's own registry, so values are appended as they are.
 */
class EmbeddedSink implements ReplaySink {
  readonly locations: Record<ReplayOutput, string>;
  readonly defaultRejectsPath: string;
  readonly revocable = false;
  private pending: OutputRecord[] = [];

  private constructor(
    private readonly log: EmbeddedLog,
    private readonly topics: Record<ReplayOutput, string>,
    readonly registry: LocalSchemaRegistry,
    dataDir: string,
  ) {
    this.defaultRejectsPath = resolve(dataDir, 'replay-rejects.jsonl');
    this.locations = Object.fromEntries(Object.entries(topics).map(([o, t]) => [o, `embedded:${dataDir} topic ${t}`])) as Record<ReplayOutput, string>;
  }

  static async open(dataDir: string, config: SampleloopConfig): Promise<EmbeddedSink> {
    if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) throw new UsageError(`--out embedded:${dataDir}: not a directory`);
    let log: EmbeddedLog;
    try {
      log = await EmbeddedLog.open(logDirOf(dataDir), { syncWrites: config.embedded.syncWrites });
    } catch (err) {
      if (err instanceof StateError && err.retriable) {
        throw new UsageError(`--out embedded:${dataDir}: the data dir is in use by a running engine; stop it first (replay appends to its topics directly), or replay to file:<path>.jsonl`, { cause: err });
      }
      throw err;
    }
    try {
      const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
      const topics = outputTopics(config.topics);
      for (const [output, topic] of Object.entries(topics) as Array<[ReplayOutput, string]>) {
        log.ensureTopic(topic, { partitions: config.embedded.partitions, retentionMs: config.embedded.retentionMs, compact: output === 'samples' });
      }
      return new EmbeddedSink(log, topics, registry, dataDir);
    } catch (err) {
      await log.close();
      throw err;
    }
  }

  write(output: ReplayOutput, record: OutputRecord): Promise<void> {
    this.pending.push({ topic: this.topics[output], key: record.key, value: record.value, timestamp: record.timestamp, headers: record.headers });
    if (this.pending.length >= APPEND_BATCH) this.flush();
    return Promise.resolve();
  }

  private flush(): void {
    if (this.pending.length > 0) this.log.append(this.pending);
    this.pending = [];
  }

  async commit(): Promise<void> {
    this.flush();
    await this.log.close();
  }

  async abort(): Promise<void> {
    this.pending = [];
    await this.log.close();
  }
}
