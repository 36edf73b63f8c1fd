/**
 * The gateway in `sampleloop run` (docs/gateway.md): OIP inference on the category's serving model,
 * every answered prediction written to the predictions topic first, feedback over HTTP. It holds no
 * state but the model cache, so on Kafka any number of instances serve the same answers.
 */
import type { SampleloopConfig } from '../../config/config.js';
import type { EngineMetrics } from '../../engine/metrics.js';
import type { Logger } from '../../engine/logger.js';
import { KafkaAdmin } from '../../engine/kafka/admin.js';
import type { LibrdkafkaSettings } from '../../engine/kafka/client.js';
import type { EmbeddedLog } from '../../engine/embedded/log.js';
import type { ModelRegistry } from '../../models/model-registry.js';
import type { PrivacyPolicy } from '../../processors/privacy.js';
import type { SchemaRegistry } from '../../schemas/registry.js';
import type { Prediction } from '../../schemas/types.js';
import { predictorOutputs } from '../../topologies/predictor.js';
import { registerOutputSchemas } from '../../topologies/serde.js';
import type { Serializer } from '../../engine/topology.js';
import type { HttpPlugin } from '../http.js';
import { kafkaSink } from './kafka-sink.js';
import { gatewayRoutes, type GatewaySettings } from './routes.js';
import { embeddedSink, type GatewaySink } from './sink.js';

export { gatewayRoutes, type GatewayDeps, type GatewaySettings } from './routes.js';

export interface Gateway {
  plugin: HttpPlugin;
  close(): Promise<void>;
}

export function gatewaySettingsFromConfig(config: SampleloopConfig): GatewaySettings {
  return {
    maxRowsPerRequest: config.gateway.maxRowsPerRequest,
    maxBatchRows: config.gateway.maxBatchRows,
    maxQueueRows: config.gateway.maxQueueRows,
    retryAfterSeconds: config.gateway.retryAfterSeconds,
    maxFeedbackRecords: config.gateway.maxFeedbackRecords,
    featureDefaults: config.predictor.featureDefaults,
    ...(config.input.rejectUnknownCategories ? { knownCategories: new Set(Object.keys(config.categories)) } : {}),
  };
}

interface Common {
  config: SampleloopConfig;
  models: ModelRegistry;
  registry: SchemaRegistry;
  privacy: PrivacyPolicy;
  logger: Logger;
  metrics: EngineMetrics;
  ready(): boolean;
  now?: () => number;
}

async function predictionSerializer(config: SampleloopConfig, registry: SchemaRegistry): Promise<Serializer<Prediction>> {
  const serdes = await registerOutputSchemas(registry, predictorOutputs(config.topics));
  return serdes.serializer<Prediction>(config.topics.predictions, 'Prediction');
}

function assemble(deps: Common, sink: GatewaySink): Gateway {
  const plugin = gatewayRoutes({
    models: deps.models,
    sink,
    privacy: deps.privacy,
    settings: gatewaySettingsFromConfig(deps.config),
    logger: deps.logger.child({ component: 'gateway' }),
    metrics: deps.metrics,
    ready: deps.ready,
    ...(deps.now ? { now: deps.now } : {}),
  });
  return { plugin, close: () => sink.close() };
}

/** On the embedded log the engine holds: predictions and feedback appended to it directly. */
export async function embeddedGateway(deps: Common & { log: EmbeddedLog }): Promise<Gateway> {
  const { config, log } = deps;
  for (const topic of [config.topics.predictions, config.topics.feedback]) log.ensureTopic(topic, { partitions: config.embedded.partitions });
  return assemble(deps, embeddedSink(log, config.topics, await predictionSerializer(config, deps.registry)));
}

/** On Kafka: an idempotent acks=all producer of its own; topics created when missing, as the runtime creates them. */
export async function kafkaGateway(deps: Common & { settings: LibrdkafkaSettings }): Promise<Gateway> {
  const { config } = deps;
  const admin = new KafkaAdmin(deps.settings, deps.logger);
  let partitions: Map<string, number>;
  try {
    partitions = await admin.ensureTopics(
      [config.topics.predictions, config.topics.feedback].map((name) => ({ name, partitions: config.kafka.partitions, compact: false })),
      config.kafka.replicationFactor,
    );
  } finally {
    admin.close();
  }
  const sink = await kafkaSink(deps.settings, config.topics, partitions, await predictionSerializer(config, deps.registry), `${config.applicationId}-${config.kafka.instanceId}-gateway`);
  return assemble(deps, sink);
}
