/**
 * Bad and messy traffic on the embedded engine: every record that cannot be processed ends in
 * `dead-letters` (or its documented topic) with a precise reason, and the engine keeps running.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { jsonLinesToRecords } from '../engine/embedded/access.js';
import { startHarness, type EngineHarness } from './helpers/engine-harness.js';

const T0 = 1_767_603_600_000;

const prediction = (requestId: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  requestId,
  category: 'loan',
  features: { income: 5200.5, age: 41 },
  attributes: { name: 'Ada Lovelace', phone: '+44 7700 900123' },
  predictedLabel: 'approve',
  scores: { approve: 0.8, reject: 0.2 },
  modelVersion: 'v1',
  requestTimestamp: T0,
  timestamp: T0,
  ...extra,
});

let harness: EngineHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe('invalid timestamps', () => {
  it('produce keeps a fractional or negative timestamp out of the log timestamp', () => {
    const lines = [
      JSON.stringify(prediction('r-frac', { timestamp: T0 + 0.5 })),
      JSON.stringify(prediction('r-neg', { timestamp: -5 })),
      JSON.stringify(prediction('r-ok')),
    ].join('\n');
    const records = jsonLinesToRecords('predictions', lines, 'requestId', 42);
    expect(records.map((r) => r.timestamp)).toEqual([42, 42, T0]);
  });

  it('a record whose log timestamp is fractional is dead-lettered, not a crash', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    harness.sendRaw('predictions', Buffer.from(JSON.stringify(prediction('r-frac', { timestamp: T0 + 0.5 }))), { key: 'r-frac', timestamp: T0 + 0.5 });
    harness.send('prediction', prediction('r-ok'));
    const dead = (await harness.records('dead-letters')).map((r) => ({ code: r.headers['sampleloop.dlq.reason.code'], value: r.value as { sourceTimestamp: number } }));
    expect(dead.map((d) => d.code)).toEqual(['invalid-timestamp']);
    expect(dead[0]?.value.sourceTimestamp).toBe(T0);
    harness.flush();
    expect(await harness.outputs('unmatched')).toHaveLength(1);
  });
});

describe('a processing failure that stops the engine', () => {
  it('commits nothing of the failed step, so a restart processes the record again', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    harness.send('prediction', prediction('r-before'));
    const { app } = harness;
    const task = app.runtime.taskList()[0];
    if (!task) throw new Error('no task');
    // The dead letter itself fails (as an unencodable one did): the error escapes the task after it
    // took the record's offset.
    (task as unknown as { sendDeadLetter: () => never }).sendDeadLetter = () => {
      throw new Error('simulated fatal failure');
    };
    app.log.append([{ topic: 'predictions', key: null, value: Buffer.from('{"requestId": "r-poison", "cat'), timestamp: T0, headers: {} }]);
    app.log.append([{ topic: 'predictions', key: Buffer.from('r-after'), value: Buffer.from(JSON.stringify(prediction('r-after'))), timestamp: T0, headers: {} }]);
    expect(() => app.runtime.step()).toThrow('simulated fatal failure');
    await harness.restart(); // closes the failed app (which must not commit the failed step), then starts again
    harness.app.runtime.runUntilIdle();
    harness.flush();
    const dead = await harness.records('dead-letters');
    expect(dead.map((r) => [r.headers['sampleloop.dlq.reason.code'], r.headers['sampleloop.dlq.source.offset']])).toEqual([['undecodable', '1']]);
    const unmatched = (await harness.outputs('unmatched')) as Array<{ prediction: { requestId: string } }>;
    expect(unmatched.map((u) => u.prediction.requestId).sort()).toEqual(['r-after', 'r-before']);
  });
});
