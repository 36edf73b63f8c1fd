import type { SourceRecord } from '../record.js';
import { orderingTime, type ExtractFn, type Extraction, type InputRecord } from '../timestamp-extractor.js';

interface Queue {
  topic: string;
  partition: number;
  records: SourceRecord[];
  /** What the source's extractor made of each buffered record (parallel to `records`). */
  extractions: Array<Extraction | undefined>;
  /** Ordering time of each buffered record; NaN: invalid, takes no part in ordering. */
  times: number[];
  head: number;
  /** Offset of the last record pushed, -1 before the first. */
  lastOffset: number;
  /** End offset of the consumer's last end-of-partition event, -1 before the first. */
  endOffset: number;
}

const noExtractor: ExtractFn = () => undefined;

/** Whether an input partition with nothing buffered has nothing more to fetch right now (lag known to be zero). */
export type CaughtUp = (topic: string, partition: number) => boolean;

/**
 * The fetched, not yet processed records of one task's input partitions. Like Kafka Streams'
 * PartitionGroup (max.task.idle.ms = 0) it hands out the record with the lowest timestamp across
 * them, and while a partition has nothing buffered it waits for it unless that partition is known to
 * be caught up, so one topic fetched far ahead of the other cannot push stream time past the join
 * window. A partition is caught up once the consumer reported its end (`markEnd`) and no record at or
 * beyond that end arrived since, or when `caughtUp` says so. The timestamp is the one the source's
 * TimestampExtractor reads (the log timestamp without one); a record it finds invalid is handed out
 * as soon as it is at the head of its partition, taking no part in ordering and waiting for nothing.
 */
export class TaskInput {
  private readonly queues: Queue[];

  constructor(
    partitions: ReadonlyArray<{ topic: string; partition: number }>,
    private readonly extract: ExtractFn = noExtractor,
  ) {
    this.queues = partitions.map((p) => ({ topic: p.topic, partition: p.partition, records: [], extractions: [], times: [], head: 0, lastOffset: -1, endOffset: -1 }));
  }

  private queue(topic: string, partition: number): Queue | undefined {
    for (const q of this.queues) if (q.partition === partition && q.topic === topic) return q;
    return undefined;
  }

  push(record: SourceRecord): boolean {
    const q = this.queue(record.topic, record.partition);
    if (!q) return false;
    const extraction = this.extract(record);
    q.records.push(record);
    q.extractions.push(extraction);
    q.times.push(orderingTime(record, extraction) ?? Number.NaN);
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
  next(caughtUp: CaughtUp): InputRecord | undefined {
    let best: Queue | undefined;
    let bestTs = Infinity;
    for (const q of this.queues) {
      if (q.head >= q.records.length) {
        if (q.endOffset > q.lastOffset) continue;
        if (!caughtUp(q.topic, q.partition)) return this.nextInvalid();
        continue;
      }
      const ts = q.times[q.head] as number;
      if (Number.isNaN(ts)) return this.take(q);
      if (best === undefined || ts < bestTs) {
        best = q;
        bestTs = ts;
      }
    }
    return best ? this.take(best) : undefined;
  }

  /** While ordering waits for a partition, an invalid record at the head of another may still go. */
  private nextInvalid(): InputRecord | undefined {
    for (const q of this.queues) if (q.head < q.records.length && Number.isNaN(q.times[q.head])) return this.take(q);
    return undefined;
  }

  private take(q: Queue): InputRecord {
    const i = q.head++;
    const taken: InputRecord = { record: q.records[i] as SourceRecord, extraction: q.extractions[i] };
    // let them be collected
    q.records[i] = undefined as unknown as SourceRecord;
    q.extractions[i] = undefined;
    if (q.head >= q.records.length) {
      q.records = [];
      q.extractions = [];
      q.times = [];
      q.head = 0;
    } else if (q.head >= 4096 && q.head * 2 >= q.records.length) {
      q.records = q.records.slice(q.head);
      q.extractions = q.extractions.slice(q.head);
      q.times = q.times.slice(q.head);
      q.head = 0;
    }
    return taken;
  }

  buffered(): Array<{ topic: string; partition: number; size: number }> {
    return this.queues.map((q) => ({ topic: q.topic, partition: q.partition, size: q.records.length - q.head }));
  }
}
