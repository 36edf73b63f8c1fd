import type { SourceRecord } from '../record.js';

interface Queue {
  topic: string;
  partition: number;
  records: SourceRecord[];
  head: number;
  /** Offset of the last record pushed, -1 before the first. */
  lastOffset: number;
  /** End offset of the consumer's last end-of-partition event, -1 before the first. */
  endOffset: number;
}

/** Whether an input partition with nothing buffered has nothing more to fetch right now (lag known to be zero). */
export type CaughtUp = (topic: string, partition: number) => boolean;

/**
 * The fetched, not yet processed records of one task's input partitions. Like Kafka Streams'
 * PartitionGroup (max.task.idle.ms = 0) it hands out the record with the lowest timestamp across
 * them, and while a partition has nothing buffered it waits for it unless that partition is known to
 * be caught up, so one topic fetched far ahead of the other cannot push stream time past the join
 * window. A partition is caught up once the consumer reported its end (`markEnd`) and no record at or
 * beyond that end arrived since, or when `caughtUp` says so.
 */
export class TaskInput {
  private readonly queues: Queue[];

  constructor(partitions: ReadonlyArray<{ topic: string; partition: number }>) {
    this.queues = partitions.map((p) => ({ topic: p.topic, partition: p.partition, records: [], head: 0, lastOffset: -1, endOffset: -1 }));
  }

  private queue(topic: string, partition: number): Queue | undefined {
    for (const q of this.queues) if (q.partition === partition && q.topic === topic) return q;
    return undefined;
  }

  push(record: SourceRecord): boolean {
    const q = this.queue(record.topic, record.partition);
    if (!q) return false;
    q.records.push(record);
    q.lastOffset = record.offset;
    return true;
  }

  /** The consumer fetched everything of the partition before `endOffset` (an end-of-partition event). */
  markEnd(topic: string, partition: number, endOffset: number): void {
    const q = this.queue(topic, partition);
    if (q && endOffset > q.endOffset) q.endOffset = endOffset;
  }

  size(): number {
    let n = 0;
    for (const q of this.queues) n += q.records.length - q.head;
    return n;
  }

  /**
   * The next record in timestamp order, or undefined when none may be processed yet. `caughtUp` is
   * asked about empty partitions without an end-of-partition event after their last record.
   */
  next(caughtUp: CaughtUp): SourceRecord | undefined {
    let best: Queue | undefined;
    let bestTs = Infinity;
    for (const q of this.queues) {
      if (q.head >= q.records.length) {
        if (q.endOffset > q.lastOffset) continue;
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
    const record = best.records[best.head] as SourceRecord;
    best.records[best.head++] = undefined as unknown as SourceRecord; // let it be collected
    if (best.head >= best.records.length) {
      best.records = [];
      best.head = 0;
    } else if (best.head >= 4096 && best.head * 2 >= best.records.length) {
      best.records = best.records.slice(best.head);
      best.head = 0;
    }
    return record;
  }

  buffered(): Array<{ topic: string; partition: number; size: number }> {
    return this.queues.map((q) => ({ topic: q.topic, partition: q.partition, size: q.records.length - q.head }));
  }
}
