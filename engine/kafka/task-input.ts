import type { SourceRecord } from '../record.js';

interface Queue {
  topic: string;
  partition: number;
  records: SourceRecord[];
  head: number;
}

/**
 * The fetched, not yet processed records of one task's input partitions. Like Kafka Streams'
 * PartitionGroup it hands out the record with the lowest timestamp across them, and while a partition
 * has nothing buffered it waits for it unless that partition is caught up (nothing more to fetch), so
 * one topic fetched far ahead of the other cannot push stream time past the join window.
 */
export class TaskInput {
  private readonly queues: Queue[];

  constructor(partitions: ReadonlyArray<{ topic: string; partition: number }>) {
    this.queues = partitions.map((p) => ({ topic: p.topic, partition: p.partition, records: [], head: 0 }));
  }

  push(record: SourceRecord): boolean {
    const q = this.queues.find((x) => x.partition === record.partition && x.topic === record.topic);
    if (!q) return false;
    q.records.push(record);
    return true;
  }

  /** `caughtUp(topic, partition)`: the partition has nothing more to fetch right now. */
  next(caughtUp: (topic: string, partition: number) => boolean): SourceRecord | undefined {
    let best: Queue | undefined;
    let bestTs = Infinity;
    for (const q of this.queues) {
      if (q.head >= q.records.length) {
        if (!caughtUp(q.topic, q.partition)) return undefined;
        continue;
      }
      const ts = (q.records[q.head] as SourceRecord).timestamp;
      if (best === undefined || ts < bestTs) {
        best = q;
        bestTs = ts;
      }
    }
    if (!best) return undefined;
    const record = best.records[best.head++] as SourceRecord;
    if (best.head >= 4096 && best.head * 2 >= best.records.length) {
      best.records = best.records.slice(best.head);
      best.head = 0;
    }
    return record;
  }

  buffered(): Array<{ topic: string; partition: number; size: number }> {
    return this.queues.map((q) => ({ topic: q.topic, partition: q.partition, size: q.records.length - q.head }));
  }
}
