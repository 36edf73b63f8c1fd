import type { SourceRecord } from './record.js';

/** Reads a range of one partition; returns fewer than `max` records when fewer are available. */
export type PartitionReader = (topic: string, partition: number, from: number, max: number) => SourceRecord[];

interface Queue {
  topic: string;
  partition: number;
  /** Next offset to fetch from the log. */
  fetchPosition: number;
  buffer: SourceRecord[];
  head: number;
  exhausted: boolean;
}

/**
 * The input partitions of one task. Like Kafka Streams' PartitionGroup it hands out the buffered
 * record with the smallest timestamp across partitions, so co-partitioned streams interleave by
 * event time; a partition with nothing to read does not hold the others back.
 */
export class PartitionGroup {
  private readonly queues: Queue[];

  constructor(
    inputs: ReadonlyArray<{ topic: string; partition: number; position: number }>,
    private readonly read: PartitionReader,
    private readonly fetchSize: number,
  ) {
    this.queues = inputs.map((i) => ({ topic: i.topic, partition: i.partition, fetchPosition: i.position, buffer: [], head: 0, exhausted: false }));
  }

  /** Clears the "nothing more to read" marks so the next `next()` looks at the log again. */
  refresh(): void {
    for (const q of this.queues) q.exhausted = false;
  }

  next(): SourceRecord | undefined {
    let best: Queue | undefined;
    let bestTs = Infinity;
    for (const q of this.queues) {
      if (q.head >= q.buffer.length && !this.fill(q)) continue;
      const ts = (q.buffer[q.head] as SourceRecord).timestamp;
      if (ts < bestTs || best === undefined) {
        best = q;
        bestTs = ts;
      }
    }
    if (!best) return undefined;
    return best.buffer[best.head++];
  }

  private fill(q: Queue): boolean {
    if (q.exhausted) return false;
    const records = this.read(q.topic, q.partition, q.fetchPosition, this.fetchSize);
    if (records.length === 0) {
      q.exhausted = true;
      return false;
    }
    q.buffer = records;
    q.head = 0;
    q.fetchPosition = (records[records.length - 1] as SourceRecord).offset + 1;
    return true;
  }

  inputs(): Array<{ topic: string; partition: number }> {
    return this.queues.map((q) => ({ topic: q.topic, partition: q.partition }));
  }
}
