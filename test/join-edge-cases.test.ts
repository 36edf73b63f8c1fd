import { afterEach, describe, expect, it } from 'vitest';
import type { LabeledSample } from '../schemas/types.js';
import { startHarness, type EngineHarness } from './helpers/engine-harness.js';

const CONFIG = { join: { beforeMs: 10, afterMs: 100, graceMs: 50 } };

function prediction(requestId: string, timestamp: number, requestTimestamp: number): object {
  return {
    requestId,
    category: 'intent',
    features: { f0: 1 },
    predictedLabel: 'billing',
    scores: { billing: 0.7, support: 0.2, sales: 0.1 },
    modelVersion: '1.4.0',
    requestTimestamp,
    timestamp,
  };
}

describe('join: sample timestamps and empty labels (docs/join-semantics.md)', () => {
  let h: EngineHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  // Doc, "Samples": the sample carries `requestTimestamp` (the prediction's `requestTimestamp`).
  it('a sample carries the prediction requestTimestamp, not its timestamp', async () => {
    h = await startHarness({ config: CONFIG });
    h.send('prediction', prediction('r1', 1000, 940));
    h.send('feedback', { requestId: 'r1', timestamp: 1010, correct: true });
    const samples = (await h.outputs('samples')) as LabeledSample[];
    expect(samples.map((s) => s.requestTimestamp)).toEqual([940]);
  });

  // Doc, "Other consequences": feedback with an empty `actualLabel` is invalid.
  it('an empty actualLabel is a dead letter (invalid-feedback), never a sample', async () => {
    h = await startHarness({ config: CONFIG });
    h.send('prediction', prediction('r1', 1000, 1000));
    h.send('feedback', { requestId: 'r1', timestamp: 1010, actualLabel: '' });
    const letters = await h.records('dead-letters');
    expect(letters.map((r) => r.headers['sampleloop.dlq.reason.code'])).toEqual(['invalid-feedback']);
    expect(await h.outputs('samples')).toEqual([]);
  });
});
