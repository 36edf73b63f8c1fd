/**
 * Randomized differential test: the real engine (through the harness, one record at a time, in
 * arrival order) against the independent reference model of docs/join-semantics.md, compared record
 * for record per output topic, plus the duplicate/superseded counters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runReference, type RefInput, type RefJoinConfig, type RefOutput } from './reference/join-model.js';
import { generateTraffic, DEFAULT_TRAFFIC_CATEGORIES } from './reference/traffic.js';
import { protectAsDocumented, startHarness, type EngineHarness } from './helpers/engine-harness.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** Small enough that late, outside-window, no-prediction and closing paths all fire often. */
const WINDOW = { beforeMs: 30 * SECOND, afterMs: 2 * HOUR, graceMs: 20 * MINUTE };
const REQUESTS = 2_000;

function toEngineInput(input: RefInput): object {
  if (input.kind === 'feedback') return input.value;
  return { ...input.value, requestTimestamp: input.value.timestamp };
}

type Projected = Record<string, unknown>;

/** The fields compared per topic, from the reference's output. */
function projectReference(out: RefOutput): { topic: string; row: Projected } {
  switch (out.topic) {
    case 'samples':
      return {
        topic: 'samples',
        row: {
          requestId: out.requestId,
          category: out.category,
          label: out.label,
          labelSource: out.labelSource,
          revision: out.revision,
          predictedLabel: out.predictedLabel,
          modelVersion: out.modelVersion,
          requestTimestamp: out.requestTimestamp,
          feedbackTimestamp: out.feedbackTimestamp,
          features: out.features,
          attributes: protectAsDocumented(out.attributes),
        },
      };
    case 'unmatched':
      return { topic: 'unmatched', row: { requestId: out.requestId, closedAt: out.closedAt } };
    case 'orphans':
      return {
        topic: 'orphans',
        row: {
          requestId: out.requestId,
          reason: out.reason,
          feedbackTimestamp: out.feedbackTimestamp,
          ...(out.reason === 'no-prediction' ? { closedAt: out.closedAt } : {}),
        },
      };
    case 'late':
      return {
        topic: 'late',
        row: { kind: out.kind, requestId: out.requestId, recordTimestamp: out.recordTimestamp, streamTime: out.streamTime, closeTime: out.closeTime },
      };
    case 'review':
      return { topic: 'review', row: { requestId: out.requestId } };
    case 'dead-letters':
      return { topic: 'dead-letters', row: { requestId: out.requestId, reasonCode: out.reasonCode } };
  }
}

interface Sample {
  requestId: string;
  category: string;
  label: string;
  labelSource: string;
  revision: number;
  predictedLabel: string;
  modelVersion: string;
  requestTimestamp: number;
  feedbackTimestamp: number | null;
  features: Record<string, number>;
  attributes: Record<string, string>;
  origin: string;
}

/** The same fields from the engine's decoded outputs. */
async function projectEngine(h: EngineHarness): Promise<Record<string, Projected[]>> {
  const samples = (await h.records('samples')).map((r) => {
    const s = r.value as Sample;
    expect(r.key).toBe(s.requestId);
    expect(s.origin).toBe('online');
    return {
      requestId: s.requestId,
      category: s.category,
      label: s.label,
      labelSource: s.labelSource,
      revision: s.revision,
      predictedLabel: s.predictedLabel,
      modelVersion: s.modelVersion,
      requestTimestamp: s.requestTimestamp,
      feedbackTimestamp: s.feedbackTimestamp,
      features: s.features,
      attributes: s.attributes,
    };
  });
  const unmatched = (await h.outputs('unmatched')).map((v) => {
    const u = v as { prediction: { requestId: string }; closedAt: number };
    return { requestId: u.prediction.requestId, closedAt: u.closedAt };
  });
  const orphans = (await h.outputs('orphans')).map((v) => {
    const o = v as { feedback: { requestId: string; timestamp: number }; reason: string; closedAt: number };
    return {
      requestId: o.feedback.requestId,
      reason: o.reason,
      feedbackTimestamp: o.feedback.timestamp,
      ...(o.reason === 'no-prediction' ? { closedAt: o.closedAt } : {}),
    };
  });
  const late = (await h.outputs('late')).map((v) => {
    const l = v as { kind: string; requestId: string; recordTimestamp: number; streamTime: number; closeTime: number };
    return { kind: l.kind, requestId: l.requestId, recordTimestamp: l.recordTimestamp, streamTime: l.streamTime, closeTime: l.closeTime };
  });
  const review = (await h.outputs('review')).map((v) => ({ requestId: (v as { prediction: { requestId: string } }).prediction.requestId }));
  const deadLetters = (await h.records('dead-letters')).map((r) => ({
    requestId: r.key,
    reasonCode: r.headers['sampleloop.dlq.reason.code'],
  }));
  return { samples, unmatched, orphans, late, review, 'dead-letters': deadLetters };
}

function groupReference(outputs: RefOutput[]): Record<string, Projected[]> {
  const byTopic: Record<string, Projected[]> = { samples: [], unmatched: [], orphans: [], late: [], review: [], 'dead-letters': [] };
  for (const out of outputs) {
    const { topic, row } = projectReference(out);
    (byTopic[topic] as Projected[]).push(row);
  }
  return byTopic;
}

/** Index of the first differing row, for a readable failure message. */
function firstDifference(a: Projected[], b: Projected[]): string {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) {
      return `row ${i} of ${a.length} (engine) / ${b.length} (reference):\n  engine:    ${JSON.stringify(a[i])}\n  reference: ${JSON.stringify(b[i])}`;
    }
  }
  return 'none';
}

interface Scenario {
  seed: number;
  duplicates: 'latest' | 'first';
  onTimeout: 'unmatched' | 'confirm';
}

const SCENARIOS: Scenario[] = [
  { seed: 11, duplicates: 'latest', onTimeout: 'unmatched' },
  { seed: 22, duplicates: 'latest', onTimeout: 'confirm' },
  { seed: 33, duplicates: 'first', onTimeout: 'unmatched' },
  { seed: 44, duplicates: 'first', onTimeout: 'confirm' },
  { seed: 55, duplicates: 'latest', onTimeout: 'unmatched' },
  { seed: 66, duplicates: 'first', onTimeout: 'confirm' },
];

/** fraud and intent use configured classes; churn and sentiment fall back to score keys. */
const CONFIGURED_CLASSES: Record<string, string[]> = { fraud: ['fraud', 'legit'], intent: ['billing', 'support', 'sales', 'cancel'] };

describe('join: engine vs reference model (randomized, arrival order)', () => {
  let harness: EngineHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  for (const scenario of SCENARIOS) {
    it(`seed ${scenario.seed}, duplicates=${scenario.duplicates}, onTimeout=${scenario.onTimeout}`, async () => {
      const inputs = generateTraffic({
        seed: scenario.seed,
        requests: REQUESTS,
        joinWindow: WINDOW,
        feedbackDelayMs: { min: 100, max: 3 * HOUR },
        lateRate: 0.03,
        outsideWindowRate: 0.03,
        duplicatePredictionRate: 0.02,
        duplicateFeedbackRate: 0.1,
        correctionRate: 0.08,
        feedbackBeforeRate: 0.05,
        correctOnlyRate: 0.25,
        outOfOrderMs: 5 * MINUTE,
        categories: [...DEFAULT_TRAFFIC_CATEGORIES],
      });
      // A few invalid feedback records (neither field) in the stream: dead letters that must not move stream time.
      const withInvalid: RefInput[] = [];
      inputs.forEach((input, i) => {
        withInvalid.push(input);
        if (i % 397 === 0) {
          withInvalid.push({ kind: 'feedback', value: { requestId: `bad-${i}`, timestamp: input.value.timestamp + 365 * 24 * HOUR, actualLabel: null, correct: null } });
        }
      });

      const refConfig: RefJoinConfig = { ...WINDOW, duplicates: scenario.duplicates, onTimeout: scenario.onTimeout, classes: CONFIGURED_CLASSES };
      const expected = runReference(withInvalid, refConfig, { endOfInput: 'flush' });

      const categories = Object.fromEntries(Object.entries(CONFIGURED_CLASSES).map(([name, classes]) => [name, { classes }]));
      harness = await startHarness({ config: { join: { ...WINDOW, duplicates: scenario.duplicates, onTimeout: scenario.onTimeout }, categories } });
      for (const input of withInvalid) harness.send(input.kind, toEngineInput(input));
      harness.flush();

      const actual = await projectEngine(harness);
      const wanted = groupReference(expected.outputs);
      for (const topic of Object.keys(wanted)) {
        const a = actual[topic] as Projected[];
        const b = wanted[topic] as Projected[];
        expect(a, `topic ${topic}: first difference at ${firstDifference(a, b)}`).toEqual(b);
      }

      const metrics = harness.app.metrics;
      expect(await metrics.total('events', { event: 'superseded-feedback' })).toBe(expected.counters['superseded-feedback']);
      expect(await metrics.total('events', { event: 'duplicate-feedback' })).toBe(expected.counters['duplicate-feedback']);

      // The run must actually exercise the rare paths, or the comparison proves little.
      const count = (topic: string, pick: (row: Projected) => boolean = () => true): number => (wanted[topic] as Projected[]).filter(pick).length;
      expect(withInvalid.length).toBeGreaterThan(2 * REQUESTS);
      expect(count('late', (r) => r.kind === 'PREDICTION')).toBeGreaterThan(5);
      expect(count('late', (r) => r.kind === 'FEEDBACK')).toBeGreaterThan(5);
      expect(count('orphans', (r) => r.reason === 'outside-window')).toBeGreaterThan(5);
      expect(count('orphans', (r) => r.reason === 'no-prediction')).toBeGreaterThan(5);
      expect(count('review')).toBeGreaterThan(5);
      expect(count('dead-letters', (r) => r.reasonCode === 'duplicate-prediction')).toBeGreaterThan(5);
      expect(count('samples', (r) => (r.revision as number) > 0) + (expected.counters['duplicate-feedback'] ?? 0)).toBeGreaterThan(5);
      if (scenario.onTimeout === 'unmatched') expect(count('unmatched')).toBeGreaterThan(50);
      else expect(count('samples', (r) => r.labelSource === 'DEFAULT')).toBeGreaterThan(50);
    });
  }
});
