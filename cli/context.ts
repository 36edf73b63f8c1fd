import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { embeddedPrivacyPolicy, logDirOf, openEmbeddedLog, privacyPolicyFor } from '../app/embedded.js';
import { inputProtectionFor } from '../processors/input-protection.js';
import { directAccess, type LogAccess } from '../access/embedded.js';
import { httpAccess } from '../access/http.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { loadConfig, type SampleloopConfig } from '../config/config.js';
import { ConfigError, StateError, UsageError } from '../engine/errors.js';
import type { PrivacyPolicy } from '../processors/privacy.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { kafkaAccess } from '../access/kafka.js';
import { librdkafkaSettings } from '../app/kafka.js';
import { ConfluentSchemaRegistry } from '../schemas/confluent-registry.js';
import { silentLogger } from '../engine/logger.js';

export interface CommonOptions {
  config?: string;
  dataDir?: string;
}

export function configFrom(options: CommonOptions): SampleloopConfig {
  return loadConfig({ ...(options.config ? { file: options.config } : {}), overrides: options.dataDir ? { dataDir: options.dataDir } : {} });
}

/** Written by `sampleloop run` so other commands can reach the running engine. */
export interface EngineInfo {
  pid: number;
  url: string;
}

export function engineInfoPath(dataDir: string): string {
  return join(dataDir, 'engine.json');
}

/**
 * Opens the embedded log directly, or, when a running engine holds it, talks to that engine over
 * HTTP (RocksDB allows one process per database).
 */
export async function withLogAccess<T>(config: SampleloopConfig, fn: (access: LogAccess) => Promise<T>, options: { readOnly?: boolean } = {}): Promise<T> {
  if (config.mode === 'kafka') {
    if (!config.kafka.schemaRegistry) throw new UsageError('mode "kafka" needs kafka.schemaRegistry.url to encode and decode Avro records');
    const registry = new ConfluentSchemaRegistry(config.kafka.schemaRegistry);
    const ingest = inputProtectionFor(config, () => ingestPolicy(config, () => privacyPolicyFor(config, false)), (id) => registry.cached(id));
    return fn(kafkaAccess(librdkafkaSettings(config), registry, silentLogger(), { partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor, ...(ingest ? { ingest } : {}) }));
  }
  // Reading commands must not create an empty data dir where a typo in --data-dir points.
  if (options.readOnly && !existsSync(logDirOf(config.dataDir))) {
    throw new UsageError(`no embedded log in ${config.dataDir} (nothing has run or been produced there); check --data-dir or dataDir`);
  }
  let log;
  try {
    log = await openEmbeddedLog(config);
  } catch (err) {
    if (!(err instanceof StateError) || !err.retriable) throw err;
    const infoPath = engineInfoPath(config.dataDir);
    if (!existsSync(infoPath)) throw new UsageError(`${config.dataDir} is locked by another process that did not publish ${infoPath}; stop it or use another --data-dir`);
    const info = JSON.parse(readFileSync(infoPath, 'utf8')) as EngineInfo;
    return fn(httpAccess(info.url));
  }
  try {
    const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
    const opened = log;
    const ingest = inputProtectionFor(config, () => ingestPolicy(config, () => embeddedPrivacyPolicy(config, opened)), (id) => registry.cached(id));
    return await fn(directAccess(log, registry, Date.now, ingest ? { ingest } : {}));
  } finally {
    await log.close();
  }
}

/** The policy `produce` protects input records with; a missing key says why `produce` needs one. */
function ingestPolicy(config: SampleloopConfig, policy: () => PrivacyPolicy): PrivacyPolicy {
  try {
    return policy();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(
      `${err.message}\n(produce protects records of ${config.topics.requests}, ${config.topics.predictions} and ${config.topics.feedback} with the engine's privacy key before they are written; ` +
        'give it the key the engine runs with, or set privacy.protectOnIngest to false to write them as they are)',
      { cause: err },
    );
  }
}
