/**
 * Two input rules that online and replay must apply alike (issue 11): a label outside the category's
 * configured classes goes to `review` (reason `unknown-label`), never to `samples`; an event time more
 * than `join.maxFutureMs` ahead of the wall clock is a dead letter (`future-timestamp`), never a
 * stream-time jump.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type ConfigInput } from '../config/config.js';
import { runReplay } from '../replay/topology.js';
import { HARNESS_PRIVACY_KEY, startHarness, type EngineHarness } from './helpers/engine-harness.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const YEAR = 365 * 24 * HOUR;
/** Weeks before the real wall clock, which replay's `join.maxFutureMs` bound is measured against. */
const T0 = Math.floor((Date.now() - 30 * 24 * HOUR) / HOUR) * HOUR;

const CONFIG: ConfigInput = {
  join: { idleAdvance: false },
  categories: { triage: { classes: ['class_0', 'class_1', 'class_2'] } },
};

function prediction(requestId: string, timestamp: number, category = 'triage'): Record<string, unknown> {
  return {
    requestId,
    category,
    features: { x: 1.5 },
    attributes: {},
    predictedLabel: 'class_0',
    scores: { class_0: 0.6, class_1: 0.3, class_2: 0.1 },
    modelVersion: 'v1',
    requestTimestamp: timestamp,
    timestamp,
  };
}

function feedback(requestId: string, timestamp: number, actualLabel: string): Record<string, unknown> {
  return { requestId, timestamp, source: 'core-banking', actualLabel, correct: null };
}

/** The same traffic for both runs, in arrival order. */
function traffic(): Array<{ kind: 'prediction' | 'feedback'; value: Record<string, unknown> }> {
  return [
    { kind: 'prediction', value: prediction('typo', T0) },
    { kind: 'prediction', value: prediction('fixed-later', T0 + MINUTE) },
    { kind: 'prediction', value: prediction('free', T0 + 2 * MINUTE, 'open') },
    { kind: 'prediction', value: prediction('ok', T0 + 3 * MINUTE) },
    // Microseconds and a clock ten years ahead: without the bound either would close every window.
    { kind: 'prediction', value: prediction('micros', (T0 + 4 * MINUTE) * 1000) },
    { kind: 'feedback', value: feedback('typo', T0 + 10 * MINUTE, 'class_9') },
    { kind: 'feedback', value: feedback('fixed-later', T0 + 11 * MINUTE, 'class_1') },
    { kind: 'feedback', value: feedback('fixed-later', T0 + 12 * MINUTE, 'Class_2') },
    { kind: 'feedback', value: feedback('free', T0 + 13 * MINUTE, 'class_9') },
    { kind: 'feedback', value: feedback('future', Date.now() + 10 * YEAR, 'class_1') },
    { kind: 'feedback', value: feedback('ok', T0 + 14 * MINUTE, 'class_2') },
  ];
}

interface Outcome {
  samples: Array<[string, string, string, number]>;
  review: Array<[string, string, string | null]>;
  unmatched: string[];
  late: string[];
  deadLetters: Array<[string, string]>;
}

function sampleRow(s: Record<string, unknown>): [string, string, string, number] {
  return [s.requestId as string, s.label as string, s.labelSource as string, s.revision as number];
}

function reviewRow(r: Record<string, unknown>): [string, string, string | null] {
  return [(r.prediction as { requestId: string }).requestId, r.reason as string, (r.feedback as { actualLabel: string | null }).actualLabel];
}

const EXPECTED: Outcome = {
  samples: [
    ['fixed-later', 'class_1', 'CORRECTED', 0],
    ['free', 'class_9', 'CORRECTED', 0],
    ['ok', 'class_2', 'CORRECTED', 0],
  ],
  review: [
    ['typo', 'unknown-label', 'class_9'],
    ['fixed-later', 'unknown-label', 'Class_2'],
  ],
  unmatched: ['typo'],
  late: [],
  deadLetters: [
    ['future', 'future-timestamp'],
    ['micros', 'future-timestamp'],
  ],
};

let harness: EngineHarness | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('labels outside the classes and event times far ahead, online and in replay', () => {
  it('online: unknown-label feedback goes to review, never to samples; future event times are dead letters', async () => {
    harness = await startHarness({ config: CONFIG, wallClock: Date.now() });
    for (const r of traffic()) harness.send(r.kind, r.value);
    harness.flush();
    const t = harness.config.topics;
    const outcome: Outcome = {
      samples: (await harness.outputs(t.samples)).map((s) => sampleRow(s as Record<string, unknown>)),
      review: (await harness.outputs(t.review)).map((r) => reviewRow(r as Record<string, unknown>)),
      unmatched: (await harness.outputs(t.unmatched)).map((u) => (u as { prediction: { requestId: string } }).prediction.requestId),
      late: (await harness.outputs(t.late)).map((l) => (l as { requestId: string }).requestId),
      deadLetters: (await harness.records(t.deadLetters)).map((d): [string, string] => [d.key as string, String(d.headers['sampleloop.dlq.reason.code'])]).sort(),
    };
    expect(outcome).toEqual(EXPECTED);
    const dead = await harness.records(t.deadLetters);
    // In arrival order online: the prediction in microseconds, then the feedback ten years ahead.
    expect(dead.map((d) => [d.key, d.headers['sampleloop.dlq.stage']])).toEqual([['micros', 'decode-predictions'], ['future', 'decode-feedback']]);
    expect(dead[0]?.headers['sampleloop.dlq.reason']).toMatch(/ahead of the wall clock; the limit is join.maxFutureMs = 3600000 ms/);
  });

  it('replay of the same traffic gives the same samples, review records and dead letters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-labels-replay-'));
    dirs.push(dir);
    const keyFile = join(dir, 'privacy.key');
    writeFileSync(keyFile, `${HARNESS_PRIVACY_KEY.toString('hex')}\n`, { mode: 0o600 });
    const config = parseConfig({ ...CONFIG, dataDir: join(dir, 'data'), log: { level: 'silent' }, privacy: { keyFile, keyEnv: 'SAMPLELOOP_LABELS_UNUSED_KEY' } });
    const gateway = join(dir, 'gateway.jsonl');
    const business = join(dir, 'business.jsonl');
    const lines = (kind: 'prediction' | 'feedback'): string =>
      traffic()
        .filter((r) => r.kind === kind)
        .map((r) => JSON.stringify(r.value))
        .join('\n');
    writeFileSync(gateway, lines('prediction'));
    writeFileSync(business, lines('feedback'));
    const out = join(dir, 'out.jsonl');
    await runReplay({ config, gateway: [gateway], business: [business], out: `file:${out}` });
    const read = (path: string): Array<Record<string, unknown>> =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const base = out.replace(/\.jsonl$/, '');
    const samples = read(out).map(sampleRow).sort((a, b) => a[0].localeCompare(b[0]));
    const outcome: Outcome = {
      samples,
      review: read(`${base}.review.jsonl`).map(reviewRow),
      unmatched: read(`${base}.unmatched.jsonl`).map((u) => (u.prediction as { requestId: string }).requestId),
      late: read(`${base}.late.jsonl`).map((l) => l.requestId as string),
      // Replay feeds records in event-time order, so the far-ahead ones come last there.
      deadLetters: read(`${base}.dead-letters.jsonl`).map((d): [string, string] => [d.key as string, d.reasonCode as string]).sort(),
    };
    expect(outcome).toEqual(EXPECTED);
  });
});
