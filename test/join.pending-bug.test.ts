/**
 * Engine behaviour that contradicts docs/join-semantics.md. Each test asserts what the doc says and
 * is marked `it.fails` so the suite stays green; when the engine is fixed, vitest reports the test as
 * unexpectedly passing and the `.fails` must be removed.
 */
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

describe('join: known disagreements with docs/join-semantics.md', () => {
  let h: EngineHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  // Doc, "Samples": the sample carries `requestTimestamp` (the prediction's `requestTimestamp`).
  // processors/labeling.ts buildSample sets `requestTimestamp: prediction.timestamp` (tp) instead.
  it.fails('a sample carries the prediction requestTimestamp, not its timestamp', async () => {
    h = await startHarness({ config: CONFIG });
    h.send('prediction', prediction('r1', 1000, 940));
    h.send('feedback', { requestId: 'r1', timestamp: 1010, correct: true });
    const samples = (await h.outputs('samples')) as LabeledSample[];
    expect(samples.map((s) => s.requestTimestamp)).toEqual([940]);
  });

  // Doc, "Other consequences": "An empty `actualLabel` counts as present."
  // schemas/validate.ts readFeedback rejects it as an `invalid-feedback` dead letter instead.
  it.fails('an empty actualLabel counts as present (CORRECTED to the empty label), not a dead letter', async () => {
    h = await startHarness({ config: CONFIG });
    h.send('prediction', prediction('r1', 1000, 1000));
    h.send('feedback', { requestId: 'r1', timestamp: 1010, actualLabel: '' });
    expect(await h.outputs('dead-letters')).toEqual([]);
    const samples = (await h.outputs('samples')) as LabeledSample[];
    expect(samples.map((s) => [s.label, s.labelSource, s.revision])).toEqual([['', 'CORRECTED', 0]]);
  });
});
