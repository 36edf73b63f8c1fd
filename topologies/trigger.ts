import { triggerSettingsFor } from '../config/category-settings.js';
import type { SampleloopConfig } from '../config/config.js';
import type { EmbeddedLog } from '../engine/embedded/log.js';
import type { WriterSchemaLookup } from '../schemas/codec.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import type { SchemaName } from '../schemas/index.js';
import type { RetrainTrigger } from '../schemas/types.js';
import { StreamsBuilder, type Topology } from '../engine/topology.js';
import {
  categoryEventSerializer,
  ModelRekeyProcessor,
  RetrainTriggerProcessor,
  SampleRekeyProcessor,
  triggerStoreNames,
  triggerStores,
  type CategoryEvent,
  type TriggerSettings,
} from '../processors/retrain-trigger.js';
import { registerOutputSchemas, type OutputSerdes } from './serde.js';

export interface TriggerTopics {
  /** LabeledSample input (key requestId). */
  samples: string;
  /** ModelVersion input (key category), the model ledger. */
  models: string;
  /** Internal: CategoryEvent keyed by category. */
  repartition: string;
  /** RetrainTrigger output (key category). */
  triggers: string;
}

export interface TriggerTopologyOptions {
  topics: TriggerTopics;
  settings: TriggerSettings;
  /** A category's settings (`categories.<name>.trigger` overrides); default: `settings`. */
  settingsFor?: (category: string) => TriggerSettings;
  /** Serializer source for the RetrainTrigger output: register `triggerOutputs(topics)` first. */
  serdes: OutputSerdes;
  /** Writer schemas of the Avro records read from samples and models. */
  writerSchema: WriterSchemaLookup;
  samplesPartitions?: () => number;
  now: () => number;
}

export const TRIGGER_TOPOLOGY_NAMES = { rekeySamples: 'trigger-rekey-samples', rekeyModels: 'trigger-rekey-models', trigger: 'retrain-trigger' } as const;

/** Topics written by the trigger topologies with an Avro schema. */
export function triggerOutputs(topics: Pick<TriggerTopics, 'triggers'>): Array<{ topic: string; schema: SchemaName }> {
  return [{ topic: topics.triggers, schema: 'RetrainTrigger' }];
}

/** `<applicationId>-<name>-repartition`, as Kafka Streams names internal topics. */
export function defaultRepartitionTopic(applicationId: string): string {
  return `${applicationId}-retrain-trigger-by-category-repartition`;
}

/**
 * Three topologies, run side by side in one runtime:
 *   samples → re-key by category ─┐
 *   models  → re-key by category ─┴→ repartition topic → retrain trigger → retrain-triggers
 * Separate re-keying topologies let samples, models and the repartition topic have any partition counts.
 */
export function buildTriggerTopologies(options: TriggerTopologyOptions): Topology[] {
  const { topics } = options;

  const samples = new StreamsBuilder(TRIGGER_TOPOLOGY_NAMES.rekeySamples);
  samples
    .stream(topics.samples, 'samples-source')
    .process<CategoryEvent>('rekey-samples', () => new SampleRekeyProcessor(options.writerSchema))
    .to(topics.repartition, categoryEventSerializer, undefined, 'repartition-sink');

  const models = new StreamsBuilder(TRIGGER_TOPOLOGY_NAMES.rekeyModels);
  models
    .stream(topics.models, 'models-source')
    .process<CategoryEvent>('rekey-models', () => new ModelRekeyProcessor(options.writerSchema))
    .to(topics.repartition, categoryEventSerializer, undefined, 'repartition-sink');

  const trigger = new StreamsBuilder(TRIGGER_TOPOLOGY_NAMES.trigger);
  const storeNames = triggerStoreNames('trigger');
  trigger
    .stream(topics.repartition, 'repartition-source')
    .process<RetrainTrigger>(
      'trigger',
      () =>
        new RetrainTriggerProcessor(storeNames, {
          settings: options.settings,
          ...(options.settingsFor ? { settingsFor: options.settingsFor } : {}),
          samplesTopic: topics.samples,
          now: options.now,
          ...(options.samplesPartitions ? { samplesPartitions: options.samplesPartitions } : {}),
        }),
      triggerStores('trigger'),
    )
    .to(topics.triggers, options.serdes.serializer<RetrainTrigger>(topics.triggers, 'RetrainTrigger'), undefined, 'triggers-sink');

  return [samples.build(), models.build(), trigger.build()];
}

/** The global trigger settings (`trigger.*`). */
export function triggerSettingsFromConfig(config: SampleloopConfig): TriggerSettings {
  return triggerSettingsFor(config);
}

/** The settings per category: `trigger.*` with `categories.<name>.trigger` on top. */
export function triggerSettingsByCategory(config: SampleloopConfig): (category: string) => TriggerSettings {
  return (category) => triggerSettingsFor(config, category);
}

export function triggerTopicsFromConfig(config: SampleloopConfig): TriggerTopics {
  return {
    samples: config.topics.samples,
    models: config.topics.models,
    repartition: config.trigger.repartitionTopic ?? defaultRepartitionTopic(config.applicationId),
    triggers: config.topics.retrainTriggers,
  };
}

/** The trigger topologies of `startEmbeddedApp` (when `trigger.enabled`), on the app's log and schema registry. */
export async function embeddedTriggerTopologies(
  config: SampleloopConfig,
  deps: { log: EmbeddedLog; registry: SchemaRegistry; now?: () => number },
): Promise<Topology[]> {
  const topics = triggerTopicsFromConfig(config);
  const serdes = await registerOutputSchemas(deps.registry, triggerOutputs(topics));
  return buildTriggerTopologies({
    topics,
    settings: triggerSettingsFromConfig(config),
    settingsFor: triggerSettingsByCategory(config),
    serdes,
    writerSchema: (id) => deps.registry.cached(id),
    samplesPartitions: () => deps.log.topic(topics.samples)?.partitions ?? config.embedded.partitions,
    now: deps.now ?? Date.now,
  });
}
