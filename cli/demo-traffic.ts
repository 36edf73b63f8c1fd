/**
 * The demo's simulated traffic: the datasets split into a fixed test set, a labeled seed and a
 * traffic pool; requests planned from the pool; the business's feedback for each, delayed, missing,
 * partial or corrected; and the broken records real producers also send. Seeded, so a seed gives the
 * same traffic every run.
 */
import type { SampleloopConfig } from '../config/config.js';
import type { OutputRecord } from '../engine/record.js';
import type { Dataset, DatasetName } from '../models/datasets/index.js';
import { holdoutPosition } from '../models/holdout.js';
import type { TrainingRow } from '../models/trainer-job.js';
import type { Feedback } from '../schemas/types.js';


export const BASE_TIME = Date.UTC(2026, 0, 5, 9, 0, 0);
/** One request every 250 ms of simulated time. */
export const REQUEST_INTERVAL_MS = 250;
/** The engine is driven in steps of this much simulated time (requests of a step are predicted at its end). */
export const SLICE_MS = 5_000;
/** Share of each dataset's rows in the fixed test set (by a hash of the row index). */
export const TEST_FRACTION = 0.25;
/** Share of the remaining rows that are labeled up front (the seed the first models are trained on). */
export const SEED_FRACTION = 0.05;
export const FEEDBACK_MISSING = 0.1;
export const FEEDBACK_MIN_DELAY_MS = 500;
export const FEEDBACK_MAX_DELAY_MS = 20_000;
/** Probability that feedback carries the label (else only correct: true/false), per category. */
export const LABELED_FEEDBACK: Record<string, number> = { digits: 0.75, 'breast-cancer': 0.3 };
/** Feedback first gives a wrong label, and an audit corrects it a few seconds later. */
export const MISLABEL_THEN_CORRECTION = 0.04;
export const SEED_TRAINER = 'demo-seed';
export const DATASETS: readonly DatasetName[] = ['digits', 'breast-cancer'];


export interface SplitRow {
  index: number;
  features: number[];
  label: string;
}

export interface DatasetSplit {
  dataset: Dataset;
  test: SplitRow[];
  seed: SplitRow[];
  pool: SplitRow[];
  /** The test set as the ONNX evaluator reads it. */
  testRows: TrainingRow[];
}

/** Splits by a hash of `<dataset>/<row index>`: the same rows every run, whatever the seed. */
export function splitDataset(dataset: Dataset): DatasetSplit {
  const test: SplitRow[] = [];
  const seed: SplitRow[] = [];
  const pool: SplitRow[] = [];
  const seedBelow = TEST_FRACTION + (1 - TEST_FRACTION) * SEED_FRACTION;
  dataset.rows.forEach((r, index) => {
    const u = holdoutPosition(`${dataset.name}/${index}`);
    const row: SplitRow = { index, features: r.features, label: r.label };
    if (u < TEST_FRACTION) test.push(row);
    else if (u < seedBelow) seed.push(row);
    else pool.push(row);
  });
  const testRows = test.map((r) => ({ requestId: `test-${r.index}`, features: featureMap(dataset, r.features), vector: r.features, label: r.label }));
  return { dataset, test, seed, pool, testRows };
}

function featureMap(dataset: Dataset, values: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  dataset.featureNames.forEach((name, j) => (out[name] = values[j] as number));
  return out;
}


// ---------------------------------------------------------------------------------------------
// Traffic

/** mulberry32: small, seeded, good enough for simulated traffic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type FeedbackPlan =
  | { kind: 'missing' }
  | { kind: 'label' | 'correct'; delayMs: number }
  | { kind: 'mislabel-then-correction'; delayMs: number; wrongLabel: string; correctionDelayMs: number };

export interface PlannedRequest {
  requestId: string;
  category: string;
  row: SplitRow;
  features: Record<string, number>;
  timestamp: number;
  attributes: Record<string, string>;
  feedback: FeedbackPlan;
}

/** Every pool row once (or the first `requests` of them), shuffled; feedback decided up front, except correct/incorrect, which depends on the live prediction. */
export function planTraffic(data: readonly DatasetSplit[], requests: number | undefined, seed: number): PlannedRequest[] {
  const random = prng(seed);
  const entries = data.flatMap((d) => d.pool.map((row) => ({ d, row })));
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [entries[i], entries[j]] = [entries[j] as (typeof entries)[number], entries[i] as (typeof entries)[number]];
  }
  const chosen = requests === undefined ? entries : entries.slice(0, requests);
  return chosen.map(({ d, row }, i) => {
    const category = d.dataset.name;
    const n = String(i).padStart(5, '0');
    const draws = [random(), random(), random(), random(), random(), random()] as const;
    const delayMs = FEEDBACK_MIN_DELAY_MS + Math.floor(draws[1] * (FEEDBACK_MAX_DELAY_MS - FEEDBACK_MIN_DELAY_MS));
    let feedback: FeedbackPlan;
    if (draws[0] < FEEDBACK_MISSING) feedback = { kind: 'missing' };
    else if (draws[2] < MISLABEL_THEN_CORRECTION) {
      const others = d.dataset.classes.filter((c) => c !== row.label);
      feedback = { kind: 'mislabel-then-correction', delayMs, wrongLabel: others[Math.floor(draws[3] * others.length)] as string, correctionDelayMs: 3_000 + Math.floor(draws[4] * 7_000) };
    } else feedback = { kind: draws[5] < (LABELED_FEEDBACK[category] ?? 0.5) ? 'label' : 'correct', delayMs };
    return {
      requestId: `req-${seed}-${n}`,
      category,
      row,
      features: featureMap(d.dataset, row.features),
      timestamp: BASE_TIME + i * REQUEST_INTERVAL_MS,
      attributes: { name: `Customer ${n}`, phone: `+44 7700 9${n}`, idNumber: `ID9${String(i * 7919).padStart(7, '0')}`, channel: i % 2 ? 'mobile' : 'branch' },
      feedback,
    };
  });
}

/** The business's feedback for a request, once its prediction is known. */
export function feedbackFor(request: PlannedRequest, predictedLabel: string): Feedback[] {
  const plan = request.feedback;
  const { requestId, timestamp } = request;
  const truth = request.row.label;
  switch (plan.kind) {
    case 'missing':
      return [];
    case 'label':
      return [{ requestId, timestamp: timestamp + plan.delayMs, source: 'back-office', actualLabel: truth, correct: null }];
    case 'correct':
      return [{ requestId, timestamp: timestamp + plan.delayMs, source: 'back-office', actualLabel: null, correct: predictedLabel === truth }];
    case 'mislabel-then-correction':
      return [
        { requestId, timestamp: timestamp + plan.delayMs, source: 'back-office', actualLabel: plan.wrongLabel, correct: null },
        { requestId, timestamp: timestamp + plan.delayMs + plan.correctionDelayMs, source: 'audit', actualLabel: truth, correct: null },
      ];
  }
}

/** What real producers also send: a truncated request, a request of an unknown category, feedback with neither label nor verdict. */
export function brokenRecords(config: SampleloopConfig, example: PlannedRequest): OutputRecord[] {
  const at = example.timestamp;
  const truncated = JSON.stringify({ requestId: 'req-broken-1', category: example.category, attributes: example.attributes, features: example.features, timestamp: at }).slice(0, 120);
  const unknown = { requestId: 'req-broken-2', category: 'loans', attributes: example.attributes, features: { amount: 1200 }, timestamp: at };
  const empty = { requestId: example.requestId, timestamp: at + 1, source: 'back-office' };
  return [
    { topic: config.topics.requests, key: Buffer.from('req-broken-1'), value: Buffer.from(truncated), timestamp: at, headers: {} },
    { topic: config.topics.requests, key: Buffer.from('req-broken-2'), value: Buffer.from(JSON.stringify(unknown)), timestamp: at, headers: {} },
    { topic: config.topics.feedback, key: Buffer.from(example.requestId), value: Buffer.from(JSON.stringify(empty)), timestamp: at + 1, headers: {} },
  ];
}

// ---------------------------------------------------------------------------------------------
// Configuration

