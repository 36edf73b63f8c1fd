import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleloopConfig } from '../config/config.js';
import { createLogger, type Logger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { encodeFramed } from '../schemas/codec.js';
import { GENERATED_KEY_FILE, PrivacyPolicy, resolvePrivacyKey } from '../processors/privacy.js';
import { ConfigError } from '../engine/errors.js';
import { buildSamplesTopology, joinOptionsFromConfig, samplesOutputs } from '../topologies/samples.js';
import { registerOutputSchemas, type OutputSerdes } from '../topologies/serde.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { EmbeddedRuntime } from '../engine/embedded/runtime.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { DeadLetterEnvelope } from '../engine/task.js';
import { embeddedPredictor, ensureModelsTopic, type EmbeddedPredictorOptions } from '../topologies/predictor.js';
import type { ModelRegistry } from '../models/model-registry.js';
import { embeddedTriggerTopologies } from '../topologies/trigger.js';
import { trustWarnings } from '../models/ledger/keys-config.js';
import { inputProtectionFor, type InputProtection } from '../processors/input-protection.js';
import { ConsumedInputTrimmer } from '../engine/embedded/consumed-trimmer.js';
import { directAccess, type LogAccess } from '../access/embedded.js';
import { startEmbeddedTrainer, type EmbeddedTrainerOptions, type TrainerJob } from '../models/trainer-job.js';

export interface EmbeddedApp {
  config: SampleloopConfig;
  log: EmbeddedLog;
  runtime: EmbeddedRuntime;
  registry: LocalSchemaRegistry;
  serdes: OutputSerdes;
  privacy: PrivacyPolicy;
  /** Protects input records before they are appended (undefined when privacy.protectOnIngest is off). */
  ingest: InputProtection | undefined;
  /** Deletes input records every group has committed past embedded.inputRetentionMs ago (maintenance); returns how many. */
  trimProcessedInput(now?: number): number;
  metrics: EngineMetrics;
  logger: Logger;
  /** The predictor's models (set when `predictor.enabled`). */
  models?: ModelRegistry;
  /** The built-in trainer, polling retrain-triggers next to the runtime (set when `trainer.enabled`). */
  trainer?: TrainerJob;
  close(): Promise<void>;
}

export function logDirOf(dataDir: string): string {
  return join(dataDir, 'log');
}

export async function openEmbeddedLog(config: SampleloopConfig): Promise<EmbeddedLog> {
  return EmbeddedLog.open(logDirOf(config.dataDir), { syncWrites: config.embedded.syncWrites });
}

/** Every privacy rule of the configuration: `privacy.alwaysSensitive` and each category's `sensitive`. */
export function privacyRules(config: SampleloopConfig): SampleloopConfig['privacy']['alwaysSensitive'] {
  return [...config.privacy.alwaysSensitive, ...Object.values(config.categories).flatMap((c) => c.sensitive)];
}

/** A rule tokenizes, so the configuration cannot run without a privacy key. */
export function privacyKeyRequired(config: SampleloopConfig): boolean {
  return privacyRules(config).some((r) => r.action === 'tokenize');
}

/** The key is given explicitly: in the environment variable `privacy.keyEnv` names, or as `privacy.keyFile`. */
export function privacyKeyConfigured(config: SampleloopConfig): boolean {
  return (process.env[config.privacy.keyEnv]?.trim() ?? '') !== '' || (config.privacy.keyFile ?? '') !== '';
}

export function privacyPolicyFor(config: SampleloopConfig, allowGenerate: boolean): PrivacyPolicy {
  const categories: Record<string, SampleloopConfig['privacy']['alwaysSensitive']> = {};
  for (const [name, c] of Object.entries(config.categories)) categories[name] = c.sensitive;
  const policyConfig = { alwaysSensitive: config.privacy.alwaysSensitive, categories };
  if (privacyRules(config).length === 0) return new PrivacyPolicy(policyConfig, null);
  // Mask rules alone need no key, but a key seals the dead letters of unparsable records (without one
  // their bytes are withheld): use the configured key, or generate one where allowed.
  if (!privacyKeyRequired(config) && !privacyKeyConfigured(config) && !(allowGenerate && config.dataDir !== '')) return new PrivacyPolicy(policyConfig, null);
  const { key } = resolvePrivacyKey({
    envVar: config.privacy.keyEnv,
    ...(config.privacy.keyFile ? { keyFile: config.privacy.keyFile } : {}),
    dataDir: config.dataDir,
    allowGenerate,
  });
  return new PrivacyPolicy(policyConfig, key);
}

/**
 * A data dir that has been processed under its generated `privacy.key` and lost that file must not
 * silently get a new key: every token would change (samples no longer join or deduplicate with the
 * earlier ones) and its sealed dead letters could no longer be opened.
 */
function refuseLostGeneratedKey(config: SampleloopConfig, log: EmbeddedLog): void {
  if (!privacyKeyRequired(config) || privacyKeyConfigured(config)) return;
  const keyFile = join(config.dataDir, GENERATED_KEY_FILE);
  if (existsSync(keyFile) || log.consumerGroups().length === 0) return;
  throw new ConfigError(
    `privacy key: ${config.dataDir} was processed with the key generated in ${keyFile}, which is missing; a new key would change every token and leave the sealed dead letters unreadable. ` +
      `Restore the file from a backup (or give that key with ${config.privacy.keyEnv} or privacy.keyFile); to start over with a new key on purpose, write one there (\`openssl rand -hex 32 > ${keyFile}\`)`,
  );
}

/** The privacy policy of an embedded data dir: its key generated on first use, never silently replaced once used. */
export function embeddedPrivacyPolicy(config: SampleloopConfig, log: EmbeddedLog): PrivacyPolicy {
  refuseLostGeneratedKey(config, log);
  return privacyPolicyFor(config, true);
}

/** The embedded log's ingress for the CLI and the topic API while the app holds the log: input records are protected before they are appended. */
export function ingressAccess(app: Pick<EmbeddedApp, 'log' | 'registry' | 'ingest'>, now: () => number = Date.now): LogAccess {
  return directAccess(app.log, app.registry, now, app.ingest ? { ingest: app.ingest } : {});
}

/** Opens the embedded log and starts the samples topology on it (not yet processing: call runtime.run/step). */
export async function startEmbeddedApp(
  config: SampleloopConfig,
  options: { logger?: Logger; metrics?: EngineMetrics; now?: () => number; origin?: 'online' | 'replay'; predictor?: EmbeddedPredictorOptions; trainer?: EmbeddedTrainerOptions } = {},
): Promise<EmbeddedApp> {
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const metrics = options.metrics ?? new EngineMetrics({ defaultMetrics: true });
  const log = await openEmbeddedLog(config);
  try {
    const privacy = embeddedPrivacyPolicy(config, log);
    const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
    const ingest = inputProtectionFor(config, () => privacy, (id) => registry.cached(id));
    const { requests, predictions, feedback } = config.topics;
    const trimmer =
      config.embedded.inputRetentionMs === null
        ? undefined
        : new ConsumedInputTrimmer(log, [requests, predictions, feedback].filter((t) => t !== config.topics.models), config.embedded.inputRetentionMs);
    const serdes = await registerOutputSchemas(registry, samplesOutputs(config.topics));
    const deadLetterId = serdes.schemaId(config.topics.deadLetters) as number;
    const topology = buildSamplesTopology({
      topics: config.topics,
      join: joinOptionsFromConfig(config, options.origin ?? 'online'),
      privacy,
      maxRecordBytes: config.input.maxRecordBytes,
      ...(config.input.rejectUnknownCategories ? { knownCategories: new Set(Object.keys(config.categories)) } : {}),
      serdes,
      ...(options.now ? { now: options.now } : {}),
    });
    ensureModelsTopic(log, config.topics.models);
    if (config.predictor.enabled || config.trainer.enabled) for (const warning of trustWarnings(config)) logger.warn(warning);
    const predictor = config.predictor.enabled ? await embeddedPredictor(config, { log, registry, privacy, ...(options.now ? { now: options.now } : {}), ...options.predictor }) : undefined;
    const triggerTopologies = config.trigger.enabled ? await embeddedTriggerTopologies(config, { log, registry, ...(options.now ? { now: options.now } : {}) }) : [];
    const runtime = new EmbeddedRuntime(log, [topology, ...(predictor ? [predictor.topology] : []), ...triggerTopologies], {
      applicationId: config.applicationId,
      logger,
      metrics,
      deadLetterTopic: config.topics.deadLetters,
      encodeDeadLetter: (envelope: DeadLetterEnvelope) => encodeFramed('DeadLetter', deadLetterId, envelope),
      protectPayload: (bytes: Buffer) => privacy.protectRaw(bytes),
      commitIntervalMs: config.embedded.commitIntervalMs,
      punctuateIntervalMs: config.join.punctuateIntervalMs,
      defaultTopic: { partitions: config.embedded.partitions, retentionMs: config.embedded.retentionMs },
      ...(options.now ? { now: options.now } : {}),
    });
    runtime.start();
    const trainer = config.trainer.enabled
      ? startEmbeddedTrainer(config, { log, registry, logger, metrics, ...(options.now ? { now: options.now } : {}), ...options.trainer })
      : undefined;
    return {
      config,
      log,
      runtime,
      registry,
      serdes,
      privacy,
      ingest,
      trimProcessedInput: (now = (options.now ?? Date.now)()) => trimmer?.run(now) ?? 0,
      metrics,
      logger,
      ...(predictor ? { models: predictor.models } : {}),
      ...(trainer ? { trainer: trainer.job } : {}),
      close: async () => {
        await trainer?.stop();
        runtime.close();
        await predictor?.models.close();
        await log.close();
      },
    };
  } catch (err) {
    await log.close();
    throw err;
  }
}
