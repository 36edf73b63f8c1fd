/**
 * Every path of docs/join-semantics.md through the real embedded engine, one record at a time,
 * asserting the exact output records.
 *
 * Small windows keep the arithmetic readable: beforeMs 10, afterMs 100, graceMs 50, so
 * closeP = tp + 150 and closeF = tf + 160.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../config/config.js';
import type { DisplayRecord } from '../access/embedded.js';
import type { Feedback, LabeledSample, LabelSource, LateRecord, OrphanFeedback, Prediction, ReviewRecord, UnmatchedPrediction } from '../schemas/types.js';
import { protectAsDocumented, startHarness, type EngineHarness } from './helpers/engine-harness.js';

const JOIN = { beforeMs: 10, afterMs: 100, graceMs: 50 };
const BASE_CONFIG: ConfigInput = { join: JOIN, categories: { fraud: { classes: ['fraud', 'legit'] } } };

const RAW_ATTRIBUTES = { name: 'Ada Lovelace', phone: '+44 7700 900123', idNumber: '912-34-5678', country: 'GB' };
const PROTECTED_ATTRIBUTES = protectAsDocumented(RAW_ATTRIBUTES);
const FEATURES = { f0: 1.5, f1: -2.25 };

function prediction(requestId: string, timestamp: number, over: Partial<Prediction> = {}): Prediction {
  return {
    requestId,
    category: 'intent',
    features: { ...FEATURES },
    attributes: { ...RAW_ATTRIBUTES },
    predictedLabel: 'billing',
    scores: { billing: 0.7, support: 0.2, sales: 0.1 },
    modelVersion: '1.4.0',
    modelHash: '',
    // Equal to tp: docs and engine disagree on which one the sample carries (see join.pending-bug.test.ts).
    requestTimestamp: timestamp,
    timestamp,
    ...over,
  };
}

function feedback(requestId: string, timestamp: number, fields: { actualLabel?: string | null; correct?: boolean | null }): Feedback {
  return { requestId, timestamp, source: '', actualLabel: fields.actualLabel ?? null, correct: fields.correct ?? null };
}

/** The prediction as it appears in output records: attributes protected. */
function stored(p: Prediction): Prediction {
  return { ...p, attributes: protectAsDocumented(p.attributes) };
}

function sample(
  p: Prediction,
  label: string,
  labelSource: LabelSource,
  feedbackTimestamp: number | null,
  revision: number,
): LabeledSample {
  return {
    requestId: p.requestId,
    category: p.category,
    features: p.features,
    attributes: protectAsDocumented(p.attributes),
    label,
    labelSource,
    predictedLabel: p.predictedLabel,
    modelVersion: p.modelVersion,
    requestTimestamp: p.timestamp,
    feedbackTimestamp,
    revision,
    origin: 'online',
  };
}

function keysAndTimestamps(records: DisplayRecord[]): Array<[string | null, number]> {
  return records.map((r) => [r.key, r.timestamp]);
}

const FRAUD = { category: 'fraud', predictedLabel: 'fraud', scores: { fraud: 0.8, legit: 0.15, unknown: 0.05 } };
const CHURN = { category: 'churn', predictedLabel: 'stay', scores: { stay: 0.6, leave: 0.4 } };

describe('join through the engine', () => {
  let h: EngineHarness;
  const open = async (config: ConfigInput = BASE_CONFIG): Promise<EngineHarness> => {
    h = await startHarness({ config });
    return h;
  };
  afterEach(async () => {
    await h?.close();
  });

  async function expectNothingElse(...except: string[]): Promise<void> {
    for (const topic of ['samples', 'unmatched', 'orphans', 'late', 'review', 'dead-letters']) {
      if (!except.includes(topic)) expect(await h.outputs(topic), `topic ${topic}`).toEqual([]);
    }
  }

  describe('matching', () => {
    it('matches when the feedback arrives after the prediction', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1030, { actualLabel: 'billing' }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'CONFIRMED', 1030, 0)]);
      // Key = requestId; record timestamp = max(tp, tf).
      expect(keysAndTimestamps(await h.records('samples'))).toEqual([['r1', 1030]]);
      h.flush();
      await expectNothingElse('samples');
    });

    it('matches when the feedback arrives first (buffered, applied when the prediction comes)', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('feedback', feedback('r1', 995, { actualLabel: 'support' }));
      expect(await h.outputs('samples')).toEqual([]);
      h.send('prediction', p);
      expect(await h.outputs('samples')).toEqual([sample(p, 'support', 'CORRECTED', 995, 0)]);
      expect(keysAndTimestamps(await h.records('samples'))).toEqual([['r1', 1000]]);
      h.flush();
      await expectNothingElse('samples');
    });

    it('applies several buffered feedback records in arrival order when the prediction arrives', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('feedback', feedback('r1', 1010, { actualLabel: 'support' }));
      h.send('feedback', feedback('r1', 1020, { actualLabel: 'sales' }));
      h.send('prediction', p);
      expect(await h.outputs('samples')).toEqual([sample(p, 'support', 'CORRECTED', 1010, 0), sample(p, 'sales', 'CORRECTED', 1020, 1)]);
    });
  });

  describe('labeling', () => {
    it('CONFIRMED via actualLabel equal to the prediction (actualLabel wins over correct=false)', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { actualLabel: 'billing', correct: false }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'CONFIRMED', 1001, 0)]);
    });

    it('CONFIRMED via correct=true without a label', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { correct: true }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'CONFIRMED', 1001, 0)]);
    });

    it('CORRECTED via a different actualLabel (actualLabel wins over correct=true)', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { actualLabel: 'sales', correct: true }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'sales', 'CORRECTED', 1001, 0)]);
    });

    it('correct=false on a two-class category uses the configured classes, not the score keys', async () => {
      await open();
      // Three score keys, but categories.fraud.classes = [fraud, legit].
      const p = prediction('r1', 1000, FRAUD);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { correct: false }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'legit', 'CORRECTED', 1001, 0)]);
      await expectNothingElse('samples');
    });

    it('correct=false on an unconfigured category with two score keys takes the other key', async () => {
      await open();
      const p = prediction('r1', 1000, CHURN);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { correct: false }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'leave', 'CORRECTED', 1001, 0)]);
    });

    it('correct=false on a multi-class category goes to review, and the held state is unchanged', async () => {
      await open();
      const p = prediction('r1', 1000);
      const f = feedback('r1', 1001, { correct: false });
      h.send('prediction', p);
      h.send('feedback', f);
      expect(await h.outputs('review')).toEqual([{ prediction: stored(p), feedback: f, reason: 'incorrect-without-label' } satisfies ReviewRecord]);
      expect(keysAndTimestamps(await h.records('review'))).toEqual([['r1', 1001]]);
      // Still unmatched: a later label gives revision 0.
      h.send('feedback', feedback('r1', 1002, { actualLabel: 'sales' }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'sales', 'CORRECTED', 1002, 0)]);
      expect(await h.app.metrics.total('events', { event: 'review' })).toBe(1);
    });

    it('review is decided before the duplicate policy: review feedback after a match still goes to review', async () => {
      await open({ ...BASE_CONFIG, join: { ...JOIN, duplicates: 'first' } });
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { correct: true }));
      h.send('feedback', feedback('r1', 1002, { correct: false }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'CONFIRMED', 1001, 0)]);
      expect((await h.outputs('review')).map((r) => (r as ReviewRecord).feedback.timestamp)).toEqual([1002]);
      expect(await h.app.metrics.total('events', { event: 'duplicate-feedback' })).toBe(0);
    });

    it('with onTimeout=confirm a prediction that only received review feedback closes as a DEFAULT sample', async () => {
      await open({ ...BASE_CONFIG, join: { ...JOIN, onTimeout: 'confirm' } });
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { correct: false }));
      h.flush();
      expect(await h.outputs('review')).toHaveLength(1);
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'DEFAULT', null, 0)]);
    });
  });

  describe('duplicate feedback', () => {
    it('latest: every newer (or equally old) feedback re-emits with revision + 1 under the same key', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1010, { actualLabel: 'billing' }));
      h.send('feedback', feedback('r1', 1020, { actualLabel: 'support' }));
      h.send('feedback', feedback('r1', 1020, { correct: true }));
      expect(await h.outputs('samples')).toEqual([
        sample(p, 'billing', 'CONFIRMED', 1010, 0),
        sample(p, 'support', 'CORRECTED', 1020, 1),
        sample(p, 'billing', 'CONFIRMED', 1020, 2),
      ]);
      expect((await h.records('samples')).map((r) => r.key)).toEqual(['r1', 'r1', 'r1']);
    });

    it('latest: an older correction arriving after a newer one is superseded (not emitted, counted)', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1050, { actualLabel: 'support' }));
      h.send('feedback', feedback('r1', 1049, { actualLabel: 'sales' }));
      h.send('feedback', feedback('r1', 1060, { actualLabel: 'sales' }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'support', 'CORRECTED', 1050, 0), sample(p, 'sales', 'CORRECTED', 1060, 1)]);
      expect(await h.app.metrics.total('events', { event: 'superseded-feedback' })).toBe(1);
      expect(await h.app.metrics.total('events', { event: 'duplicate-feedback' })).toBe(0);
      h.flush();
      await expectNothingElse('samples');
    });

    it('first: only the first labeled feedback counts; later ones are counted as duplicate-feedback', async () => {
      await open({ ...BASE_CONFIG, join: { ...JOIN, duplicates: 'first' } });
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1010, { actualLabel: 'support' }));
      h.send('feedback', feedback('r1', 1020, { actualLabel: 'sales' }));
      h.send('feedback', feedback('r1', 1005, { correct: true }));
      h.flush();
      expect(await h.outputs('samples')).toEqual([sample(p, 'support', 'CORRECTED', 1010, 0)]);
      expect(await h.app.metrics.total('events', { event: 'duplicate-feedback' })).toBe(2);
      expect(await h.app.metrics.total('events', { event: 'superseded-feedback' })).toBe(0);
      await expectNothingElse('samples');
    });
  });

  describe('window bounds', () => {
    it('tf = tp - beforeMs and tf = tp + afterMs fit (inclusive)', async () => {
      await open();
      const a = prediction('a', 1000);
      const b = prediction('b', 1000);
      h.send('prediction', a);
      h.send('prediction', b);
      h.send('feedback', feedback('a', 990, { correct: true }));
      h.send('feedback', feedback('b', 1100, { correct: true }));
      expect(await h.outputs('samples')).toEqual([sample(a, 'billing', 'CONFIRMED', 990, 0), sample(b, 'billing', 'CONFIRMED', 1100, 0)]);
      await expectNothingElse('samples');
    });

    it('tf one ms outside either bound is an outside-window orphan with the stream time of the decision', async () => {
      await open();
      h.send('prediction', prediction('a', 1000));
      h.send('prediction', prediction('b', 1000));
      const early = feedback('a', 989, { correct: true });
      const lateTf = feedback('b', 1101, { correct: true });
      h.send('feedback', early);
      h.send('feedback', lateTf);
      const expected: OrphanFeedback[] = [
        { feedback: early, reason: 'outside-window', predictionTimestamp: 1000, closedAt: 1000 },
        // Decided before this record advanced stream time to 1101.
        { feedback: lateTf, reason: 'outside-window', predictionTimestamp: 1000, closedAt: 1000 },
      ];
      expect(await h.outputs('orphans')).toEqual(expected);
      expect(keysAndTimestamps(await h.records('orphans'))).toEqual([['a', 989], ['b', 1101]]);
      expect(await h.outputs('samples')).toEqual([]);
    });

    it('buffered feedback that does not fit the arriving prediction becomes an outside-window orphan', async () => {
      await open();
      const tooEarly = feedback('r1', 900, { actualLabel: 'support' });
      const fits = feedback('r1', 995, { actualLabel: 'sales' });
      h.send('feedback', tooEarly);
      h.send('feedback', fits);
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      expect(await h.outputs('orphans')).toEqual([{ feedback: tooEarly, reason: 'outside-window', predictionTimestamp: 1000, closedAt: 995 } satisfies OrphanFeedback]);
      expect(await h.outputs('samples')).toEqual([sample(p, 'sales', 'CORRECTED', 995, 0)]);
    });

    it('feedback for a held prediction is never late: it is an outside-window orphan instead', async () => {
      await open();
      h.send('prediction', prediction('r1', 1000));
      h.send('prediction', prediction('x', 1149));
      // Without a held prediction closeF = 960 <= 1149 would make it late.
      const old = feedback('r1', 800, { correct: true });
      h.send('feedback', old);
      expect(await h.outputs('orphans')).toEqual([{ feedback: old, reason: 'outside-window', predictionTimestamp: 1000, closedAt: 1149 } satisfies OrphanFeedback]);
      expect(await h.outputs('late')).toEqual([]);
    });
  });

  describe('late records', () => {
    it('a prediction with closeP <= stream time is late; one ms later it is held', async () => {
      await open();
      h.send('prediction', prediction('now', 2000));
      const late = prediction('old', 1850); // closeP = 2000 <= 2000
      h.send('prediction', late);
      h.send('prediction', prediction('edge', 1851)); // closeP = 2001 > 2000
      const expected: LateRecord = { kind: 'PREDICTION', requestId: 'old', recordTimestamp: 1850, streamTime: 2000, closeTime: 2000, prediction: stored(late), feedback: null };
      expect(await h.outputs('late')).toEqual([expected]);
      expect(keysAndTimestamps(await h.records('late'))).toEqual([['old', 1850]]);
      h.send('feedback', feedback('edge', 1860, { correct: true }));
      expect((await h.outputs('samples')).map((s) => (s as LabeledSample).requestId)).toEqual(['edge']);
    });

    it('a feedback with closeF <= stream time and no held prediction is late; one ms later it is buffered', async () => {
      await open();
      h.send('prediction', prediction('now', 2000));
      const late = feedback('old', 1840, { actualLabel: 'x' }); // closeF = 2000
      const buffered = feedback('edge', 1841, { actualLabel: 'x' }); // closeF = 2001
      h.send('feedback', late);
      h.send('feedback', buffered);
      const expected: LateRecord = { kind: 'FEEDBACK', requestId: 'old', recordTimestamp: 1840, streamTime: 2000, closeTime: 2000, prediction: null, feedback: late };
      expect(await h.outputs('late')).toEqual([expected]);
      h.send('prediction', prediction('tick', 2001));
      expect(await h.outputs('orphans')).toEqual([{ feedback: buffered, reason: 'no-prediction', predictionTimestamp: null, closedAt: 2001 } satisfies OrphanFeedback]);
    });

    it('a late duplicate prediction goes to late, not to the dead letters', async () => {
      await open();
      h.send('prediction', prediction('r1', 1000));
      h.send('prediction', prediction('x', 1100));
      h.send('prediction', prediction('r1', 940)); // closeP 1090 <= 1100
      expect((await h.outputs('late')).map((l) => [(l as LateRecord).requestId, (l as LateRecord).closeTime])).toEqual([['r1', 1090]]);
      expect(await h.outputs('dead-letters')).toEqual([]);
    });

    it('a late prediction does not take the feedback buffered for it; that feedback closes as no-prediction', async () => {
      await open();
      const f = feedback('r1', 1000, { correct: true }); // closeF = 1160
      h.send('feedback', f);
      h.send('prediction', prediction('x', 1155));
      h.send('prediction', prediction('r1', 1000)); // closeP = 1150 <= 1155: late
      expect((await h.outputs('late')).map((l) => (l as LateRecord).requestId)).toEqual(['r1']);
      expect(await h.outputs('orphans')).toEqual([]);
      h.send('prediction', prediction('y', 1160));
      expect(await h.outputs('orphans')).toEqual([{ feedback: f, reason: 'no-prediction', predictionTimestamp: null, closedAt: 1160 } satisfies OrphanFeedback]);
      expect(await h.outputs('samples')).toEqual([]);
    });
  });

  describe('closing', () => {
    it('an unmatched prediction closes when stream time reaches closeP, with closedAt = closeP', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('prediction', prediction('x', 1149));
      expect(await h.outputs('unmatched')).toEqual([]);
      h.send('prediction', prediction('y', 1200));
      const expected: UnmatchedPrediction = { prediction: stored(p), reason: 'no-feedback', closedAt: 1150 };
      expect(await h.outputs('unmatched')).toEqual([expected]);
      expect(keysAndTimestamps(await h.records('unmatched'))).toEqual([['r1', 1000]]);
      // Closed and no longer held: its feedback is judged on its own (closeF = 1200 <= 1200: late).
      h.send('feedback', feedback('r1', 1040, { correct: true }));
      expect((await h.outputs('late')).map((l) => (l as LateRecord).kind)).toEqual(['FEEDBACK']);
    });

    it('a matched prediction closes silently', async () => {
      await open();
      h.send('prediction', prediction('r1', 1000));
      h.send('feedback', feedback('r1', 1001, { correct: true }));
      h.send('prediction', prediction('x', 1150));
      h.flush();
      expect((await h.outputs('unmatched')).map((u) => (u as UnmatchedPrediction).prediction.requestId)).toEqual(['x']);
      expect(await h.outputs('samples')).toHaveLength(1);
    });

    it('onTimeout=confirm emits a DEFAULT sample (label = predictedLabel, feedbackTimestamp null, revision 0)', async () => {
      await open({ ...BASE_CONFIG, join: { ...JOIN, onTimeout: 'confirm' } });
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('prediction', prediction('x', 1150));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'DEFAULT', null, 0)]);
      expect(keysAndTimestamps(await h.records('samples'))).toEqual([['r1', 1000]]);
      expect(await h.outputs('unmatched')).toEqual([]);
    });

    it('buffered feedback with no prediction closes as a no-prediction orphan with closedAt = closeF', async () => {
      await open();
      const f = feedback('r1', 1000, { actualLabel: 'billing' });
      h.send('feedback', f);
      h.send('prediction', prediction('x', 1159));
      expect(await h.outputs('orphans')).toEqual([]);
      h.send('prediction', prediction('y', 1300));
      expect(await h.outputs('orphans')).toEqual([{ feedback: f, reason: 'no-prediction', predictionTimestamp: null, closedAt: 1160 } satisfies OrphanFeedback]);
      expect(keysAndTimestamps(await h.records('orphans'))).toEqual([['r1', 1000]]);
    });

    it('closes in order of close time, then predictions before feedback, then requestId', async () => {
      await open();
      h.send('prediction', prediction('b', 1010)); // closeP 1160
      h.send('feedback', feedback('z', 1000, { correct: true })); // closeF 1160
      h.send('prediction', prediction('a', 1010)); // closeP 1160
      h.send('feedback', feedback('c', 995, { correct: true })); // closeF 1155
      h.send('feedback', feedback('z', 1000, { actualLabel: 'second' })); // closeF 1160, after the first z
      h.send('prediction', prediction('tick', 2000));
      const order = [
        ...(await h.outputs('unmatched')).map((u) => `P:${(u as UnmatchedPrediction).prediction.requestId}@${(u as UnmatchedPrediction).closedAt}`),
        ...(await h.outputs('orphans')).map((o) => `F:${(o as OrphanFeedback).feedback.requestId}@${(o as OrphanFeedback).closedAt}`),
      ];
      // Predictions and feedback go to different topics, so the order is observable within each topic.
      expect(order).toEqual(['P:a@1160', 'P:b@1160', 'F:c@1155', 'F:z@1160', 'F:z@1160']);
      expect((await h.outputs('orphans')).map((o) => (o as OrphanFeedback).feedback.actualLabel ?? 'flag')).toEqual(['flag', 'flag', 'second']);
    });

    it('a new non-late prediction after the window closed opens a new window (new revision 0)', async () => {
      await open();
      const first = prediction('r1', 1000);
      h.send('prediction', first);
      h.send('feedback', feedback('r1', 1001, { correct: true }));
      h.send('prediction', prediction('x', 1150)); // closes r1
      const second = prediction('r1', 1100, { modelVersion: '1.5.0' });
      h.send('prediction', second);
      h.send('feedback', feedback('r1', 1101, { actualLabel: 'sales' }));
      expect(await h.outputs('samples')).toEqual([sample(first, 'billing', 'CONFIRMED', 1001, 0), sample(second, 'sales', 'CORRECTED', 1101, 0)]);
      expect(await h.outputs('dead-letters')).toEqual([]);
    });

    it('flush (end of input) closes everything still open', async () => {
      await open();
      const p = prediction('r1', 1000);
      const f = feedback('q', 5000, { correct: true });
      h.send('prediction', p);
      h.send('feedback', f);
      h.flush();
      expect(await h.outputs('unmatched')).toEqual([{ prediction: stored(p), reason: 'no-feedback', closedAt: 1150 } satisfies UnmatchedPrediction]);
      expect(await h.outputs('orphans')).toEqual([{ feedback: f, reason: 'no-prediction', predictionTimestamp: null, closedAt: 5160 } satisfies OrphanFeedback]);
    });
  });

  describe('dead letters', () => {
    it('a second prediction for a held request is a duplicate-prediction dead letter; the first is kept', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('prediction', prediction('r1', 1003, { modelVersion: '9.9.9', predictedLabel: 'sales' }));
      const letters = await h.records('dead-letters');
      expect(letters).toHaveLength(1);
      const letter = letters[0] as DisplayRecord;
      expect(letter.key).toBe('r1');
      expect(letter.headers['sampleloop.dlq.reason.code']).toBe('duplicate-prediction');
      expect(letter.headers['sampleloop.dlq.source.topic']).toBe('predictions');
      expect(letter.headers['sampleloop.dlq.source.offset']).toBe('1');
      const value = letter.value as { reasonCode: string; payloadRedacted: boolean; payload: string; stage: string };
      expect(value.reasonCode).toBe('duplicate-prediction');
      expect(value.stage).toBe('join');
      expect(value.payloadRedacted).toBe(true);
      // No raw sensitive value leaves the engine, not even in a dead letter.
      expect(value.payload).not.toContain('Ada Lovelace');
      expect((JSON.parse(value.payload) as Prediction).attributes).toEqual(PROTECTED_ATTRIBUTES);
      h.send('feedback', feedback('r1', 1005, { correct: true }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'CONFIRMED', 1005, 0)]);
    });

    it('feedback with neither actualLabel nor correct is an invalid-feedback dead letter and does not move stream time', async () => {
      await open();
      h.send('feedback', { requestId: 'bad', timestamp: 999_999, source: 'crm' });
      const letters = await h.records('dead-letters');
      expect(letters.map((l) => [l.key, l.headers['sampleloop.dlq.reason.code'], l.headers['sampleloop.dlq.stage']])).toEqual([['bad', 'invalid-feedback', 'decode-feedback']]);
      // Had stream time moved to 999 999 this prediction would be late.
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('feedback', feedback('r1', 1001, { correct: true }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'billing', 'CONFIRMED', 1001, 0)]);
      h.flush();
      await expectNothingElse('samples', 'dead-letters');
    });
  });

  describe('wall-clock idle advance', () => {
    it('closes windows when input stops, by the wall-clock time elapsed between idle punctuations', async () => {
      await open({ ...BASE_CONFIG, join: { ...JOIN, idleAdvance: true, punctuateIntervalMs: 10 } });
      const p = prediction('r1', 1000); // closeP = 1150
      h.send('prediction', p);
      h.advanceWallClock(10);
      h.punctuate(); // a record was seen since the last punctuation: no advance
      expect(await h.outputs('unmatched')).toEqual([]);
      h.advanceWallClock(140);
      h.punctuate(); // stream time 1000 + 140 = 1140 < 1150
      expect(await h.outputs('unmatched')).toEqual([]);
      h.advanceWallClock(5);
      h.punctuate(); // not due yet (every 10 ms of wall clock): still 1140
      expect(await h.outputs('unmatched')).toEqual([]);
      h.advanceWallClock(5);
      h.punctuate(); // 1140 + 10 = 1150: closed
      expect(await h.outputs('unmatched')).toEqual([{ prediction: stored(p), reason: 'no-feedback', closedAt: 1150 } satisfies UnmatchedPrediction]);
      // Stream time really moved: a feedback fitting r1 now finds no prediction and its closeF 1160 is still ahead.
      h.send('feedback', feedback('r1', 1000, { correct: true }));
      expect(await h.outputs('late')).toEqual([]);
      expect(await h.outputs('samples')).toEqual([]);
    });

    it('does not advance stream time while records keep arriving, nor when idleAdvance is off', async () => {
      await open({ ...BASE_CONFIG, join: { ...JOIN, idleAdvance: true, punctuateIntervalMs: 10 } });
      h.send('prediction', prediction('r1', 1000));
      h.advanceWallClock(10);
      h.punctuate();
      h.advanceWallClock(500);
      h.send('feedback', feedback('other', 1001, { correct: true }));
      h.punctuate(); // a record arrived in this interval: no advance
      expect(await h.outputs('unmatched')).toEqual([]);
      await h.close();

      await open({ ...BASE_CONFIG, join: { ...JOIN, idleAdvance: false, punctuateIntervalMs: 10 } });
      h.send('prediction', prediction('r1', 1000));
      for (let i = 0; i < 3; i++) {
        h.advanceWallClock(1000);
        h.punctuate();
      }
      expect(await h.outputs('unmatched')).toEqual([]);
    });
  });

  describe('restart', () => {
    it('keeps the join state and stream time across a restart; the sample is emitted once', async () => {
      await open();
      const p = prediction('r1', 1000);
      h.send('prediction', p);
      h.send('prediction', prediction('x', 1100));
      await h.restart();
      h.send('feedback', feedback('r1', 1050, { actualLabel: 'support' }));
      expect(await h.outputs('samples')).toEqual([sample(p, 'support', 'CORRECTED', 1050, 0)]);
      // Stream time (1100) survived: closeP 1090 <= 1100.
      h.send('prediction', prediction('old', 940));
      expect((await h.outputs('late')).map((l) => [(l as LateRecord).requestId, (l as LateRecord).streamTime])).toEqual([['old', 1100]]);
      await h.restart();
      h.punctuate(); // nothing left to read: committed input is not processed again
      h.flush();
      expect(await h.outputs('samples')).toEqual([sample(p, 'support', 'CORRECTED', 1050, 0)]);
      expect((await h.outputs('unmatched')).map((u) => (u as UnmatchedPrediction).prediction.requestId)).toEqual(['x']);
      expect(await h.outputs('dead-letters')).toEqual([]);
    });
  });
});
