import { describe, expect, it } from 'vitest';
import type { SourceRecord } from '../../engine/record.js';
import { TaskInput } from '../../engine/kafka/task-input.js';

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
});
