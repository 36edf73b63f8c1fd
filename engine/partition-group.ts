import type { SourceRecord } from './record.js';
import { orderingTime, type ExtractFn, type Extraction, type InputRecord } from './timestamp-extractor.js';

/** Reads a range of one partition; returns fewer than `max` records when fewer are available. */
export type PartitionReader = (topic: string, partition: number, from: number, max: number) => SourceRecord[];

interface Queue {
  topic: string;
  partition: number;
  /** Next offset to fetch from the log. */
  fetchPosition: number;
  buffer: SourceRecord[];
  /** What the source's extractor made of each buffered record (parallel to `buffer`). */
  extractions: Array<Extraction | undefined>;
  /** Ordering time of each buffered record; NaN: invalid, takes no part in ordering. */
  times: number[];
  head: number;
  exhausted: boolean;
}

const noExtractor: ExtractFn = () => undefined;

/**
 * The input partitions of one task. Like Kafka Streams' PartitionGroup it hands out the buffered
 * record with the smallest timestamp across partitions, so co-partitioned streams interleave by
 * event time; a partition with nothing to read does not hold the others back. The timestamp is the
 * one the source's TimestampExtractor reads (the log timestamp without one); a record it finds
 * invalid is handed out as soon as it is at the head of its partition, taking no part in ordering.
 */
export class PartitionGroup {
  private readonly queues: Queue[];

  constructor(
    inputs: ReadonlyArray<{ topic: string; partition: number; position: number }>,
    private readonly read: PartitionReader,
    private readonly fetchSize: number,
    private readonly extract: ExtractFn = noExtractor,
  ) {
    this.queues = inputs.map((i) => ({ topic: i.topic, partition: i.partition, fetchPosition: i.position, buffer: [], extractions: [], times: [], head: 0, exhausted: false }));
  }

  /** Clears the "nothing more to read" marks so the next `next()` looks at the log again. */
  refresh(): void {
    for (const q of this.queues) q.exhausted = false;
  }

  next(): InputRecord | undefined {
    let best: Queue | undefined;
    let bestTs = Infinity;
    for (const q of this.queues) {
      if (q.head >= q.buffer.length && !this.fill(q)) continue;
      const ts = q.times[q.head] as number;
      if (Number.isNaN(ts)) return this.take(q);
      if (ts < bestTs || best === undefined) {
        best = q;
        bestTs = ts;
      }
    }
    return best ? this.take(best) : undefined;
  }

  private take(q: Queue): InputRecord {
    const i = q.head++;
    return { record: q.buffer[i] as SourceRecord, extraction: q.extractions[i] };
  }

  private fill(q: Queue): boolean {
    if (q.exhausted) return false;
    const records = this.read(q.topic, q.partition, q.fetchPosition, this.fetchSize);
    if (records.length === 0) {
      q.exhausted = true;
      return false;
    }
    const extractions = new Array<Extraction | undefined>(records.length);
    const times = new Array<number>(records.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as SourceRecord;
      const extraction = this.extract(record);
      extractions[i] = extraction;
      times[i] = orderingTime(record, extraction) ?? Number.NaN;
    }
    q.buffer = records;
    q.extractions = extractions;
    q.times = times;
    q.head = 0;
    q.fetchPosition = (records[records.length - 1] as SourceRecord).offset + 1;
    return true;
  }

  inputs(): Array<{ topic: string; partition: number }> {
    return this.queues.map((q) => ({ topic: q.topic, partition: q.partition }));
  }
}
