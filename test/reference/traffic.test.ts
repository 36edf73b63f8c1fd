import { describe, it, expect, vi, afterEach } from 'vitest';
import { generateTraffic, mulberry32, TRAFFIC_BASE_TIME, DEFAULT_TRAFFIC_CATEGORIES } from './traffic.js';
import {
  runReference,
  REF_DEFAULT_JOIN_CONFIG,
  type RefFeedback,
  type RefInput,
  type RefOutput,
  type RefPrediction,
} from './join-model.js';

const DAY = 86_400_000;

function predictionsOf(inputs: RefInput[]): RefPrediction[] {
  return inputs.flatMap((i) => (i.kind === 'prediction' ? [i.value] : []));
}

function feedbackOf(inputs: RefInput[]): RefFeedback[] {
  return inputs.flatMap((i) => (i.kind === 'feedback' ? [i.value] : []));
}

/** topic, plus the sub-kind where a topic has several (orphan reason, late kind, label source). */
function outputKind(o: RefOutput): string {
  if (o.topic === 'orphans') return `orphans:${o.reason}`;
  if (o.topic === 'late') return `late:${o.kind}`;
  if (o.topic === 'samples') return `samples:${o.labelSource}`;
  if (o.topic === 'dead-letters') return `dead-letters:${o.reasonCode}`;
  return o.topic;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('mulberry32', () => {
  it('is deterministic and stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const seqA = Array.from({ length: 1000 }, () => a());
    const seqB = Array.from({ length: 1000 }, () => b());
    expect(seqA).toEqual(seqB);
    expect(seqA.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Set(seqA).size).toBe(1000);
    expect(mulberry32(43)()).not.toBe(seqA[0]);
  });
});

describe('generateTraffic: determinism and shape', () => {
  it('gives the same inputs for the same seed, different ones for another seed, without Math.random', () => {
    const random = vi.spyOn(Math, 'random');
    const first = generateTraffic({ seed: 11, requests: 300 });
    const second = generateTraffic({ seed: 11, requests: 300 });
    const other = generateTraffic({ seed: 12, requests: 300 });
    expect(second).toEqual(first);
    expect(other).not.toEqual(first);
    expect(random).not.toHaveBeenCalled();
  });

  it('produces realistic predictions and feedback', () => {
    const inputs = generateTraffic({ seed: 3, requests: 400 });
    const predictions = predictionsOf(inputs);
    const categoryNames = DEFAULT_TRAFFIC_CATEGORIES.map((c) => c.name);
    for (const p of predictions) {
      expect(p.requestId).toMatch(/^r-\d{6}$/);
      expect(categoryNames).toContain(p.category);
      expect(Object.keys(p.features)).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7']);
      expect(Object.values(p.features).every(Number.isFinite)).toBe(true);
      expect(p.attributes.name).toMatch(/^\p{L}+ \p{L}+$/u);
      expect(p.attributes.phone).toMatch(/^(\+1 555-01\d{2}-\d{4}|\+44 7700 900\d{3})$/);
      expect(p.attributes.idNumber).toMatch(/^9\d{2}-\d{2}-\d{4}$/);
      const classes = DEFAULT_TRAFFIC_CATEGORIES.find((c) => c.name === p.category)?.classes ?? [];
      expect(Object.keys(p.scores)).toEqual(classes);
      expect(Object.values(p.scores).reduce((s, x) => s + x, 0)).toBeCloseTo(1, 9);
      expect(p.scores[p.predictedLabel]).toBe(Math.max(...Object.values(p.scores)));
    }
    for (const input of inputs) {
      expect(Number.isInteger(input.value.timestamp)).toBe(true);
      expect(Math.abs(input.value.timestamp - TRAFFIC_BASE_TIME)).toBeLessThan(5 * DAY);
    }
    for (const f of feedbackOf(inputs)) {
      expect(f.actualLabel !== null || f.correct !== null).toBe(true);
    }
    expect(new Set(predictions.map((p) => p.requestId)).size).toBe(400);
  });

  it('honours featureCount and custom categories', () => {
    const inputs = generateTraffic({
      seed: 5,
      requests: 50,
      featureCount: 3,
      categories: [{ name: 'spam', classes: ['spam', 'ham'] }],
    });
    for (const p of predictionsOf(inputs)) {
      expect(Object.keys(p.features)).toEqual(['f0', 'f1', 'f2']);
      expect(p.category).toBe('spam');
      expect(['spam', 'ham']).toContain(p.predictedLabel);
    }
  });

  it('with every rare path switched off gives one prediction and one matching feedback per request', () => {
    const inputs = generateTraffic({
      seed: 9,
      requests: 500,
      missingFeedbackRate: 0,
      duplicateFeedbackRate: 0,
      correctionRate: 0,
      correctOnlyRate: 0,
      lateRate: 0,
      feedbackBeforeRate: 0,
      duplicatePredictionRate: 0,
      outsideWindowRate: 0,
    });
    expect(predictionsOf(inputs)).toHaveLength(500);
    expect(feedbackOf(inputs)).toHaveLength(500);
    const { outputs, counters } = runReference(inputs, REF_DEFAULT_JOIN_CONFIG, { endOfInput: 'flush' });
    expect(outputs).toHaveLength(500);
    expect(outputs.every((o) => o.topic === 'samples' && o.revision === 0 && o.labelSource !== 'DEFAULT')).toBe(true);
    expect(counters).toEqual({ 'duplicate-feedback': 0, 'superseded-feedback': 0 });
  });

  it('drops all feedback with missingFeedbackRate 1 and no late path', () => {
    const inputs = generateTraffic({ seed: 9, requests: 200, missingFeedbackRate: 1, lateRate: 0 });
    expect(feedbackOf(inputs)).toHaveLength(0);
    expect(predictionsOf(inputs).length).toBeGreaterThanOrEqual(200);
  });

  it('rejects invalid options', () => {
    expect(() => generateTraffic({ seed: 1, requests: -1 })).toThrow(RangeError);
    expect(() => generateTraffic({ seed: 1.5, requests: 1 })).toThrow(/seed/);
    expect(() => generateTraffic({ seed: 1, requests: 1, lateRate: 2 })).toThrow(/lateRate/);
    expect(() => generateTraffic({ seed: 1, requests: 1, feedbackDelayMs: { min: 10, max: 5 } })).toThrow(RangeError);
    expect(() => generateTraffic({ seed: 1, requests: 1, categories: [{ name: 'x', classes: ['a'] }] })).toThrow(
      /two distinct classes/,
    );
    expect(generateTraffic({ seed: 1, requests: 0 })).toEqual([]);
  });
});

describe('generateTraffic: a 5 000-request run with default rates covers every path', () => {
  const inputs = generateTraffic({ seed: 2024, requests: 5000 });
  const predictionById = new Map<string, RefPrediction>();
  for (const p of predictionsOf(inputs)) if (!predictionById.has(p.requestId)) predictionById.set(p.requestId, p);
  const twoClass = new Set(DEFAULT_TRAFFIC_CATEGORIES.filter((c) => c.classes.length === 2).map((c) => c.name));
  const { beforeMs, afterMs } = REF_DEFAULT_JOIN_CONFIG;

  it('contains every input path', () => {
    const paths = new Set<string>();
    const firstIndex = new Map<string, { p?: number; f?: number }>();
    const feedbackSeen = new Map<string, RefFeedback[]>();
    let maxTimestamp = Number.NEGATIVE_INFINITY;
    const predictionCount = new Map<string, number>();

    inputs.forEach((input, index) => {
      const id = input.value.requestId;
      if (input.value.timestamp < maxTimestamp) paths.add('out-of-order timestamp');
      maxTimestamp = Math.max(maxTimestamp, input.value.timestamp);
      const seen = firstIndex.get(id) ?? {};
      if (input.kind === 'prediction') {
        seen.p ??= index;
        predictionCount.set(id, (predictionCount.get(id) ?? 0) + 1);
      } else {
        seen.f ??= index;
        const f = input.value;
        const p = predictionById.get(id);
        if (p === undefined) throw new Error(`feedback for unknown request ${id}`);
        if (f.actualLabel === null && f.correct === false) {
          paths.add(twoClass.has(p.category) ? 'correct=false two-class' : 'correct=false multi-class');
        }
        if (f.actualLabel === null && f.correct === true) paths.add('correct=true only');
        if (f.actualLabel !== null && f.correct !== null && f.correct !== (f.actualLabel === p.predictedLabel)) {
          paths.add('actualLabel contradicts correct');
        }
        if (f.timestamp < p.timestamp - beforeMs) paths.add('feedback before window');
        if (f.timestamp > p.timestamp + afterMs) paths.add('feedback after window');
        const earlier = feedbackSeen.get(id) ?? [];
        if (earlier.length > 0) {
          const newest = Math.max(...earlier.map((e) => e.timestamp));
          if (f.timestamp < newest) paths.add('repeat feedback with older timestamp');
          if (f.timestamp > newest) paths.add('repeat feedback with newer timestamp');
          if (earlier.some((e) => e.actualLabel !== f.actualLabel)) paths.add('correction');
        }
        feedbackSeen.set(id, [...earlier, f]);
      }
      firstIndex.set(id, seen);
    });
    for (const [, seen] of firstIndex) {
      if (seen.f !== undefined && seen.p !== undefined && seen.f < seen.p) paths.add('feedback before prediction');
      if (seen.f === undefined) paths.add('missing feedback');
    }
    if ([...predictionCount.values()].some((n) => n > 1)) paths.add('duplicate prediction');

    expect([...paths].sort()).toEqual(
      [
        'actualLabel contradicts correct',
        'correct=false multi-class',
        'correct=false two-class',
        'correct=true only',
        'correction',
        'duplicate prediction',
        'feedback after window',
        'feedback before prediction',
        'feedback before window',
        'missing feedback',
        'out-of-order timestamp',
        'repeat feedback with newer timestamp',
        'repeat feedback with older timestamp',
      ].sort(),
    );
  });

  it('drives the reference join through every output topic and counter', { timeout: 60_000 }, () => {
    const latest = runReference(inputs, REF_DEFAULT_JOIN_CONFIG, { endOfInput: 'flush' });
    const firstConfirm = runReference(
      inputs,
      { ...REF_DEFAULT_JOIN_CONFIG, duplicates: 'first', onTimeout: 'confirm' },
      { endOfInput: 'flush' },
    );
    const kinds = new Set([...latest.outputs, ...firstConfirm.outputs].map(outputKind));
    expect([...kinds].sort()).toEqual(
      [
        'dead-letters:duplicate-prediction',
        'late:FEEDBACK',
        'late:PREDICTION',
        'orphans:no-prediction',
        'orphans:outside-window',
        'review',
        'samples:CONFIRMED',
        'samples:CORRECTED',
        'samples:DEFAULT',
        'unmatched',
      ].sort(),
    );
    expect(latest.counters['superseded-feedback']).toBeGreaterThan(0);
    expect(firstConfirm.counters['duplicate-feedback']).toBeGreaterThan(0);
    const revisions = latest.outputs.flatMap((o) => (o.topic === 'samples' ? [o.revision] : []));
    expect(Math.max(...revisions)).toBeGreaterThan(0);
  });
});
