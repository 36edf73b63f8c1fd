import type { SampleloopConfig } from '../../config/config.js';
import type { OutputRecord } from '../../engine/record.js';
import type { SchemaRegistry } from '../../schemas/registry.js';

export type OutputTarget = { kind: 'embedded'; dataDir: string } | { kind: 'file'; path: string; format: 'jsonl' | 'avro' } | { kind: 'kafka' };

/** The samples topology's outputs other than samples; each goes to its own file or embedded topic. */
export const SIDE_OUTPUTS = ['unmatched', 'orphans', 'late', 'review', 'deadLetters'] as const;
export type SideOutput = (typeof SIDE_OUTPUTS)[number];
export type ReplayOutput = 'samples' | SideOutput;

/** Where the samples and every side output of a replay go. */
export interface ReplaySink {
  /** Human-readable location per output (file path, `embedded:<dir> topic <name>`, `kafka topic <name>`). */
  readonly locations: Record<ReplayOutput, string>;
  /** The default place of the rejects file. */
  readonly defaultRejectsPath: string;
  /** The registry the topology registers its output schemas in: the values it writes carry this registry's ids. */
  readonly registry: SchemaRegistry;
  /**
   * Whether side outputs may be written as the join produces them. False for targets where a write
   * cannot be taken back (a replay that falls back to the on-disk sort starts over): replay holds
   * them in its scratch space until the end.
   */
  readonly revocable: boolean;
  /** `record` is an output of the topology, value framed with `registry`'s schema ids. */
  write(output: ReplayOutput, record: OutputRecord): Promise<void>;
  /** Makes everything written visible (files renamed into place, appends flushed, Kafka producer flushed) and closes. */
  commit(): Promise<void>;
  /** Drops what was written where possible (temporary files) and closes. */
  abort(): Promise<void>;
}

/** Topic of each output in `config`. */
export function outputTopics(topics: SampleloopConfig['topics']): Record<ReplayOutput, string> {
  return { samples: topics.samples, unmatched: topics.unmatched, orphans: topics.orphans, late: topics.late, review: topics.review, deadLetters: topics.deadLetters };
}
