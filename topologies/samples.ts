import type { SampleloopConfig } from '../config/config.js';
import { StreamsBuilder, type Topology } from '../engine/topology.js';
import { DecodeProcessor, InputExtractor } from '../processors/decode.js';
import { predictionFeedbackJoin, JoinOutput, type JoinOptions } from '../processors/join.js';
import type { PrivacyPolicy } from '../processors/privacy.js';
import type { SchemaName } from '../schemas/index.js';
import type { Feedback, Prediction, SampleOrigin } from '../schemas/types.js';
import type { OutputSerdes } from './serde.js';

export type TopicNames = SampleloopConfig['topics'];

export interface SamplesTopologyOptions {
  name?: string;
  topics: TopicNames;
  join: JoinOptions;
  privacy: PrivacyPolicy;
  maxRecordBytes: number;
  knownCategories?: ReadonlySet<string>;
  serdes: OutputSerdes;
  /** Wall clock of the `join.maxFutureMs` bound, injectable for tests. */
  now?: () => number;
}

/** Every topic the samples topology writes, with its schema. */
export function samplesOutputs(topics: TopicNames): Array<{ topic: string; schema: SchemaName }> {
  return [
    { topic: topics.samples, schema: 'LabeledSample' },
    { topic: topics.unmatched, schema: 'UnmatchedPrediction' },
    { topic: topics.orphans, schema: 'OrphanFeedback' },
    { topic: topics.late, schema: 'LateRecord' },
    { topic: topics.review, schema: 'ReviewRecord' },
    { topic: topics.deadLetters, schema: 'DeadLetter' },
  ];
}

/**
 * predictions + feedback → decode/validate (each source's InputExtractor, which also reads the event
 * time the task's input orders by) → protect → windowed join → labeled samples (compacted,
 * keyed by request ID), unmatched predictions, orphan feedback, late records, records for review.
 */
export function buildSamplesTopology(options: SamplesTopologyOptions): Topology {
  const builder = new StreamsBuilder(options.name ?? 'samples');
  const extractor = (schema: 'Prediction' | 'Feedback', stage: string): InputExtractor<typeof schema> =>
    new InputExtractor(schema, {
      maxRecordBytes: options.maxRecordBytes,
      privacy: options.privacy,
      writerSchema: options.serdes.writerSchema,
      maxFutureMs: options.join.maxFutureMs,
      stage,
      ...(options.now ? { now: options.now } : {}),
    });
  const decode = { privacy: options.privacy, ...(options.knownCategories ? { knownCategories: options.knownCategories } : {}) };
  const predictions = builder
    .stream<Prediction>(options.topics.predictions, 'predictions-source', { timestampExtractor: extractor('Prediction', 'decode-predictions') })
    .process<Prediction>('decode-predictions', () => new DecodeProcessor('Prediction', decode));
  const feedback = builder
    .stream<Feedback>(options.topics.feedback, 'feedback-source', { timestampExtractor: extractor('Feedback', 'decode-feedback') })
    .process<Feedback>('decode-feedback', () => new DecodeProcessor('Feedback', decode));
  const joined = predictions.join(feedback, 'join', predictionFeedbackJoin('join', options.join));
  const { topics, serdes } = options;
  joined.output(JoinOutput.samples).to(topics.samples, serdes.serializer(topics.samples, 'LabeledSample'), { compact: true }, 'samples-sink');
  joined.output(JoinOutput.unmatched).to(topics.unmatched, serdes.serializer(topics.unmatched, 'UnmatchedPrediction'), undefined, 'unmatched-sink');
  joined.output(JoinOutput.orphans).to(topics.orphans, serdes.serializer(topics.orphans, 'OrphanFeedback'), undefined, 'orphans-sink');
  joined.output(JoinOutput.late).to(topics.late, serdes.serializer(topics.late, 'LateRecord'), undefined, 'late-sink');
  joined.output(JoinOutput.review).to(topics.review, serdes.serializer(topics.review, 'ReviewRecord'), undefined, 'review-sink');
  return builder.build();
}

export function joinOptionsFromConfig(config: SampleloopConfig, origin: SampleOrigin): JoinOptions {
  const classes: Record<string, readonly string[]> = {};
  for (const [name, category] of Object.entries(config.categories)) if (category.classes) classes[name] = [...new Set(category.classes)];
  return { ...config.join, classes, origin, idleAdvance: origin === 'online' && config.join.idleAdvance };
}
