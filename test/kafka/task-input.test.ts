import { describe, expect, it } from 'vitest';
import type { SourceRecord } from '../../engine/record.js';
import { TaskInput } from '../../engine/kafka/task-input.js';
import type { Extraction } from '../../engine/timestamp-extractor.js';

function rec(topic: string, offset: number, timestamp: number): SourceRecord {
  return { topic, partition: 0, offset, key: null, value: null, timestamp, headers: {} };
}

const never = (): boolean => false;

function drain(input: TaskInput, caughtUp: (topic: string, partition: number) => boolean = never): string[] {
  const out: string[] = [];
  for (let r = input.next(caughtUp); r; r = input.next(caughtUp)) out.push(`${r.record.topic}@${r.record.offset}`);
  return out;
}

describe('TaskInput', () => {
  it('hands out records in timestamp order across partitions', () => {
    const input = new TaskInput([{ topic: 'p', partition: 0 }, { topic: 'f', partition: 0 }]);
    input.push(rec('p', 0, 10));
    input.push(rec('p', 1, 30));
    input.push(rec('f', 0, 20));
    input.push(rec('f', 1, 40));
    input.markEnd('p', 0, 2);
    input.markEnd('f', 0, 2);
    expect(drain(input)).toEqual(['p@0', 'f@0', 'p@1', 'f@1']);
  });

  it('waits for an empty partition whose end is not known, unless caughtUp says so', () => {
    const input = new TaskInput([{ topic: 'p', partition: 0 }, { topic: 'f', partition: 0 }]);
    input.push(rec('p', 0, 10));
    expect(drain(input)).toEqual([]);
    expect(drain(input, (topic) => topic === 'f')).toEqual(['p@0']);
  });

  it('an end-of-partition event releases the other partitions until a record at or past that end arrives', () => {
    const input = new TaskInput([{ topic: 'p', partition: 0 }, { topic: 'f', partition: 0 }]);
    input.push(rec('f', 0, 5));
    input.markEnd('f', 0, 1);
    input.push(rec('p', 0, 10));
    expect(drain(input)).toEqual(['f@0', 'p@0']);
    input.push(rec('f', 1, 50));
    input.push(rec('p', 1, 20));
    input.markEnd('p', 0, 2);
    expect(drain(input)).toEqual(['p@1', 'f@1']);
    input.push(rec('p', 2, 60));
    expect(drain(input)).toEqual([]); // f's end (2) is not known yet
    input.markEnd('f', 0, 3); // e.g. a transaction marker at offset 2
    expect(drain(input)).toEqual(['p@2']);
  });

  it('an event received before the records it follows still counts (events and records of one batch)', () => {
    const input = new TaskInput([{ topic: 'p', partition: 0 }, { topic: 'f', partition: 0 }]);
    input.markEnd('f', 0, 4);
    input.push(rec('f', 3, 5));
    input.push(rec('p', 0, 10));
    expect(drain(input)).toEqual(['f@3', 'p@0']);
    expect(input.size()).toBe(0);
  });

  it('orders by the extracted event time; an invalid record goes at once, even while another partition is waited for', () => {
    // The event time is in the value; `bad` cannot be decoded. Log timestamps are the wall clock.
    const extract = (r: SourceRecord): Extraction => {
      const text = r.value?.toString('utf8') ?? '';
      return text === 'bad' ? { valid: false, deadLetter: { reasonCode: 'undecodable', reason: 'not a JSON object' } } : { valid: true, timestamp: Number(text), value: text };
    };
    const withValue = (topic: string, offset: number, value: string): SourceRecord => ({ ...rec(topic, offset, 9_999_999), value: Buffer.from(value) });
    const input = new TaskInput([{ topic: 'p', partition: 0 }, { topic: 'f', partition: 0 }], extract);
    input.push(withValue('p', 0, 'bad'));
    input.push(withValue('p', 1, '30'));
    // f not fetched yet: the valid record waits, the invalid one does not.
    expect(drain(input)).toEqual(['p@0']);
    input.push(withValue('f', 0, '20'));
    input.push(withValue('f', 1, 'bad'));
    input.push(withValue('f', 2, '40'));
    input.markEnd('f', 0, 3);
    input.markEnd('p', 0, 2);
    const order: string[] = [];
    for (let r = input.next(never); r; r = input.next(never)) order.push(`${r.record.topic}@${r.record.offset}:${r.extraction?.valid ? r.extraction.timestamp : 'invalid'}`);
    expect(order).toEqual(['f@0:20', 'f@1:invalid', 'p@1:30', 'f@2:40']);
  });
});
