/** What the built-in trainer needs from the model ledger and from a log, and its settings. */
import type { EmbeddedLog, GroupOffset } from '../engine/embedded/log.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import type { ModelVersion } from '../schemas/types.js';
import type { GateSettings } from './promotion-gate.js';

/** `trainer` field of the versions this job publishes. */
export const TRAINER_ID = 'sampleloop-logreg/1';

/** A version as handed to the ledger, which adds sequence and the hash chain. */
export type NewModelVersion = Omit<ModelVersion, 'recordHash' | 'prevRecordHash' | 'sequence'>;

/** What the trainer needs from the model ledger (models/ledger.ts). */
export interface LedgerPort {
  /** The version serving `category` now: the newest in the ledger, or undefined. */
  latest(category: string): Promise<ModelVersion | undefined>;
  /** Labels already used in the category, so the candidate's label does not collide with one published by hand. */
  versions?(category: string): Promise<string[]>;
  publishVersion(version: NewModelVersion): Promise<unknown>;
}

export interface TrainerSettings extends GateSettings {
  holdoutFraction: number;
  minTrainSamples: number;
  minHoldoutSamples: number;
  /** After the gate passes, train the published version on every sample (train + holdout). */
  refitOnAll: boolean;
  l2: number;
  maxIterations: number;
  tolerance: number;
  pollIntervalMs: number;
  progressEveryIterations: number;
}

/**
 * What the job needs from a log: read samples and triggers, commit a decision with the trigger's
 * offset. `embeddedTrainerLog` (atomic commit) and `kafkaTrainerLog` (models/trainer-kafka.ts,
 * at-least-once: a re-handled trigger is detected in the ledger) implement it.
 */
export interface TrainerLog {
  /** Partitions of `topic`; 0 when it does not exist. */
  partitions(topic: string): Promise<number>;
  /** Up to `max` records of one partition from offset `from` on, in offset order (fewer at the end). */
  read(topic: string, partition: number, from: number, max: number): Promise<SourceRecord[]>;
  committedOffset(group: string, topic: string, partition: number): Promise<number | undefined>;
  /** Writes `outputs` and moves the group's offsets. */
  commit(outputs: readonly OutputRecord[], offsets: readonly GroupOffset[]): Promise<void>;
  /** Resolves when records may have been appended, or after `timeoutMs`. */
  waitForAppend(timeoutMs: number): Promise<void>;
  /**
   * The partitions of `topic` this job instance handles, when instances share them (Kafka: the
   * partitions the trainer's consumer group assigned to it); without it, every partition.
   */
  ownedPartitions?(topic: string): Promise<number[]>;
}

/** The embedded log as a TrainerLog: reads are local, a commit is one atomic write. */
export function embeddedTrainerLog(log: EmbeddedLog, ensureTopics: readonly string[] = []): TrainerLog {
  for (const topic of ensureTopics) log.ensureTopic(topic);
  return {
    partitions: (topic) => Promise.resolve(log.topic(topic)?.partitions ?? 0),
    read: (topic, partition, from, max) => Promise.resolve(log.read(topic, partition, from, max)),
    committedOffset: (group, topic, partition) => Promise.resolve(log.committedOffset(group, topic, partition)),
    commit: (outputs, offsets) => {
      log.commit(outputs, [], offsets);
      return Promise.resolve();
    },
    waitForAppend: (timeoutMs) => log.waitForAppend(timeoutMs),
  };
}
