/**
 * Seeded generator of realistic prediction/feedback interleavings for the differential join test.
 *
 * Every request gets a slot on a clock that moves forward by a random gap; records get an event
 * timestamp and an arrival time, and the result is the records sorted by arrival (ties keep
 * generation order). Arrival lags event time by a random amount, so timestamps are out of order.
 * Rare paths (late records, feedback outside the window...) are placed relative to the join window
 * (`joinWindow`, the doc's defaults unless given) so they really exercise those rules.
 */
import type { RefFeedback, RefInput, RefPrediction } from './join-model.js';

export const TRAFFIC_BASE_TIME = 1_700_000_000_000;

export interface TrafficCategory {
  name: string;
  classes: string[];
}

export interface TrafficOptions {
  seed: number;
  requests: number;
  categories?: TrafficCategory[];
  featureCount?: number;
  /** Maximum lag of a record's arrival behind its event time. */
  outOfOrderMs?: number;
  missingFeedbackRate?: number;
  duplicateFeedbackRate?: number;
  correctionRate?: number;
  /** Share of feedback carrying only `correct` (no `actualLabel`). */
  correctOnlyRate?: number;
  /** Share of requests with a prediction or feedback arriving after its window and grace closed. */
  lateRate?: number;
  feedbackBeforeRate?: number;
  duplicatePredictionRate?: number;
  feedbackDelayMs?: { min: number; max: number };
  /** Share of feedback carrying a time outside the window (half before, half after). */
  outsideWindowRate?: number;
  /** The join window the rare paths are aimed at; defaults to the doc's `join.*` defaults. */
  joinWindow?: { beforeMs: number; afterMs: number; graceMs: number };
}

export const DEFAULT_TRAFFIC_CATEGORIES: readonly TrafficCategory[] = Object.freeze([
  { name: 'fraud', classes: ['fraud', 'legit'] },
  { name: 'churn', classes: ['stay', 'leave'] },
  { name: 'intent', classes: ['billing', 'support', 'sales', 'cancel'] },
  { name: 'sentiment', classes: ['negative', 'neutral', 'positive'] },
]);

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const MEAN_REQUEST_GAP_MS = 30 * SECOND;

const DEFAULTS = {
  featureCount: 8,
  outOfOrderMs: 20 * SECOND,
  missingFeedbackRate: 0.15,
  duplicateFeedbackRate: 0.05,
  correctionRate: 0.03,
  correctOnlyRate: 0.2,
  lateRate: 0.005,
  feedbackBeforeRate: 0.03,
  duplicatePredictionRate: 0.005,
  feedbackDelayMs: { min: 100, max: 4 * HOUR },
  outsideWindowRate: 0.01,
  joinWindow: { beforeMs: 60_000, afterMs: 86_400_000, graceMs: 3_600_000 },
} as const;

/** mulberry32: a tiny, well-known 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  float(): number {
    return this.next();
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /** Integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError('traffic: cannot pick from an empty list');
    return item;
  }

  /** Standard normal (Box–Muller); 1 - u keeps the logarithm's argument in (0, 1]. */
  gaussian(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  digits(count: number): string {
    let text = '';
    for (let i = 0; i < count; i++) text += String(this.int(0, 9));
    return text;
  }
}

const FIRST_NAMES = [
  'Olivia', 'Liam', 'Emma', 'Noah', 'Amelia', 'Oliver', 'Sofia', 'Mateo', 'Chloe', 'Lucas',
  'Hannah', 'Elias', 'Aisha', 'Kenji', 'Priya', 'Jonas', 'Fatima', 'Diego', 'Ingrid', 'Tomasz',
];
const LAST_NAMES = [
  'Smith', 'García', 'Müller', 'Johnson', 'Nguyen', 'Kowalski', 'Rossi', 'Okafor', 'Tanaka', 'Silva',
  'Dubois', 'Andersson', 'Patel', 'Cohen', 'Brown', 'Novak', 'Haddad', 'Walsh', 'Kim', 'Moreau',
];
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'ES', 'PL', 'SE', 'IN'];
const CHANNELS = ['web', 'app', 'call-center', 'partner-api'];
const MODEL_VERSIONS = ['1.4.0', '1.5.0'];

/** Fictional ranges only: US 555-01xx and UK 07700 900xxx numbers, SSN-shaped ids with a 9xx area. */
function fakeAttributes(rng: Rng): Record<string, string> {
  const phone = rng.chance(0.5)
    ? `+1 555-01${rng.digits(2)}-${rng.digits(4)}`
    : `+44 7700 900${rng.digits(3)}`;
  return {
    name: `${rng.pick(FIRST_NAMES)} ${rng.pick(LAST_NAMES)}`,
    phone,
    idNumber: `9${rng.digits(2)}-${rng.digits(2)}-${rng.digits(4)}`,
    country: rng.pick(COUNTRIES),
    channel: rng.pick(CHANNELS),
  };
}

function fakeFeatures(rng: Rng, count: number): Record<string, number> {
  const features: Record<string, number> = {};
  for (let i = 0; i < count; i++) features[`f${i}`] = rng.gaussian() * (1 + i) + i * 0.5;
  return features;
}

function fakeScores(rng: Rng, classes: readonly string[]): { scores: Record<string, number>; predictedLabel: string } {
  const weights = classes.map(() => Math.exp(rng.gaussian() * 1.5));
  const total = weights.reduce((sum, w) => sum + w, 0);
  const scores: Record<string, number> = {};
  let predictedLabel = classes[0] ?? '';
  let best = -1;
  classes.forEach((label, i) => {
    const score = (weights[i] ?? 0) / total;
    scores[label] = score;
    if (score > best) {
      best = score;
      predictedLabel = label;
    }
  });
  return { scores, predictedLabel };
}

function otherClass(rng: Rng, classes: readonly string[], label: string): string {
  return rng.pick(classes.filter((c) => c !== label));
}

function feedbackContent(
  rng: Rng,
  classes: readonly string[],
  predictedLabel: string,
  correctOnlyRate: number,
): Pick<RefFeedback, 'actualLabel' | 'correct'> {
  if (rng.chance(correctOnlyRate)) return { actualLabel: null, correct: rng.chance(0.6) };
  const actualLabel = rng.chance(0.8) ? predictedLabel : otherClass(rng, classes, predictedLabel);
  const consistent = actualLabel === predictedLabel;
  const r = rng.float();
  // Mostly label only or a consistent flag; a few contradict themselves (actualLabel must win).
  const correct = r < 0.45 ? null : r < 0.97 ? consistent : !consistent;
  return { actualLabel, correct };
}

function checkRate(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new RangeError(`traffic: ${name} must be within [0, 1], got ${value}`);
  }
}

function checkNonNegativeInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`traffic: ${name} must be an integer >= 0, got ${value}`);
  }
}

function resolveOptions(opts: TrafficOptions) {
  const resolved = {
    seed: opts.seed,
    requests: opts.requests,
    categories: opts.categories ?? DEFAULT_TRAFFIC_CATEGORIES,
    featureCount: opts.featureCount ?? DEFAULTS.featureCount,
    outOfOrderMs: opts.outOfOrderMs ?? DEFAULTS.outOfOrderMs,
    missingFeedbackRate: opts.missingFeedbackRate ?? DEFAULTS.missingFeedbackRate,
    duplicateFeedbackRate: opts.duplicateFeedbackRate ?? DEFAULTS.duplicateFeedbackRate,
    correctionRate: opts.correctionRate ?? DEFAULTS.correctionRate,
    correctOnlyRate: opts.correctOnlyRate ?? DEFAULTS.correctOnlyRate,
    lateRate: opts.lateRate ?? DEFAULTS.lateRate,
    feedbackBeforeRate: opts.feedbackBeforeRate ?? DEFAULTS.feedbackBeforeRate,
    duplicatePredictionRate: opts.duplicatePredictionRate ?? DEFAULTS.duplicatePredictionRate,
    feedbackDelayMs: opts.feedbackDelayMs ?? DEFAULTS.feedbackDelayMs,
    outsideWindowRate: opts.outsideWindowRate ?? DEFAULTS.outsideWindowRate,
    joinWindow: opts.joinWindow ?? DEFAULTS.joinWindow,
  };
  checkNonNegativeInteger('seed', resolved.seed);
  checkNonNegativeInteger('requests', resolved.requests);
  checkNonNegativeInteger('featureCount', resolved.featureCount);
  checkNonNegativeInteger('outOfOrderMs', resolved.outOfOrderMs);
  checkNonNegativeInteger('feedbackDelayMs.min', resolved.feedbackDelayMs.min);
  checkNonNegativeInteger('feedbackDelayMs.max', resolved.feedbackDelayMs.max);
  if (resolved.feedbackDelayMs.min > resolved.feedbackDelayMs.max) {
    throw new RangeError('traffic: feedbackDelayMs.min must be <= feedbackDelayMs.max');
  }
  for (const key of ['beforeMs', 'afterMs', 'graceMs'] as const) {
    checkNonNegativeInteger(`joinWindow.${key}`, resolved.joinWindow[key]);
  }
  for (const key of [
    'missingFeedbackRate',
    'duplicateFeedbackRate',
    'correctionRate',
    'correctOnlyRate',
    'lateRate',
    'feedbackBeforeRate',
    'duplicatePredictionRate',
    'outsideWindowRate',
  ] as const) {
    checkRate(key, resolved[key]);
  }
  if (resolved.categories.length === 0) throw new RangeError('traffic: at least one category is needed');
  for (const category of resolved.categories) {
    if (new Set(category.classes).size !== category.classes.length || category.classes.length < 2) {
      throw new RangeError(`traffic: category ${category.name} needs at least two distinct classes`);
    }
  }
  return resolved;
}

interface Scheduled {
  arrival: number;
  input: RefInput;
}

type LatePath = 'none' | 'prediction' | 'feedback';

/** Deterministic per seed: the same options always give the same inputs, in the same arrival order. */
export function generateTraffic(opts: TrafficOptions): RefInput[] {
  const o = resolveOptions(opts);
  const rng = new Rng(o.seed);
  const { beforeMs, afterMs, graceMs } = o.joinWindow;
  const predictionCloseSpan = afterMs + graceMs;
  const feedbackCloseSpan = beforeMs + afterMs + graceMs;
  const jitter = (): number => rng.int(0, o.outOfOrderMs);
  const scheduled: Scheduled[] = [];
  const schedule = (arrival: number, input: RefInput): void => {
    scheduled.push({ arrival, input });
  };

  let slot = TRAFFIC_BASE_TIME;
  for (let i = 0; i < o.requests; i++) {
    slot += rng.int(0, 2 * MEAN_REQUEST_GAP_MS);
    const requestId = `r-${String(i).padStart(6, '0')}`;
    const category = rng.pick(o.categories);
    const { scores, predictedLabel } = fakeScores(rng, category.classes);
    const body: Omit<RefPrediction, 'timestamp'> = {
      requestId,
      category: category.name,
      predictedLabel,
      scores,
      modelVersion: rng.chance(0.7) ? MODEL_VERSIONS[0] ?? '' : MODEL_VERSIONS[1] ?? '',
      features: fakeFeatures(rng, o.featureCount),
      attributes: fakeAttributes(rng),
    };

    const late: LatePath = rng.chance(o.lateRate) ? (rng.chance(0.5) ? 'prediction' : 'feedback') : 'none';
    const hasFeedback = late === 'feedback' || !rng.chance(o.missingFeedbackRate);
    const feedbackFirst = hasFeedback && late === 'none' && rng.chance(o.feedbackBeforeRate);
    const outside =
      hasFeedback && late === 'none' && !feedbackFirst && rng.chance(o.outsideWindowRate)
        ? rng.chance(0.5)
          ? 'before'
          : 'after'
        : null;
    const delay = rng.int(o.feedbackDelayMs.min, o.feedbackDelayMs.max);

    let tp: number;
    let predictionArrival: number;
    let tf: number;
    let feedbackArrival: number;
    if (late === 'prediction') {
      // Arrives now, but its window (and grace) closed a while ago in stream time.
      tp = slot - predictionCloseSpan - rng.int(10 * MINUTE, 3 * HOUR);
      predictionArrival = slot;
      tf = tp + delay;
      feedbackArrival = Math.max(tf, slot) + jitter();
    } else if (late === 'feedback') {
      // An old request: its prediction came early on, its feedback turns up after everything closed.
      tf = slot - feedbackCloseSpan - rng.int(10 * MINUTE, 3 * HOUR);
      tp = tf - delay;
      predictionArrival = tp + jitter();
      feedbackArrival = slot;
    } else {
      tp = slot;
      predictionArrival = tp + jitter();
      if (feedbackFirst) {
        // The prediction is held up in transit; feedback (possibly with a skewed clock) beats it.
        predictionArrival += rng.int(5 * SECOND, 60 * SECOND);
        tf = tp + rng.int(-Math.floor(0.9 * beforeMs), 2 * SECOND);
        feedbackArrival = predictionArrival - rng.int(1, 5 * SECOND);
      } else if (outside === 'before') {
        tf = tp - beforeMs - rng.int(1, 10 * MINUTE);
        feedbackArrival = predictionArrival + rng.int(SECOND, 60 * SECOND);
      } else if (outside === 'after') {
        tf = tp + afterMs + rng.int(1, 2 * HOUR);
        feedbackArrival = tf + jitter();
      } else {
        tf = tp + delay;
        feedbackArrival = tf + jitter();
      }
    }

    schedule(predictionArrival, { kind: 'prediction', value: { ...body, timestamp: tp } });
    if (rng.chance(o.duplicatePredictionRate)) {
      const duplicateTp = rng.chance(0.5) ? tp : tp + rng.int(1, 5 * SECOND);
      schedule(predictionArrival + rng.int(1, 60 * SECOND), {
        kind: 'prediction',
        value: {
          ...body,
          scores: { ...body.scores },
          features: { ...body.features },
          attributes: { ...body.attributes },
          timestamp: duplicateTp,
        },
      });
    }
    if (!hasFeedback) continue;

    const primary = feedbackContent(rng, category.classes, predictedLabel, o.correctOnlyRate);
    schedule(feedbackArrival, { kind: 'feedback', value: { requestId, timestamp: tf, ...primary } });

    if (rng.chance(o.duplicateFeedbackRate)) {
      const variant = rng.int(0, 2);
      const duplicateTf =
        variant === 0 ? tf - rng.int(1, 10 * MINUTE) : variant === 1 ? tf : tf + rng.int(1, 10 * MINUTE);
      schedule(Math.max(duplicateTf, feedbackArrival + 1) + jitter(), {
        kind: 'feedback',
        value: { requestId, timestamp: duplicateTf, ...primary },
      });
    }
    if (rng.chance(o.correctionRate)) {
      const newLabel = otherClass(rng, category.classes, primary.actualLabel ?? predictedLabel);
      const stale = rng.chance(0.25);
      const correctionTf = stale ? tf - rng.int(SECOND, 10 * MINUTE) : tf + rng.int(MINUTE, 6 * HOUR);
      const correctionArrival = stale
        ? feedbackArrival + rng.int(MINUTE, 2 * HOUR)
        : Math.max(correctionTf, feedbackArrival + 1) + jitter();
      schedule(correctionArrival, {
        kind: 'feedback',
        value: {
          requestId,
          timestamp: correctionTf,
          actualLabel: newLabel,
          correct: rng.chance(0.5) ? null : newLabel === predictedLabel,
        },
      });
    }
  }

  // Array.prototype.sort is stable: equal arrivals keep generation order.
  scheduled.sort((a, b) => a.arrival - b.arrival);
  return scheduled.map((s) => s.input);
}
