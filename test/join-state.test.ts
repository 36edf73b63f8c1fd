import { describe, expect, it } from 'vitest';
import { heldPredictionCodec, type HeldPrediction } from '../processors/join-state.js';
import type { Prediction } from '../schemas/types.js';

function prediction(id: string, features: Record<string, number>): Prediction {
  return {
    requestId: id,
    category: 'fraud',
    features,
    attributes: { name: 'tok:abc', channel: 'web' },
    predictedLabel: 'legit',
    scores: { legit: 0.75, fraud: 0.25 },
    modelVersion: 'v3',
    modelHash: 'h',
    requestTimestamp: 1_700_000_000_000,
    timestamp: 1_700_000_000_123,
  };
}

/** Without the codec's cached encoding, which is not part of the state. */
function strip(held: HeldPrediction): HeldPrediction {
  const { encodedPrediction: _cached, ...rest } = held;
  return rest;
}

describe('held prediction state codec', () => {
  const codec = heldPredictionCodec();

  it('round-trips every field exactly, features in their order, status rewritten without the body changing', () => {
    const features = { amount: 1234.56, ratio: 0.1 + 0.2, z: -3.5e-300, big: 1.7976931348623157e308, negZero: -0, count: 7 };
    const held: HeldPrediction = { prediction: prediction('r1', features), matched: false, revision: -1, appliedFeedbackTimestamp: -1, closeTime: 1_700_090_000_123 };
    const first = codec.encode(held);
    const back = codec.decode(first);
    expect(strip(back)).toEqual(strip(held));
    expect(Object.keys(back.prediction.features)).toEqual(Object.keys(features));
    expect(Object.is(back.prediction.features.negZero, -0)).toBe(true);

    back.matched = true;
    back.revision = 2;
    back.appliedFeedbackTimestamp = 1_700_000_050_000;
    const second = codec.decode(codec.encode(back));
    expect(strip(second)).toEqual(strip(back));
  });

  it('keeps records with different feature sets apart, including a feature named __proto__', () => {
    const a = prediction('a', { x: 1, y: 2 });
    const b = prediction('b', JSON.parse('{"__proto__": 5, "x": 3}') as Record<string, number>);
    const c = prediction('c', {});
    for (const p of [a, b, c, a]) {
      const held: HeldPrediction = { prediction: p, matched: true, revision: 0, appliedFeedbackTimestamp: 5, closeTime: 9 };
      const back = codec.decode(codec.encode(held)).prediction;
      expect(Object.entries(back.features)).toEqual(Object.entries(p.features));
      expect(Object.getPrototypeOf(back.features)).toBe(Object.prototype);
    }
  });

  it('still reads the earlier formats (JSON body, bare JSON object)', () => {
    const held: HeldPrediction = { prediction: prediction('old', { f: 0.5 }), matched: true, revision: 1, appliedFeedbackTimestamp: 7, closeTime: 11 };
    expect(codec.decode(Buffer.from(JSON.stringify(held)))).toEqual(held);
    const body = Buffer.from(JSON.stringify(held.prediction));
    const header = Buffer.alloc(22);
    header[0] = 1;
    header[1] = 1;
    header.writeInt32BE(1, 2);
    header.writeDoubleBE(7, 6);
    header.writeDoubleBE(11, 14);
    expect(strip(codec.decode(Buffer.concat([header, body])))).toEqual(held);
    expect(() => codec.decode(Buffer.from([9, 0, 0]))).toThrow(/unknown state format 9/);
  });
});
