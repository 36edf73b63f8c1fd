/**
 * One bad record must not stall or skew a backlog (issue 11, part 1), on the embedded log: a record
 * that cannot be decoded, or whose event time is invalid or too far ahead, takes no part in the
 * ordering of a task's input and never moves stream time; it is a dead letter where it stands, and
 * everything around it is processed as if it were absent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { directAccess, type DisplayRecord } from '../access/embedded.js';
import type { OutputRecord } from '../engine/record.js';
import { generateTraffic, DEFAULT_TRAFFIC_CATEGORIES } from './reference/traffic.js';
import type { RefInput } from './reference/join-model.js';
import { HARNESS_START_WALL_CLOCK, startHarness, type EngineHarness } from './helpers/engine-harness.js';
import { mulberry32 } from './reference/traffic.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;

let harness: EngineHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

interface Expected {
  label: string;
  labelSource: string;
  revision: number;
}

describe('the issue 11 reproducer: a backlog produced before `run` with one line that is not JSON', () => {
  it('20,000 requests weeks in the past, `not json at all` at line 101 of the feedback file: every sample exact, nothing late', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    const now = harness.wallClock();
    const t0 = now - 5 * 7 * DAY;
    const random = mulberry32(11);
    const predictions: string[] = [];
    const feedback: Array<{ timestamp: number; line: string }> = [];
    const expected = new Map<string, Expected>();
    const withoutFeedback = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const requestId = `req-${String(i).padStart(5, '0')}`;
      const timestamp = t0 + i * 90 * SECOND;
      const predictedLabel = random() < 0.6 ? 'approve' : 'reject';
      predictions.push(
        JSON.stringify({
          requestId,
          category: 'loan',
          features: { income: Math.round(random() * 10_000), age: 20 + Math.floor(random() * 50) },
          attributes: {},
          predictedLabel,
          scores: predictedLabel === 'approve' ? { approve: 0.7, reject: 0.3 } : { approve: 0.3, reject: 0.7 },
          modelVersion: 'v1',
          requestTimestamp: timestamp,
          timestamp,
        }),
      );
      if (random() < 0.12) {
        withoutFeedback.add(requestId);
        continue;
      }
      const first = random() < 0.8 ? predictedLabel : predictedLabel === 'approve' ? 'reject' : 'approve';
      const firstAt = timestamp + Math.floor(random() * 3 * HOUR);
      feedback.push({ timestamp: firstAt, line: JSON.stringify({ requestId, timestamp: firstAt, source: 'core-banking', actualLabel: first, correct: null }) });
      let last = first;
      let revision = 0;
      if (random() < 0.03) {
        // A correction a few hours later: it must win (the window is still open when it is read).
        last = first === 'approve' ? 'reject' : 'approve';
        const correctedAt = firstAt + HOUR + Math.floor(random() * 4 * HOUR);
        feedback.push({ timestamp: correctedAt, line: JSON.stringify({ requestId, timestamp: correctedAt, source: 'back-office', actualLabel: last, correct: null }) });
        revision = 1;
      }
      expected.set(requestId, { label: last, labelSource: last === predictedLabel ? 'CONFIRMED' : 'CORRECTED', revision });
    }
    feedback.sort((a, b) => a.timestamp - b.timestamp);
    const feedbackLines = feedback.map((f) => f.line);
    feedbackLines.splice(100, 0, 'not json at all');

    // `produce` into the fresh data dir before anything is processed, as the CLI does.
    const access = directAccess(harness.app.log, harness.app.registry, () => now);
    const topics = harness.config.topics;
    await access.produce(topics.predictions, predictions.join('\n'));
    await access.produce(topics.feedback, feedbackLines.join('\n'));
    harness.app.runtime.runUntilIdle();

    expect(await harness.records(topics.late)).toEqual([]);
    expect(await harness.records(topics.orphans)).toEqual([]);
    const dead = await harness.records(topics.deadLetters);
    expect(dead.map((d) => [d.headers['sampleloop.dlq.reason.code'], d.headers['sampleloop.dlq.source.topic'], d.headers['sampleloop.dlq.source.offset']])).toEqual([['undecodable', topics.feedback, '100']]);
    expect(dead[0]?.headers['sampleloop.dlq.reason']).toMatch(/^not a JSON object/);

    harness.flush();
    const samples = new Map<string, Expected>();
    for (const r of await harness.records(topics.samples)) {
      const s = r.value as { requestId: string; label: string; labelSource: string; revision: number };
      samples.set(s.requestId, { label: s.label, labelSource: s.labelSource, revision: s.revision });
    }
    expect(samples.size).toBe(expected.size);
    const wrong = [...expected].filter(([id, e]) => JSON.stringify(samples.get(id)) !== JSON.stringify(e));
    expect(wrong.slice(0, 5)).toEqual([]);
    const unmatched = (await harness.outputs(topics.unmatched)).map((u) => (u as { prediction: { requestId: string } }).prediction.requestId);
    expect(new Set(unmatched)).toEqual(withoutFeedback);
    expect(unmatched).toHaveLength(withoutFeedback.size);
  }, 180_000);
});

type BadKind = 'not-json' | 'json-array' | 'no-timestamp' | 'string-timestamp' | 'far-future' | 'microseconds';
const BAD_KINDS: readonly BadKind[] = ['not-json', 'json-array', 'no-timestamp', 'string-timestamp', 'far-future', 'microseconds'];

const EXPECTED_REASON: Record<BadKind, string> = {
  'not-json': 'undecodable',
  'json-array': 'undecodable',
  'no-timestamp': 'missing-field',
  'string-timestamp': 'wrong-type',
  'far-future': 'future-timestamp',
  'microseconds': 'future-timestamp',
};

/**
 * A bad record as producers send them: malformed or without a valid event time, stamped with the
 * wall clock (a producer that sets no timestamp), or a valid record whose event time is years ahead
 * (in microseconds, or a wrong clock), stamped with that time.
 */
function badRecord(kind: BadKind, topic: string, key: string, wallClock: number, template: RefInput): OutputRecord {
  const value = { ...template.value, requestId: key } as Record<string, unknown>;
  if (template.kind === 'prediction') value.requestTimestamp = value.timestamp;
  let bytes: string;
  let timestamp = wallClock;
  switch (kind) {
    case 'not-json':
      bytes = 'not json at all';
      break;
    case 'json-array':
      bytes = JSON.stringify([value]);
      break;
    case 'no-timestamp':
      delete value.timestamp;
      bytes = JSON.stringify(value);
      break;
    case 'string-timestamp':
      bytes = JSON.stringify({ ...value, timestamp: new Date(value.timestamp as number).toISOString() });
      break;
    case 'far-future':
      timestamp = wallClock + 10 * YEAR;
      bytes = JSON.stringify({ ...value, timestamp });
      break;
    case 'microseconds':
      timestamp = (value.timestamp as number) * 1000;
      bytes = JSON.stringify({ ...value, timestamp });
      break;
  }
  return { topic, key: Buffer.from(key, 'utf8'), value: Buffer.from(bytes, 'utf8'), timestamp, headers: {} };
}

interface RunResult {
  /** Per output topic: every record (key and decoded value), in log order. */
  outputs: Record<'samples' | 'unmatched' | 'orphans' | 'late' | 'review', string[]>;
  /** Dead letters: key and reason code, in log order. */
  deadLetters: Array<[string | null, string]>;
}

const WINDOW = { beforeMs: 30 * SECOND, afterMs: 2 * HOUR, graceMs: 20 * MINUTE };

async function runBacklog(records: { predictions: OutputRecord[]; feedback: OutputRecord[] }): Promise<RunResult> {
  const h = await startHarness({
    config: {
      join: { ...WINDOW, idleAdvance: false },
      categories: { fraud: { classes: ['fraud', 'legit'] }, intent: { classes: ['billing', 'support', 'sales', 'cancel'] } },
      embedded: { partitions: 2 },
    },
  });
  try {
    // Everything is in the log before the engine reads any of it.
    h.app.log.append(records.predictions);
    h.app.log.append(records.feedback);
    h.app.runtime.runUntilIdle();
    h.flush();
    const line = (r: DisplayRecord): string => `${r.key} ${JSON.stringify(r.value)}`;
    const t = h.config.topics;
    return {
      outputs: {
        samples: (await h.records(t.samples)).map(line),
        unmatched: (await h.records(t.unmatched)).map(line),
        orphans: (await h.records(t.orphans)).map(line),
        late: (await h.records(t.late)).map(line),
        review: (await h.records(t.review)).map(line),
      },
      deadLetters: (await h.records(t.deadLetters)).map((r) => [r.key, String(r.headers['sampleloop.dlq.reason.code'])]),
    };
  } finally {
    await h.close();
  }
}

function toRecord(input: RefInput, topic: string): OutputRecord {
  const value = input.kind === 'prediction' ? { ...input.value, requestTimestamp: input.value.timestamp } : input.value;
  return { topic, key: Buffer.from(input.value.requestId, 'utf8'), value: Buffer.from(JSON.stringify(value), 'utf8'), timestamp: input.value.timestamp, headers: {} };
}

describe('k bad records at random places in a pre-produced backlog', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: samples, unmatched, orphans, late and review identical to the clean run, record for record`, async () => {
      const random = mulberry32(1000 + seed);
      const traffic = generateTraffic({
        seed,
        requests: 1_500,
        joinWindow: WINDOW,
        feedbackDelayMs: { min: 100, max: 90 * MINUTE },
        correctionRate: 0.08,
        lateRate: 0.02,
        outsideWindowRate: 0.03,
        duplicatePredictionRate: 0.02,
        categories: [...DEFAULT_TRAFFIC_CATEGORIES],
      });
      const clean = {
        predictions: traffic.filter((r) => r.kind === 'prediction').map((r) => toRecord(r, 'predictions')),
        feedback: traffic.filter((r) => r.kind === 'feedback').map((r) => toRecord(r, 'feedback')),
      };
      const expected = await runBacklog(clean);
      expect(expected.outputs.samples.length).toBeGreaterThan(500);
      expect(expected.outputs.unmatched.length).toBeGreaterThan(0);
      expect(expected.outputs.orphans.length).toBeGreaterThan(0);

      // The wall clock of the harness: years after the traffic, like a backlog produced long after.
      const wallClock = HARNESS_START_WALL_CLOCK;
      const dirty = { predictions: [...clean.predictions], feedback: [...clean.feedback] };
      const k = 6 + Math.floor(random() * 10);
      const inserted: Array<[string, string]> = [];
      for (let i = 0; i < k; i++) {
        const kind = i < BAD_KINDS.length ? (BAD_KINDS[i] as BadKind) : (BAD_KINDS[Math.floor(random() * BAD_KINDS.length)] as BadKind);
        const side = random() < 0.5 ? 'predictions' : 'feedback';
        const template = traffic.find((r) => r.kind === (side === 'predictions' ? 'prediction' : 'feedback')) as RefInput;
        const key = `bad-${seed}-${i}`;
        const list = dirty[side];
        // Anywhere, including the very first and the very last place.
        const at = i === 0 ? 0 : i === 1 ? list.length : Math.floor(random() * (list.length + 1));
        list.splice(at, 0, badRecord(kind, side, key, wallClock, template));
        inserted.push([key, EXPECTED_REASON[kind]]);
      }
      const actual = await runBacklog(dirty);

      expect(actual.outputs.samples).toEqual(expected.outputs.samples);
      expect(actual.outputs.unmatched).toEqual(expected.outputs.unmatched);
      expect(actual.outputs.orphans).toEqual(expected.outputs.orphans);
      expect(actual.outputs.late).toEqual(expected.outputs.late);
      expect(actual.outputs.review).toEqual(expected.outputs.review);
      // Each bad record is a dead letter with its reason; the clean run's dead letters are unchanged.
      const bad = actual.deadLetters.filter(([key]) => key?.startsWith('bad-'));
      expect(new Map(bad)).toEqual(new Map(inserted));
      expect(bad).toHaveLength(inserted.length);
      expect(actual.deadLetters.filter(([key]) => !key?.startsWith('bad-'))).toEqual(expected.deadLetters);
    }, 120_000);
  }
});
