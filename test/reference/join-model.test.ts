import { describe, it, expect } from 'vitest';
import {
  ReferenceJoin,
  refLabel,
  runReference,
  REF_DEFAULT_JOIN_CONFIG,
  type RefInput,
  type RefJoinConfig,
  type RefOutput,
  type RefPrediction,
  type RefSampleOutput,
} from './join-model.js';

// Small windows keep the arithmetic readable: closeP = tp + 150, closeF = tf + 160.
const CONFIG: RefJoinConfig = { beforeMs: 10, afterMs: 100, graceMs: 50, duplicates: 'latest', onTimeout: 'unmatched' };
const FIRST: RefJoinConfig = { ...CONFIG, duplicates: 'first' };
const CONFIRM: RefJoinConfig = { ...CONFIG, onTimeout: 'confirm' };

const FEATURES = { f0: 1.5, f1: -2.25 };
const ATTRIBUTES = { name: 'Ada Lovelace', phone: '+44 7700 900123', idNumber: '912-34-5678' };

function prediction(requestId: string, timestamp: number, over: Partial<RefPrediction> = {}): RefPrediction {
  return {
    requestId,
    category: 'intent',
    timestamp,
    predictedLabel: 'billing',
    scores: { billing: 0.7, support: 0.2, sales: 0.1 },
    modelVersion: '1.4.0',
    features: { ...FEATURES },
    attributes: { ...ATTRIBUTES },
    ...over,
  };
}

function P(requestId: string, timestamp: number, over: Partial<RefPrediction> = {}): RefInput {
  return { kind: 'prediction', value: prediction(requestId, timestamp, over) };
}

function F(requestId: string, timestamp: number, actualLabel: string | null, correct: boolean | null = null): RefInput {
  return { kind: 'feedback', value: { requestId, timestamp, actualLabel, correct } };
}

const FRAUD = { category: 'fraud', predictedLabel: 'fraud', scores: { fraud: 0.8, legit: 0.2 } };

function sample(
  requestId: string,
  requestTimestamp: number,
  over: Partial<RefSampleOutput> & Pick<RefSampleOutput, 'label' | 'labelSource' | 'feedbackTimestamp' | 'revision'>,
): RefSampleOutput {
  return {
    topic: 'samples',
    requestId,
    category: 'intent',
    predictedLabel: 'billing',
    modelVersion: '1.4.0',
    requestTimestamp,
    features: { ...FEATURES },
    attributes: { ...ATTRIBUTES },
    ...over,
  };
}

const unmatched = (requestId: string, closedAt: number): RefOutput => ({ topic: 'unmatched', requestId, closedAt });
const outsideWindow = (requestId: string, feedbackTimestamp: number): RefOutput => ({
  topic: 'orphans',
  requestId,
  reason: 'outside-window',
  feedbackTimestamp,
  closedAt: null,
});
const noPrediction = (requestId: string, feedbackTimestamp: number, closedAt: number): RefOutput => ({
  topic: 'orphans',
  requestId,
  reason: 'no-prediction',
  feedbackTimestamp,
  closedAt,
});
const review = (requestId: string): RefOutput => ({ topic: 'review', requestId, reason: 'incorrect-without-label' });
const ZERO = { 'duplicate-feedback': 0, 'superseded-feedback': 0 };

describe('reference join: matching', () => {
  it('matches a prediction followed by its feedback', () => {
    const result = runReference([P('r1', 1000), F('r1', 1010, 'billing')], CONFIG, { endOfInput: 'flush' });
    expect(result.outputs).toEqual([
      sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1010, revision: 0 }),
    ]);
    expect(result.counters).toEqual(ZERO);
  });

  it('matches feedback that arrives before its prediction', () => {
    const result = runReference([F('r1', 1005, 'support'), P('r1', 1000)], CONFIG, { endOfInput: 'flush' });
    expect(result.outputs).toEqual([
      sample('r1', 1000, { label: 'support', labelSource: 'CORRECTED', feedbackTimestamp: 1005, revision: 0 }),
    ]);
  });

  it('accepts feedback exactly at both window edges', () => {
    for (const tf of [990, 1100]) {
      const { outputs } = runReference([P('r1', 1000), F('r1', tf, 'billing')], CONFIG);
      expect(outputs).toEqual([
        sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: tf, revision: 0 }),
      ]);
    }
  });

  it('orphans held-prediction feedback just outside the window, before and after', () => {
    expect(runReference([P('r1', 1000), F('r1', 989, 'billing')], CONFIG).outputs).toEqual([outsideWindow('r1', 989)]);
    expect(runReference([P('r1', 1000), F('r1', 1101, 'billing')], CONFIG).outputs).toEqual([
      outsideWindow('r1', 1101),
    ]);
  });

  it('orphans buffered feedback outside the window when its prediction arrives, both ways', () => {
    expect(runReference([F('r1', 985, 'billing'), P('r1', 1000)], CONFIG).outputs).toEqual([outsideWindow('r1', 985)]);
    expect(runReference([F('r1', 1101, 'billing'), P('r1', 1000)], CONFIG).outputs).toEqual([
      outsideWindow('r1', 1101),
    ]);
  });

  it('takes buffered feedback in arrival order when the prediction arrives', () => {
    const result = runReference(
      [F('r1', 1020, 'sales'), F('r1', 985, 'support'), F('r1', 1010, 'support'), P('r1', 1000)],
      CONFIG,
    );
    expect(result.outputs).toEqual([
      sample('r1', 1000, { label: 'sales', labelSource: 'CORRECTED', feedbackTimestamp: 1020, revision: 0 }),
      outsideWindow('r1', 985),
    ]);
    expect(result.counters).toEqual({ 'duplicate-feedback': 0, 'superseded-feedback': 1 });
  });
});

describe('reference join: late records', () => {
  it('sends a prediction whose close time is <= stream time to late, and nothing else', () => {
    const result = runReference([P('r-fill', 1150), P('r-late', 1000), P('r-ok', 1001)], CONFIG, {
      endOfInput: 'flush',
    });
    expect(result.outputs).toEqual([
      { topic: 'late', kind: 'PREDICTION', requestId: 'r-late', recordTimestamp: 1000, streamTime: 1150, closeTime: 1150 },
      unmatched('r-ok', 1151),
      unmatched('r-fill', 1300),
    ]);
  });

  it('leaves feedback buffered for a late prediction until it closes as no-prediction', () => {
    const { outputs } = runReference([F('r1', 1000, 'billing'), P('r-fill', 1155), P('r1', 1000), P('r-fill2', 1160)], CONFIG);
    expect(outputs).toEqual([
      { topic: 'late', kind: 'PREDICTION', requestId: 'r1', recordTimestamp: 1000, streamTime: 1155, closeTime: 1150 },
      noPrediction('r1', 1000, 1160),
    ]);
  });

  it('checks lateness before duplication: a late duplicate goes to late', () => {
    const { outputs } = runReference([P('r1', 1100), P('r-fill', 1200), P('r1', 1040)], CONFIG);
    expect(outputs).toEqual([
      { topic: 'late', kind: 'PREDICTION', requestId: 'r1', recordTimestamp: 1040, streamTime: 1200, closeTime: 1190 },
    ]);
  });

  it('sends feedback with no held prediction and closeF <= stream time to late', () => {
    const { outputs } = runReference([P('r-fill', 1160), F('r1', 1000, 'billing'), F('r2', 1001, 'billing')], CONFIG, {
      endOfInput: 'flush',
    });
    expect(outputs).toEqual([
      { topic: 'late', kind: 'FEEDBACK', requestId: 'r1', recordTimestamp: 1000, streamTime: 1160, closeTime: 1160 },
      noPrediction('r2', 1001, 1161),
      unmatched('r-fill', 1310),
    ]);
  });

  it('does not late-check feedback for a held prediction (outside-window wins)', () => {
    // closeF = 1190 <= stream time 1200, but r1 is held, so the window check decides.
    const { outputs } = runReference([P('r1', 1100), P('r-fill', 1200), F('r1', 1030, 'billing')], CONFIG);
    expect(outputs).toEqual([outsideWindow('r1', 1030)]);
  });

  it('processes a record before its own timestamp advances stream time', () => {
    const tight: RefJoinConfig = { ...CONFIG, afterMs: 100, graceMs: 0 };
    // closeP = 1100: F at 1100 is applied first, then stream time 1100 closes the matched P silently.
    expect(runReference([P('r1', 1000), F('r1', 1100, 'billing')], tight).outputs).toEqual([
      sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1100, revision: 0 }),
    ]);
    // With no window at all a prediction is held (not late) and then closed by its own timestamp.
    const zero: RefJoinConfig = { ...CONFIG, beforeMs: 0, afterMs: 0, graceMs: 0 };
    expect(runReference([P('r1', 1000)], zero).outputs).toEqual([unmatched('r1', 1000)]);
  });

  it('never moves stream time back', () => {
    const join = new ReferenceJoin(CONFIG);
    expect(join.streamTime).toBe(Number.NEGATIVE_INFINITY);
    join.push(P('r1', 1200));
    join.push(F('r2', 1100, 'billing'));
    expect(join.streamTime).toBe(1200);
    expect(join.advanceStreamTime(500)).toEqual([]);
    expect(join.streamTime).toBe(1200);
  });
});

describe('reference join: duplicates and revisions', () => {
  it('dead-letters a duplicate prediction and keeps the held one', () => {
    const { outputs } = runReference(
      [P('r1', 1000), P('r1', 1003, { predictedLabel: 'support', modelVersion: '1.5.0' }), F('r1', 1010, null, true)],
      CONFIG,
      { endOfInput: 'flush' },
    );
    expect(outputs).toEqual([
      { topic: 'dead-letters', requestId: 'r1', reasonCode: 'duplicate-prediction' },
      sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1010, revision: 0 }),
    ]);
  });

  const threeFeedbacks = [P('r1', 1000), F('r1', 1010, 'billing'), F('r1', 1020, 'support'), F('r1', 1020, 'sales')];

  it('latest: every newer or equal feedback re-emits with revision + 1', () => {
    const result = runReference(threeFeedbacks, CONFIG, { endOfInput: 'flush' });
    expect(result.outputs).toEqual([
      sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1010, revision: 0 }),
      sample('r1', 1000, { label: 'support', labelSource: 'CORRECTED', feedbackTimestamp: 1020, revision: 1 }),
      sample('r1', 1000, { label: 'sales', labelSource: 'CORRECTED', feedbackTimestamp: 1020, revision: 2 }),
    ]);
    expect(result.counters).toEqual(ZERO);
  });

  it('first: only the first feedback counts, the rest are duplicate-feedback', () => {
    const result = runReference(threeFeedbacks, FIRST, { endOfInput: 'flush' });
    expect(result.outputs).toEqual([
      sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1010, revision: 0 }),
    ]);
    expect(result.counters).toEqual({ 'duplicate-feedback': 2, 'superseded-feedback': 0 });
  });

  it('latest: an older feedback arriving after a newer one is superseded; revisions continue', () => {
    const result = runReference(
      [P('r1', 1000), F('r1', 1020, 'support'), F('r1', 1010, 'sales'), F('r1', 1030, 'billing')],
      CONFIG,
    );
    expect(result.outputs).toEqual([
      sample('r1', 1000, { label: 'support', labelSource: 'CORRECTED', feedbackTimestamp: 1020, revision: 0 }),
      sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1030, revision: 1 }),
    ]);
    expect(result.counters).toEqual({ 'duplicate-feedback': 0, 'superseded-feedback': 1 });
  });

  it('first: an older feedback after a match counts as duplicate, not superseded', () => {
    const result = runReference([P('r1', 1000), F('r1', 1020, 'support'), F('r1', 1010, 'sales')], FIRST);
    expect(result.counters).toEqual({ 'duplicate-feedback': 1, 'superseded-feedback': 0 });
    expect(result.outputs).toHaveLength(1);
  });
});

describe('reference join: labeling', () => {
  const multi = prediction('r1', 1000);
  const two = prediction('r1', 1000, FRAUD);
  const fb = (actualLabel: string | null, correct: boolean | null) => ({ requestId: 'r1', timestamp: 1000, actualLabel, correct });

  it('follows the labeling table', () => {
    expect(refLabel(multi, fb('billing', null))).toEqual({ kind: 'label', label: 'billing', labelSource: 'CONFIRMED' });
    expect(refLabel(multi, fb('sales', null))).toEqual({ kind: 'label', label: 'sales', labelSource: 'CORRECTED' });
    expect(refLabel(multi, fb(null, true))).toEqual({ kind: 'label', label: 'billing', labelSource: 'CONFIRMED' });
    expect(refLabel(two, fb(null, false))).toEqual({ kind: 'label', label: 'legit', labelSource: 'CORRECTED' });
    expect(refLabel(multi, fb(null, false))).toEqual({ kind: 'needs-review', reason: 'incorrect-without-label' });
  });

  it('lets actualLabel win over correct', () => {
    expect(refLabel(multi, fb('sales', true))).toEqual({ kind: 'label', label: 'sales', labelSource: 'CORRECTED' });
    expect(refLabel(multi, fb('billing', false))).toEqual({ kind: 'label', label: 'billing', labelSource: 'CONFIRMED' });
  });

  it('prefers configured classes over the keys of scores', () => {
    expect(refLabel(multi, fb(null, false), ['billing', 'support'])).toEqual({
      kind: 'label',
      label: 'support',
      labelSource: 'CORRECTED',
    });
    expect(refLabel(two, fb(null, false), ['fraud', 'legit', 'review'])).toEqual({ kind: 'needs-review', reason: 'incorrect-without-label' });
  });

  it('asks for review of an actualLabel outside the configured classes, and only with configured classes', () => {
    expect(refLabel(multi, fb('class_9', null), ['billing', 'sales'])).toEqual({ kind: 'needs-review', reason: 'unknown-label' });
    expect(refLabel(multi, fb('billing', null), ['billing', 'sales'])).toEqual({ kind: 'label', label: 'billing', labelSource: 'CONFIRMED' });
    expect(refLabel(multi, fb('class_9', null))).toEqual({ kind: 'label', label: 'class_9', labelSource: 'CORRECTED' });
  });

  it('asks for review when the predicted label is not one of the two classes', () => {
    const odd = prediction('r1', 1000, { ...FRAUD, predictedLabel: 'unknown' });
    expect(refLabel(odd, fb(null, false))).toEqual({ kind: 'needs-review', reason: 'incorrect-without-label' });
  });

  it('sends needs-review to review without touching the held state', () => {
    const result = runReference(
      [
        P('r1', 1000),
        F('r1', 1010, null, false),
        F('r1', 1005, 'sales'),
        F('r1', 1020, null, false),
        F('r1', 1030, 'support'),
      ],
      CONFIG,
    );
    expect(result.outputs).toEqual([
      review('r1'),
      sample('r1', 1000, { label: 'sales', labelSource: 'CORRECTED', feedbackTimestamp: 1005, revision: 0 }),
      review('r1'),
      sample('r1', 1000, { label: 'support', labelSource: 'CORRECTED', feedbackTimestamp: 1030, revision: 1 }),
    ]);
    expect(result.counters).toEqual(ZERO);
  });

  it('labels correct=false on a two-class category with the other class', () => {
    const { outputs } = runReference([P('r1', 1000, FRAUD), F('r1', 1010, null, false)], CONFIG);
    expect(outputs).toEqual([
      sample('r1', 1000, {
        category: 'fraud',
        predictedLabel: 'fraud',
        label: 'legit',
        labelSource: 'CORRECTED',
        feedbackTimestamp: 1010,
        revision: 0,
      }),
    ]);
  });

  it('uses categories.<name>.classes from the config in the join', () => {
    const config: RefJoinConfig = { ...CONFIG, classes: { intent: ['billing', 'support'] } };
    const { outputs } = runReference([P('r1', 1000), F('r1', 1010, null, false)], config);
    expect(outputs).toEqual([
      sample('r1', 1000, { label: 'support', labelSource: 'CORRECTED', feedbackTimestamp: 1010, revision: 0 }),
    ]);
  });
});

describe('reference join: closing', () => {
  it('sends an unmatched prediction to unmatched exactly when stream time reaches closeP', () => {
    expect(runReference([P('r1', 1000), P('r-fill', 1149)], CONFIG).outputs).toEqual([]);
    expect(runReference([P('r1', 1000), P('r-fill', 1150)], CONFIG).outputs).toEqual([unmatched('r1', 1150)]);
  });

  it('onTimeout=confirm emits a DEFAULT sample with revision 0 and no feedback timestamp', () => {
    const { outputs } = runReference([P('r1', 1000), P('r-fill', 1150)], CONFIRM);
    expect(outputs).toEqual([
      sample('r1', 1000, { label: 'billing', labelSource: 'DEFAULT', feedbackTimestamp: null, revision: 0 }),
    ]);
  });

  it('onTimeout=confirm also covers a prediction that only got needs-review feedback', () => {
    const { outputs } = runReference([P('r1', 1000), F('r1', 1010, null, false), P('r-fill', 1150)], CONFIRM);
    expect(outputs).toEqual([
      review('r1'),
      sample('r1', 1000, { label: 'billing', labelSource: 'DEFAULT', feedbackTimestamp: null, revision: 0 }),
    ]);
  });

  it('closes a matched prediction silently under both policies', () => {
    for (const config of [CONFIG, CONFIRM]) {
      const { outputs } = runReference([P('r1', 1000), F('r1', 1010, 'billing'), P('r-fill', 1150)], config);
      expect(outputs).toEqual([
        sample('r1', 1000, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1010, revision: 0 }),
      ]);
    }
  });

  it('orphans buffered feedback with no-prediction exactly when stream time reaches closeF', () => {
    expect(runReference([F('r1', 1000, 'billing'), P('r-fill', 1159)], CONFIG).outputs).toEqual([]);
    expect(runReference([F('r1', 1000, 'billing'), P('r-fill', 1160)], CONFIG).outputs).toEqual([
      noPrediction('r1', 1000, 1160),
    ]);
  });

  const closingInputs = [
    P('r-b', 1000), // closeP 1150
    P('r-a', 1000), // closeP 1150
    F('r-c', 990, 'billing'), // closeF 1150
    F('r-Z', 990, 'billing'), // closeF 1150; 'r-Z' < 'r-c' by code unit (not by locale)
    F('r-0', 985, 'billing'), // closeF 1145
    P('r-z', 990), // closeP 1140
  ];
  const closingOrder = [
    unmatched('r-z', 1140),
    noPrediction('r-0', 985, 1145),
    unmatched('r-a', 1150),
    unmatched('r-b', 1150),
    noPrediction('r-Z', 990, 1150),
    noPrediction('r-c', 990, 1150),
  ];

  it('closes in order of close time, then predictions before feedback, then requestId', () => {
    const { outputs } = runReference([...closingInputs, P('r-fill', 2000)], CONFIG);
    expect(outputs).toEqual(closingOrder);
  });

  it('closes everything in the same order at end of input with flush, and nothing without', () => {
    expect(runReference(closingInputs, CONFIG, { endOfInput: 'flush' }).outputs).toEqual(closingOrder);
    expect(runReference(closingInputs, CONFIG, { endOfInput: 'none' }).outputs).toEqual([]);
    expect(runReference(closingInputs, CONFIG).outputs).toEqual([]);
  });

  it('buffers feedback that arrives after its prediction closed', () => {
    const { outputs } = runReference([P('r1', 1000), P('r-fill', 1150), F('r1', 1050, 'billing')], CONFIG, {
      endOfInput: 'flush',
    });
    expect(outputs).toEqual([unmatched('r1', 1150), noPrediction('r1', 1050, 1210), unmatched('r-fill', 1300)]);
  });

  it('holds a new prediction for a requestId whose earlier prediction already closed', () => {
    const { outputs } = runReference(
      [P('r1', 1000), P('r-fill', 1150), P('r1', 1100), F('r1', 1110, 'billing')],
      CONFIG,
    );
    expect(outputs).toEqual([
      unmatched('r1', 1150),
      sample('r1', 1100, { label: 'billing', labelSource: 'CONFIRMED', feedbackTimestamp: 1110, revision: 0 }),
    ]);
  });

  it('runs step 4 on a punctuation that advances stream time', () => {
    const join = new ReferenceJoin(CONFIG);
    expect(join.push(P('r1', 1000))).toEqual([]);
    expect(join.advanceStreamTime(1149)).toEqual([]);
    expect(join.advanceStreamTime(1150)).toEqual([unmatched('r1', 1150)]);
    expect(join.flush()).toEqual([]);
  });
});

describe('reference join: inputs and config', () => {
  it('dead-letters feedback with neither actualLabel nor correct without moving stream time', () => {
    const join = new ReferenceJoin(CONFIG);
    join.push(P('r1', 1000));
    expect(join.push(F('r1', 1050, null, null))).toEqual([
      { topic: 'dead-letters', requestId: 'r1', reasonCode: 'invalid-feedback' },
    ]);
    expect(join.streamTime).toBe(1000);
  });

  it('passes features and attributes through unchanged, as copies', () => {
    const input = prediction('r1', 1000, { attributes: { name: 'Zoë Ñúñez', phone: '+1 555-0142-7781', idNumber: '987-65-4321' } });
    const { outputs } = runReference([{ kind: 'prediction', value: input }, F('r1', 1010, 'billing')], CONFIG);
    const [first] = outputs;
    expect(first?.topic).toBe('samples');
    if (first?.topic !== 'samples') return;
    expect(first.attributes).toEqual(input.attributes);
    expect(first.features).toEqual(input.features);
    first.attributes.name = 'changed';
    expect(input.attributes.name).toBe('Zoë Ñúñez');
  });

  it('has the documented defaults', () => {
    expect(REF_DEFAULT_JOIN_CONFIG).toEqual({
      beforeMs: 60_000,
      afterMs: 86_400_000,
      graceMs: 3_600_000,
      duplicates: 'latest',
      onTimeout: 'unmatched',
    });
  });

  it('rejects negative or non-finite windows and timestamps', () => {
    expect(() => new ReferenceJoin({ ...CONFIG, beforeMs: -1 })).toThrow(RangeError);
    expect(() => new ReferenceJoin({ ...CONFIG, graceMs: Number.NaN })).toThrow(/graceMs/);
    expect(() => runReference([P('r1', Number.NaN)], CONFIG)).toThrow(RangeError);
  });

  it('reports both counters even when they are zero', () => {
    expect(runReference([], CONFIG, { endOfInput: 'flush' })).toEqual({ outputs: [], counters: ZERO });
  });
});
