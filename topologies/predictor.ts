import type { SampleloopConfig } from '../config/config.js';
import type { EmbeddedLog, TopicConfig } from '../engine/embedded/log.js';
import { StreamsBuilder, type Topology } from '../engine/topology.js';
import { embeddedLedgerSource, ModelRegistry, type ModelLoader } from '../models/model-registry.js';
import { trustPolicyFor } from '../models/ledger/keys-config.js';
import { DecodeProcessor, InputExtractor } from '../processors/decode.js';
import { PredictorProcessor, type PredictionTimestamp } from '../processors/predictor.js';
import type { PrivacyPolicy } from '../processors/privacy.js';
import type { SchemaName } from '../schemas/index.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import type { Prediction, Request } from '../schemas/types.js';
import { registerOutputSchemas, type OutputSerdes } from './serde.js';
import type { TopicNames } from './samples.js';

export interface PredictorTopologyOptions {
  name?: string;
  topics: Pick<TopicNames, 'requests' | 'predictions'>;
  models: ModelRegistry;
  privacy: PrivacyPolicy;
  maxRecordBytes: number;
  knownCategories?: ReadonlySet<string>;
  serdes: OutputSerdes;
  featureDefaults?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  timestamp?: PredictionTimestamp;
  now?: () => number;
}

/** Every topic the predictor topology writes, with its schema (plus the models topic it reads, for decoding). */
export function predictorOutputs(topics: Pick<TopicNames, 'predictions' | 'deadLetters' | 'models'>): Array<{ topic: string; schema: SchemaName }> {
  return [
    { topic: topics.predictions, schema: 'Prediction' },
    { topic: topics.deadLetters, schema: 'DeadLetter' },
    { topic: topics.models, schema: 'ModelVersion' },
  ];
}

/** requests → decode/validate/protect (Request) → predictor (ONNX, micro-batched) → predictions (Avro Prediction). */
export function buildPredictorTopology(options: PredictorTopologyOptions): Topology {
  const builder = new StreamsBuilder(options.name ?? 'predictor');
  // Requests are not joined: their event time is not bounded (a client's clock may be off).
  const extractor = new InputExtractor('Request', {
    maxRecordBytes: options.maxRecordBytes,
    privacy: options.privacy,
    writerSchema: options.serdes.writerSchema,
    maxFutureMs: null,
    stage: 'decode-requests',
  });
  const decode = { privacy: options.privacy, ...(options.knownCategories ? { knownCategories: options.knownCategories } : {}) };
  const predictor = {
    models: options.models,
    ...(options.featureDefaults ? { featureDefaults: options.featureDefaults } : {}),
    ...(options.timestamp ? { timestamp: options.timestamp } : {}),
    ...(options.now ? { now: options.now } : {}),
  };
  const { predictions } = options.topics;
  builder
    .stream<Request>(options.topics.requests, 'requests-source', { timestampExtractor: extractor })
    .process<Request>('decode-requests', () => new DecodeProcessor('Request', decode))
    .process<Prediction>('predictor', () => new PredictorProcessor(predictor))
    .to(predictions, options.serdes.serializer(predictions, 'Prediction'), undefined, 'predictions-sink');
  return builder.build();
}

/**
 * The models topic of the embedded log: one partition, delete policy, no retention, so every version
 * stays (the history is the audit trail; on Kafka the topic is compacted by key = category instead).
 */
export function ensureModelsTopic(log: EmbeddedLog, topic: string): TopicConfig {
  return log.ensureTopic(topic, { partitions: 1, compact: false, retentionMs: null });
}

export interface EmbeddedPredictorOptions {
  /** Replaces `loadOnnxModel` (tests spy on inference through it). */
  loadModel?: ModelLoader;
}

/** The predictor topology of `startEmbeddedApp`, with its model registry reading the embedded models topic. */
export async function embeddedPredictor(
  config: SampleloopConfig,
  deps: { log: EmbeddedLog; registry: SchemaRegistry; privacy: PrivacyPolicy; now?: () => number } & EmbeddedPredictorOptions,
): Promise<{ topology: Topology; models: ModelRegistry }> {
  const serdes = await registerOutputSchemas(deps.registry, predictorOutputs(config.topics));
  const models = new ModelRegistry(embeddedLedgerSource(deps.log, config.topics.models, (id) => deps.registry.cached(id)), {
    trust: trustPolicyFor(config, { generate: true }),
    ...(deps.loadModel ? { loadModel: deps.loadModel } : {}),
    ...(config.models.defaultCategory !== undefined ? { defaultCategory: config.models.defaultCategory } : {}),
  });
  const topology = buildPredictorTopology({
    topics: config.topics,
    models,
    privacy: deps.privacy,
    maxRecordBytes: config.input.maxRecordBytes,
    ...(config.input.rejectUnknownCategories ? { knownCategories: new Set(Object.keys(config.categories)) } : {}),
    serdes,
    featureDefaults: config.predictor.featureDefaults,
    timestamp: config.predictor.timestamp,
    ...(deps.now ? { now: deps.now } : {}),
  });
  return { topology, models };
}
