/** Header values are strings; binary headers are not used by sampleloop. */
export type Headers = Record<string, string>;

/** A record inside a topology: typed value, string key. */
export interface StreamRecord<V> {
  key: string | null;
  value: V;
  /** Event time in epoch milliseconds. */
  timestamp: number;
  headers: Headers;
}

/** A record as read from a topic partition. */
export interface SourceRecord {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  headers: Headers;
}

/** A record to be written to a topic; the driver picks the partition when none is given. */
export interface OutputRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  headers: Headers;
  partition?: number;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export function tpKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}
