import type { SourceRecord } from '../record.js';
import type { Topology } from '../topology.js';
import type { KafkaConsumerType } from './client.js';
import { TaskInput } from './task-input.js';
import type { InputRecord } from '../timestamp-extractor.js';
import { taskKey, type KafkaTasks } from './tasks.js';

/** Records buffered per input partition before its fetching is paused. */
const MAX_BUFFERED = 20_000;

/**
 * Routes fetched records to the input buffer (TaskInput) of the task that reads their partition and
 * hands each task its records in timestamp order, pausing partitions buffered far ahead.
 */
export class InputRouter {
  /** Fetched records waiting to be processed in timestamp order, per task. */
  private readonly inputs = new Map<string, TaskInput>();
  private readonly paused = new Set<string>();
  /** Some task holds records it may not process yet (see TaskInput). */
  waiting = false;

  constructor(
    private readonly consumer: KafkaConsumerType,
    private readonly tasks: KafkaTasks,
    private readonly bySource: ReadonlyMap<string, Topology>,
  ) {}

  push(record: SourceRecord): void {
    // A task revoked meanwhile: the new owner reprocesses the record from the committed offset.
    this.inputFor(record.topic, record.partition)?.push(record);
  }

  /** The consumer fetched everything of the partition before `offset`. */
  onPartitionEnd(topic: string, partition: number, offset: number): void {
    this.inputFor(topic, partition)?.markEnd(topic, partition, offset);
  }

  /** The task's buffered records are dropped (the task is closed or dropped). */
  forget(key: string): void {
    this.inputs.delete(key);
  }

  /** The partitions are no longer paused for buffering far ahead (their task was closed). */
  forgetPaused(partitions: ReadonlyArray<{ topic: string; partition: number }>): void {
    for (const { topic, partition } of partitions) this.paused.delete(`${topic}/${partition}`);
  }

  /** The input buffer of the task that reads `topic` partition `partition`; undefined when this instance has no such task. */
  private inputFor(topic: string, partition: number): TaskInput | undefined {
    const topology = this.bySource.get(topic);
    if (!topology) return undefined;
    const key = taskKey(topology.name, partition);
    let input = this.inputs.get(key);
    if (!input) {
      if (!this.tasks.has(key)) return undefined;
      input = new TaskInput(topology.sourceTopics().map((t) => ({ topic: t, partition })), (r) => topology.extract(r));
      this.inputs.set(key, input);
    }
    return input;
  }

  /**
   * Fallback for an empty partition without an end-of-partition event since its last record: caught up
   * when the consumer's position has reached the high watermark of the last fetch. An unknown position
   * or watermark means the partition was not fetched yet: wait for it.
   */
  private readonly caughtUp = (topic: string, partition: number): boolean => {
    const { highOffset } = this.consumer.getWatermarkOffsets(topic, partition);
    if (highOffset < 0) return false;
    const [pos] = this.consumer.position([{ topic, partition }]);
    return typeof pos?.offset === 'number' && pos.offset >= 0 && pos.offset >= highOffset;
  };

  /** Processes each task's buffered input in timestamp order (see TaskInput), pausing partitions buffered far ahead. */
  async drain(): Promise<void> {
    this.waiting = false;
    for (const [key, input] of this.inputs) {
      const rt = this.tasks.get(key);
      if (!rt) {
        this.inputs.delete(key);
        continue;
      }
      if (input.size() === 0) continue;
      const batch: InputRecord[] = [];
      for (let next = input.next(this.caughtUp); next; next = input.next(this.caughtUp)) batch.push(next);
      rt.task.prefetch(batch.map((e) => e.record));
      for (const e of batch) rt.task.process(e.record, e.extraction);
      if (batch.length > 0) await rt.task.flushBatches();
      if (input.size() > 0) this.waiting = true;
      for (const b of input.buffered()) {
        const tp = [{ topic: b.topic, partition: b.partition }];
        const id = `${b.topic}/${b.partition}`;
        if (b.size > MAX_BUFFERED && !this.paused.has(id)) {
          this.consumer.pause(tp);
          this.paused.add(id);
        } else if (b.size < MAX_BUFFERED / 4 && this.paused.has(id)) {
          this.consumer.resume(tp);
          this.paused.delete(id);
        }
      }
    }
  }
}
