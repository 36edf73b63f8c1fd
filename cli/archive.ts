/** `sampleloop archive`: the input topics as gzip JSON-lines logs that `replay` reads back (docs/replay.md). */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { toDisplay } from '../access/embedded.js';
import { httpAccess } from '../access/http.js';
import { BearerTokens } from '../app/http-auth.js';
import { logDirOf, openEmbeddedLog, privacyPolicyFor } from '../app/embedded.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { SampleloopConfig } from '../config/config.js';
import { librdkafkaSettings } from '../app/kafka.js';
import { KafkaPartitionReader } from '../engine/kafka/partition-reader.js';
import { ConfluentSchemaRegistry, fetchWriterSchemas } from '../schemas/confluent-registry.js';
import { createLogger, type Logger } from '../engine/logger.js';
import { ConfigError, StateError, UsageError } from '../engine/errors.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { archiveTopics, type ArchiveSource, type ArchiveSummary } from '../replay/archive.js';
import { replayPrivacySettings } from '../replay/privacy.js';
import { engineInfoPath, type EngineInfo } from './context.js';

export async function runArchive(config: SampleloopConfig, options: { outDir: string; maxFileBytes: number; raw: boolean; fromStart: boolean }): Promise<ArchiveSummary> {
  if (existsSync(options.outDir) && !statSync(options.outDir).isDirectory()) throw new UsageError(`--out-dir ${options.outDir} is not a directory`);
  // archive only reads: a mistyped --data-dir must not get an empty log (nor ask for a privacy key first)
  if (config.mode !== 'kafka' && !existsSync(logDirOf(config.dataDir))) {
    throw new UsageError(`no embedded log in ${config.dataDir} (nothing has run or been produced there); check --data-dir or dataDir`);
  }
  mkdirSync(options.outDir, { recursive: true });
  const privacy = options.raw ? null : archivePrivacy(config);
  const topics = [
    { topic: config.topics.predictions, kind: 'gateway' as const },
    { topic: config.topics.feedback, kind: 'business' as const },
    { topic: config.topics.requests, kind: 'requests' as const },
  ];
  return withArchiveSource(config, (source) => archiveTopics(source, { outDir: options.outDir, topics, maxFileBytes: options.maxFileBytes, privacy, fromStart: options.fromStart }));
}

function archivePrivacy(config: SampleloopConfig): ReturnType<typeof privacyPolicyFor> {
  try {
    return privacyPolicyFor({ ...config, privacy: replayPrivacySettings(config, [config.dataDir]) }, false);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(`${err.message}\narchive protects sensitive attributes with the engine's key (${config.dataDir}/privacy.key, or as configured); pass --raw to archive them as the topics hold them.`, { cause: err });
  }
}

/**
 * Kafka mode: the cluster's topics (read_committed, Avro decoded through the registry). Embedded
 * mode: the embedded log opened directly, or, while an engine holds it, that engine's HTTP API.
 */
async function withArchiveSource<T>(config: SampleloopConfig, fn: (source: ArchiveSource) => Promise<T>): Promise<T> {
  if (config.mode === 'kafka') return withKafkaArchiveSource(config, fn);
  let log;
  try {
    log = await openEmbeddedLog(config);
  } catch (err) {
    if (!(err instanceof StateError) || !err.retriable) throw err;
    const infoPath = engineInfoPath(config.dataDir);
    if (!existsSync(infoPath)) throw new UsageError(`${config.dataDir} is locked by another process that did not publish ${infoPath}; stop it or use another --data-dir`);
    const token = config.http.tokensFile ? BearerTokens.cliToken(config.http.tokensFile) : undefined;
    const access = httpAccess((JSON.parse(readFileSync(infoPath, 'utf8')) as EngineInfo).url, token ? { token } : {});
    let partitions: Map<string, number> | undefined;
    return fn({
      partitions: async (topic) => {
        partitions ??= new Map((await access.topics()).map((t) => [t.topic, t.partitions]));
        return partitions.get(topic);
      },
      read: (topic, partition, from, max) => access.read(topic, { partition, from, max }),
      endOffset: async (topic, partition) => (await access.topics()).find((t) => t.topic === topic)?.endOffsets[partition] ?? 0,
    });
  }
  try {
    const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
    const opened = log;
    return await fn({
      partitions: (topic) => Promise.resolve(opened.topic(topic)?.partitions),
      read: (topic, partition, from, max) => Promise.resolve(opened.read(topic, partition, from, max).map((r) => toDisplay(r, registry))),
      endOffset: (topic, partition) => Promise.resolve(opened.endOffset(topic, partition)),
    });
  } finally {
    await log.close();
  }
}

/**
 * The cluster's topics read by offset with an assign-only read_committed consumer (nothing is
 * committed: the archive manifest holds the positions, as Kafka offsets). Writer schemas of
 * Avro-framed values are fetched from the registry before decoding.
 */
export async function withKafkaArchiveSource<T>(config: SampleloopConfig, fn: (source: ArchiveSource) => Promise<T>, logger?: Logger): Promise<T> {
  if (!config.kafka.schemaRegistry) {
    throw new UsageError('archive in mode "kafka" needs kafka.schemaRegistry.url: Avro values are decoded with the writer schemas of the Confluent schema registry');
  }
  const settings = librdkafkaSettings(config);
  const registry = new ConfluentSchemaRegistry(config.kafka.schemaRegistry);
  const reader = await KafkaPartitionReader.open(settings, logger ?? createLogger({ level: config.log.level }), `${config.applicationId}.archive`);
  try {
    return await fn({
      partitions: async (topic) => {
        const n = await reader.partitions(topic);
        return n > 0 ? n : undefined;
      },
      read: async (topic, partition, from, max) => {
        const records = await reader.read(topic, partition, from, max);
        await fetchWriterSchemas(registry, records);
        return records.map((r) => toDisplay(r, registry));
      },
    });
  } finally {
    await reader.close();
  }
}
