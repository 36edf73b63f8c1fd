import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogAccess } from '../access/embedded.js';
import { httpAccess, httpJson } from '../access/http.js';
import { loadConfig, type SampleloopConfig } from '../config/config.js';
import { ConfigError, StateError, UsageError } from '../engine/errors.js';
import type { PrivacyPolicy } from '../processors/privacy.js';

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
  // The clients load here, not at start-up: a command that talks to a running engine never loads RocksDB or librdkafka.
  if (config.mode === 'kafka') {
    if (!config.kafka.schemaRegistry) throw new UsageError('mode "kafka" needs kafka.schemaRegistry.url to encode and decode Avro records');
    const [{ kafkaAccess }, { librdkafkaSettings }, { ConfluentSchemaRegistry }, { silentLogger }, { inputProtectionFor }, { privacyPolicyFor }] = await Promise.all([
      import('../access/kafka.js'),
      import('../app/kafka.js'),
      import('../schemas/confluent-registry.js'),
      import('../engine/logger.js'),
      import('../processors/input-protection.js'),
      import('../app/embedded.js'),
    ]);
    const registry = new ConfluentSchemaRegistry(config.kafka.schemaRegistry);
    const ingest = inputProtectionFor(config, () => ingestPolicy(config, () => privacyPolicyFor(config, false)), (id) => registry.cached(id));
    return fn(kafkaAccess(librdkafkaSettings(config), registry, silentLogger(), { partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor, ...(ingest ? { ingest } : {}) }));
  }
  const running = await runningEngine(config.dataDir);
  if (running) return fn(await engineAccess(config, running.url));
  const [{ logDirOf, openEmbeddedLog, embeddedPrivacyPolicy }, { directAccess }, { rocksRegistryStorage }, { LocalSchemaRegistry }, { inputProtectionFor }] = await Promise.all([
    import('../app/embedded.js'),
    import('../access/embedded.js'),
    import('../schemas/registry-storage.js'),
    import('../schemas/registry.js'),
    import('../processors/input-protection.js'),
  ]);
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
    return fn(await engineAccess(config, info.url));
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

/**
 * The engine `run` published in the data dir, when its process is alive and its HTTP port answers
 * (a stale engine.json of a killed engine is ignored: the log is then opened directly).
 */
async function runningEngine(dataDir: string): Promise<EngineInfo | undefined> {
  let info: EngineInfo;
  try {
    info = JSON.parse(readFileSync(engineInfoPath(dataDir), 'utf8')) as EngineInfo;
    process.kill(info.pid, 0);
  } catch {
    return undefined;
  }
  try {
    await httpJson(`${info.url}/healthz`, { timeoutMs: 2_000 });
    return info;
  } catch {
    return undefined;
  }
}

/** The topic API of the running engine, with the CLI's token when `http.tokensFile` is set. */
async function engineAccess(config: SampleloopConfig, url: string): Promise<LogAccess> {
  if (!config.http.tokensFile) return httpAccess(url);
  const { BearerTokens } = await import('../app/http-auth.js');
  const token = BearerTokens.cliToken(config.http.tokensFile);
  return httpAccess(url, token ? { token } : {});
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
