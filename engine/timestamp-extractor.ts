import type { DeadLetterRequest } from './processor.js';
import type { SourceRecord } from './record.js';

/**
 * What a source's timestamp extractor made of one input record: its event time and the value the
 * source hands to its children (so a record is decoded once, where it is read), or why it is invalid.
 */
export type Extraction =
  | { valid: true; timestamp: number; value: unknown }
  | {
      valid: false;
      /** Sent as the record's dead letter, in place of any processing. */
      deadLetter: DeadLetterRequest;
      /** The dead letter's `stage`; default: the source node's name. */
      stage?: string;
    };

/**
 * How the event time of a source topic's records is read (Kafka Streams' TimestampExtractor; the
 * application supplies it, the engine orders by it). A task's input hands out the buffered record
 * with the lowest extracted time across its partitions; an invalid record takes no part in that
 * ordering and never reaches a processor (so it cannot move stream time): it is handed out as soon
 * as it is at the head of its partition and goes to the dead-letter topic where it stands.
 * Called once per record; it must not throw (a throw counts as invalid, `processing-error`).
 */
export interface TimestampExtractor {
  extract(record: SourceRecord): Extraction;
}

/** A record as a task's input hands it out: the source record and, when its source has an extractor, what it extracted. */
export interface InputRecord {
  record: SourceRecord;
  extraction: Extraction | undefined;
}

/** The task's extraction for a record (undefined: its source has no extractor, the log timestamp orders it). */
export type ExtractFn = (record: SourceRecord) => Extraction | undefined;

/** The time a record is ordered by; undefined when it takes no part in ordering. */
export function orderingTime(record: SourceRecord, extraction: Extraction | undefined): number | undefined {
  if (extraction === undefined) return record.timestamp;
  return extraction.valid ? extraction.timestamp : undefined;
}
