import { join } from 'node:path';
import type { SampleloopConfig } from '../config/config.js';
import { ConfigError, errorMessage } from '../engine/errors.js';
import { createLogger, type Logger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { privacyPolicyFor } from './embedded.js';
import { encodeFramed } from '../schemas/codec.js';
import { buildSamplesTopology, joinOptionsFromConfig, samplesOutputs } from '../topologies/samples.js';
import { registerOutputSchemas } from '../topologies/serde.js';
import { ConfluentSchemaRegistry, fetchWriterSchemas } from '../schemas/confluent-registry.js';
import { KafkaRuntime } from '../engine/kafka/runtime.js';
import { KafkaAdmin } from '../engine/kafka/admin.js';
import { KafkaGlobalTable } from '../engine/kafka/global-table.js';
import { ledgerRecordDecoder, ModelRegistry } from '../models/model-registry.js';
import type { LedgerRecord } from '../models/ledger.js';
import { buildPredictorTopology, predictorOutputs } from '../topologies/predictor.js';
import { trainerSettingsFor } from '../config/category-settings.js';
import { startTrainerLoop, trainerSettingsFromConfig, TrainerJob } from '../models/trainer-job.js';
import { KafkaTrainerLog } from '../models/trainer-kafka.js';
import { ledgerClient, ledgerKeysFor, trustPolicyFor, trustWarnings } from '../models/ledger.js';
import { kafkaAccess } from '../access/kafka.js';
import { buildTriggerTopologies, triggerOutputs, triggerSettingsByCategory, triggerSettingsFromConfig, triggerTopicsFromConfig } from '../topologies/trigger.js';

export interface KafkaApp {
  runtime: KafkaRuntime;
  registry: ConfluentSchemaRegistry;
  metrics: EngineMetrics;
  logger: Logger;
  /** The built-in trainer polling retrain-triggers (set when `trainer.enabled`). */
  trainer?: TrainerJob;
  close(): Promise<void>;
}

export function librdkafkaSettings(config: SampleloopConfig): Record<string, string | number | boolean> {
  const settings = { ...config.kafka.librdkafka };
  if (config.kafka.bootstrapServers) settings['bootstrap.servers'] = config.kafka.bootstrapServers;
  if (!settings['bootstrap.servers']) throw new ConfigError('mode "kafka" needs kafka.bootstrapServers (or kafka.librdkafka["bootstrap.servers"])');
  return settings;
}

/** Assembles the samples topology on a Kafka cluster (mode "kafka"). Call `runtime.run(signal)` to process. */
export async function startKafkaApp(config: SampleloopConfig, options: { logger?: Logger; metrics?: EngineMetrics } = {}): Promise<KafkaApp> {
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const metrics = options.metrics ?? new EngineMetrics({ defaultMetrics: true });
  const settings = librdkafkaSettings(config);
  if (!config.kafka.schemaRegistry) {
    throw new ConfigError('mode "kafka" needs kafka.schemaRegistry.url: outputs are Avro in the Confluent wire format, registered under <topic>-value');
  }
  // Tokens must be equal on every instance, so the key must come from the environment or a file.
  const privacy = privacyPolicyFor(config, false);
  const registry = new ConfluentSchemaRegistry(config.kafka.schemaRegistry);
  const serdes = await registerOutputSchemas(registry, samplesOutputs(config.topics));
  const deadLetterId = serdes.schemaId(config.topics.deadLetters) as number;
  const topology = buildSamplesTopology({
    topics: config.topics,
    join: joinOptionsFromConfig(config, 'online'),
    privacy,
    maxRecordBytes: config.input.maxRecordBytes,
    ...(config.input.rejectUnknownCategories ? { knownCategories: new Set(Object.keys(config.categories)) } : {}),
    serdes,
  });
  const topologies = [topology];
  let ledger: KafkaGlobalTable<LedgerRecord> | undefined;
  // The model ledger: one partition keyed by category, history kept; the predictor reads it as a global table, the trigger as a stream.
  const modelsPartitions = config.predictor.enabled || config.trigger.enabled ? await ensureModelsTopic(config, settings, logger) : 1;
  if (config.predictor.enabled) {
    ledger = await KafkaGlobalTable.start({
      settings,
      topic: config.topics.models,
      partitions: modelsPartitions,
      groupId: `${config.applicationId}-models-${config.kafka.instanceId}`,
      decode: ledgerRecordDecoder(registry),
      logger,
    });
    const predictorSerdes = await registerOutputSchemas(registry, predictorOutputs(config.topics));
    for (const warning of trustWarnings(config)) logger.warn(warning);
    const models = new ModelRegistry(ledger, {
      trust: trustPolicyFor(config, { generate: true, onGenerated: (file) => logger.info({ file }, 'generated the model signing key') }),
      ...(config.models.defaultCategory !== undefined ? { defaultCategory: config.models.defaultCategory } : {}),
    });
    topologies.unshift(
      buildPredictorTopology({
        topics: config.topics,
        models,
        privacy,
        maxRecordBytes: config.input.maxRecordBytes,
        ...(config.input.rejectUnknownCategories ? { knownCategories: new Set(Object.keys(config.categories)) } : {}),
        serdes: predictorSerdes,
        featureDefaults: config.predictor.featureDefaults,
        timestamp: config.predictor.timestamp,
      }),
    );
  }
  if (config.trigger.enabled) {
    const topics = triggerTopicsFromConfig(config);
    const triggerSerdes = await registerOutputSchemas(registry, triggerOutputs(topics));
    topologies.push(
      ...buildTriggerTopologies({
        topics,
        settings: triggerSettingsFromConfig(config),
        settingsFor: triggerSettingsByCategory(config),
        serdes: triggerSerdes,
        writerSchema: (id) => registry.cached(id),
        // Called when a trigger fires, long after start() has found or created the samples topic.
        samplesPartitions: () => runtime.partitionCount(topics.samples) ?? config.kafka.partitions,
        now: Date.now,
      }),
    );
  }
  const runtime = new KafkaRuntime(topologies, {
    applicationId: config.applicationId,
    instanceId: config.kafka.instanceId,
    guarantee: config.kafka.processingGuarantee,
    librdkafka: settings,
    stateDir: config.kafka.stateDir ?? join(config.dataDir, 'state'),
    replicationFactor: config.kafka.replicationFactor,
    defaultPartitions: config.kafka.partitions,
    commitIntervalMs: config.kafka.commitIntervalMs,
    punctuateIntervalMs: config.join.punctuateIntervalMs,
    pollRecords: config.kafka.pollRecords,
    logger,
    metrics,
    deadLetterTopic: config.topics.deadLetters,
    encodeDeadLetter: (envelope) => encodeFramed('DeadLetter', deadLetterId, envelope),
    protectPayload: (bytes) => privacy.protectRaw(bytes),
    beforeBatch: (records) => fetchWriterSchemas(registry, records, { onRetry: (err, attempt) => logger.warn({ err: errorMessage(err), attempt }, 'schema registry unavailable; retrying before decoding') }),
  });
  await runtime.start();
  const trainer = config.trainer.enabled ? await startKafkaTrainer(config, { settings, registry, logger, metrics }) : undefined;
  return {
    runtime,
    registry,
    metrics,
    logger,
    ...(trainer ? { trainer: trainer.job } : {}),
    close: async () => {
      await trainer?.stop();
      await runtime.close();
      await ledger?.stop();
    },
  };
}

/** The built-in trainer next to the runtime (`trainer.enabled`); instances that enable it share the triggers through a consumer group. */
async function startKafkaTrainer(
  config: SampleloopConfig,
  deps: { settings: ReturnType<typeof librdkafkaSettings>; registry: ConfluentSchemaRegistry; logger: Logger; metrics: EngineMetrics },
): Promise<{ job: TrainerJob; stop(): Promise<void> }> {
  const { topics } = config;
  const log = await KafkaTrainerLog.open(
    deps.settings,
    deps.logger,
    `${config.applicationId}.trainer`,
    topics.retrainTriggers,
    [topics.retrainTriggers, topics.trainerDecisions].map((name) => ({ name, partitions: config.kafka.partitions })),
    config.kafka.replicationFactor,
    (records) => fetchWriterSchemas(deps.registry, records),
  );
  const access = kafkaAccess(deps.settings, deps.registry, deps.logger, { partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor });
  const job = new TrainerJob({
    log,
    writerSchema: (id) => deps.registry.cached(id),
    ledger: ledgerClient(access, topics.models, ledgerKeysFor(config, { generate: true })),
    settings: trainerSettingsFromConfig(config),
    settingsFor: (category) => trainerSettingsFor(config, category),
    topics: { triggers: topics.retrainTriggers, decisions: topics.trainerDecisions },
    applicationId: config.applicationId,
    classesFor: (category) => config.categories[category]?.classes,
    logger: deps.logger,
    metrics: deps.metrics,
  });
  const loop = startTrainerLoop(job, deps.logger);
  return {
    job,
    stop: async () => {
      await loop.stop();
      await log.close();
    },
  };
}

async function ensureModelsTopic(config: SampleloopConfig, settings: ReturnType<typeof librdkafkaSettings>, logger: Logger): Promise<number> {
  const admin = new KafkaAdmin(settings, logger);
  try {
    const counts = await admin.ensureTopics([{ name: config.topics.models, partitions: 1, compact: false, keepForever: true }], config.kafka.replicationFactor);
    return counts.get(config.topics.models) ?? 1;
  } finally {
    admin.close();
  }
}

