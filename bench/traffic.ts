/**
 * Seeded, pre-encoded benchmark traffic: N predictions and N feedback shaped like production
 * records (36 features of realistic doubles, 4 attributes incl. name/phone/idNumber, 2 categories),
 * in event-time order, with each feedback 0.1–30 s after its prediction.
 *
 * Encoded bytes live in a few large slabs outside the V8 heap and are addressed by event index,
 * so the benchmark's heap figures are the engine's, not the input's.
 */
import { encodeFramed } from '../schemas/codec.js';
import type { Feedback, Prediction } from '../schemas/types.js';

export type InputFormat = 'json' | 'avro';
export type EventKind = 'prediction' | 'feedback';

export const BENCH_BASE_TIME = Date.UTC(2026, 0, 5, 0, 0, 0);
export const FEEDBACK_DELAY_MS = { min: 100, max: 30_000 } as const;

export interface TrafficOptions {
  predictions: number;
  seed?: number;
  /** Mean gap between two predictions in event time. */
  meanGapMs?: number;
  /** Which encodings to pre-generate. */
  formats?: readonly InputFormat[];
}

/** What the engine must produce from this traffic with `onTimeout = unmatched`. */
export interface ExpectedOutcome {
  samples: number;
  /** `correct = false` without a label in the 4-class category: needs review, so its prediction closes unmatched. */
  review: number;
  unmatched: number;
}

export interface BenchTraffic {
  readonly predictions: number;
  readonly events: number;
  readonly formats: readonly InputFormat[];
  readonly expected: ExpectedOutcome;
  /** Event-time span of the traffic (first prediction to last feedback). */
  readonly spanMs: number;
  kind(event: number): EventKind;
  timestamp(event: number): number;
  requestId(event: number): string;
  bytes(format: InputFormat, event: number): Buffer;
  totalBytes(format: InputFormat): number;
  /** Writes the registry ids into every Confluent frame header (ids are known only once schemas are registered). */
  setAvroSchemaIds(predictionId: number, feedbackId: number): void;
}

interface CategorySpec {
  name: string;
  classes: readonly string[];
  share: number;
  modelVersion: string;
  modelHash: string;
  features: ReadonlyArray<readonly [string, FeatureKind]>;
}

type FeatureKind = 'money' | 'count' | 'ratio' | 'z' | 'binary' | 'cyclic' | 'days' | 'embedding';

const FRAUD_FEATURES: ReadonlyArray<readonly [string, FeatureKind]> = [
  ['amount', 'money'], ['amount_log', 'z'], ['amount_zscore_customer', 'z'], ['balance_before', 'money'],
  ['balance_after_ratio', 'ratio'], ['account_age_days', 'days'], ['customer_tenure_months', 'count'],
  ['txn_count_1h', 'count'], ['txn_count_24h', 'count'], ['txn_count_7d', 'count'], ['txn_amount_sum_24h', 'money'],
  ['avg_amount_30d', 'money'], ['std_amount_30d', 'money'], ['max_amount_30d', 'money'], ['distance_home_km', 'z'],
  ['distance_last_txn_km', 'z'], ['seconds_since_last_txn', 'days'], ['hour_of_day_sin', 'cyclic'],
  ['hour_of_day_cos', 'cyclic'], ['day_of_week', 'count'], ['merchant_risk_score', 'ratio'],
  ['merchant_category_freq', 'ratio'], ['device_age_days', 'days'], ['device_txn_count_7d', 'count'],
  ['ip_risk_score', 'ratio'], ['email_domain_risk', 'ratio'], ['failed_logins_24h', 'count'],
  ['password_reset_days', 'days'], ['card_present', 'binary'], ['foreign_currency', 'binary'],
  ['velocity_ratio_1h_24h', 'ratio'], ['declined_count_7d', 'count'], ['chargeback_rate_90d', 'ratio'],
  ['credit_limit_utilization', 'ratio'], ['income_estimate', 'money'], ['behaviour_embedding_0', 'embedding'],
];

const INTENT_FEATURES: ReadonlyArray<readonly [string, FeatureKind]> = [
  ...Array.from({ length: 32 }, (_, i) => [`text_emb_${String(i).padStart(2, '0')}`, 'embedding'] as const),
  ['message_length', 'count'], ['token_count', 'count'], ['session_seconds', 'days'], ['prior_contacts_30d', 'count'],
];

const CATEGORIES: readonly CategorySpec[] = [
  {
    name: 'fraud',
    classes: ['fraud', 'legit'],
    share: 0.6,
    modelVersion: 'fraud-gbm-2026.01.3',
    modelHash: '9f2c4e71a0b35d88c6e1f0a7b2d94c3e5a61f8d07b9c2e4a13d5f6b7c8e9a0b1',
    features: FRAUD_FEATURES,
  },
  {
    name: 'intent',
    classes: ['billing', 'support', 'sales', 'cancel'],
    share: 0.4,
    modelVersion: 'intent-bert-2026.02.1',
    modelHash: '3b7e1d9c05a24f6e8d1c7b3a9e5f2d4c6a8b0e1f3d5c7a9b2e4f6a8c0d1e3f5a',
    features: INTENT_FEATURES,
  },
];

const FIRST_NAMES = ['Olivia', 'Liam', 'Amara', 'Noah', 'Sofia', 'Mateo', 'Yuki', 'Chen', 'Fatima', 'Lukas', 'Priya', 'Jonas'];
const LAST_NAMES = ['Okafor', 'Schmidt', 'García', 'Nguyen', 'Kowalski', 'Haddad', 'Silva', 'Andersson', 'Rossi', 'Tanaka'];
const CHANNELS = ['mobile-app', 'web', 'branch', 'call-center'];
const MODEL_ACCURACY = 0.88;
const LABELED_FEEDBACK_SHARE = 0.65;
const SLAB_BYTES = 256 * 1024 * 1024;

/** mulberry32: small, fast, seeded PRNG returning floats in [0, 1). */
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

function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function hex8(x: number): string {
  return x.toString(16).padStart(8, '0');
}

/** UUID-v4-shaped request ID, a pure function of (seed, request index). */
export function benchRequestId(seed: number, request: number): string {
  const a = mix32(seed ^ mix32(request * 4 + 1));
  const b = mix32(seed ^ mix32(request * 4 + 2));
  const c = mix32(seed ^ mix32(request * 4 + 3));
  const d = mix32(seed ^ mix32(request * 4 + 4));
  const hb = hex8(b);
  const hc = hex8(c);
  return `${hex8(a)}-${hb.slice(0, 4)}-4${hb.slice(5, 8)}-${(((c >>> 28) & 0x3) | 0x8).toString(16)}${hc.slice(1, 4)}-${hc.slice(4)}${hex8(d)}`;
}

/** The draws that decide a request's outcome; made first from the request's own PRNG so feedback can be built without the features. */
interface Outline {
  category: CategorySpec;
  truth: string;
  predictedLabel: string;
  labeledFeedback: boolean;
  source: string;
}

function outline(random: () => number): Outline {
  const category = (random() < (CATEGORIES[0] as CategorySpec).share ? CATEGORIES[0] : CATEGORIES[1]) as CategorySpec;
  const classes = category.classes;
  const truth = classes[Math.floor(random() * classes.length)] as string;
  const right = random() < MODEL_ACCURACY;
  const others = classes.filter((c) => c !== truth);
  const predictedLabel = right ? truth : (others[Math.floor(random() * others.length)] as string);
  const labeledFeedback = random() < LABELED_FEEDBACK_SHARE;
  const source = random() < 0.7 ? 'back-office' : 'chargeback-feed';
  return { category, truth, predictedLabel, labeledFeedback, source };
}

function needsReview(o: Outline): boolean {
  return !o.labeledFeedback && o.predictedLabel !== o.truth && o.category.classes.length !== 2;
}

function gaussian(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

function featureValue(kind: FeatureKind, random: () => number): number {
  switch (kind) {
    case 'money':
      return Math.round(Math.exp(3.5 + 1.4 * gaussian(random)) * 100) / 100;
    case 'count':
      return Math.floor(-Math.log(1 - random()) * 6);
    case 'ratio':
      return random();
    case 'z':
      return gaussian(random);
    case 'binary':
      return random() < 0.3 ? 1 : 0;
    case 'cyclic':
      return Math.sin(2 * Math.PI * random());
    case 'days':
      return Math.floor(-Math.log(1 - random()) * 400);
    case 'embedding':
      return gaussian(random) * 0.12;
  }
}

function buildPrediction(o: Outline, random: () => number, requestId: string, request: number, timestamp: number): Prediction {
  const features: Record<string, number> = {};
  for (const [name, kind] of o.category.features) features[name] = featureValue(kind, random);
  const scores: Record<string, number> = {};
  const top = 0.55 + random() * 0.44;
  const rest = (1 - top) / (o.category.classes.length - 1);
  for (const c of o.category.classes) scores[c] = c === o.predictedLabel ? top : rest * (0.5 + random());
  const first = FIRST_NAMES[request % FIRST_NAMES.length] as string;
  const last = LAST_NAMES[Math.floor(random() * LAST_NAMES.length)] as string;
  return {
    requestId,
    category: o.category.name,
    features,
    attributes: {
      name: `${first} ${last}`,
      phone: `+44 7700 ${String(100000 + (request % 900000)).slice(-6)}`,
      idNumber: `ID${String(100000000 + ((request * 7919) % 900000000))}`,
      channel: CHANNELS[request % CHANNELS.length] as string,
    },
    predictedLabel: o.predictedLabel,
    scores,
    modelVersion: o.category.modelVersion,
    modelHash: o.category.modelHash,
    requestTimestamp: timestamp - 5 - Math.floor(random() * 45),
    timestamp,
  };
}

function buildFeedback(o: Outline, requestId: string, timestamp: number): Feedback {
  return o.labeledFeedback
    ? { requestId, timestamp, source: o.source, actualLabel: o.truth, correct: null }
    : { requestId, timestamp, source: o.source, actualLabel: null, correct: o.predictedLabel === o.truth };
}

/** Byte slabs holding one encoded record per event. */
class ByteArena {
  private readonly slabs: Buffer[] = [];
  private current: Buffer = Buffer.alloc(0);
  private used = 0;
  private total = 0;
  private readonly slabOf: Uint16Array;
  private readonly start: Uint32Array;
  private readonly length: Uint32Array;

  constructor(capacity: number) {
    this.slabOf = new Uint16Array(capacity);
    this.start = new Uint32Array(capacity);
    this.length = new Uint32Array(capacity);
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.current.length) return;
    this.current = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes));
    this.slabs.push(this.current);
    this.used = 0;
  }

  putString(index: number, text: string): void {
    this.reserve(text.length * 3);
    const written = this.current.write(text, this.used, 'utf8');
    this.record(index, written);
  }

  putBytes(index: number, bytes: Buffer): void {
    this.reserve(bytes.length);
    bytes.copy(this.current, this.used);
    this.record(index, bytes.length);
  }

  private record(index: number, bytes: number): void {
    this.slabOf[index] = this.slabs.length - 1;
    this.start[index] = this.used;
    this.length[index] = bytes;
    this.used += bytes;
    this.total += bytes;
  }

  view(index: number): Buffer {
    const start = this.start[index] as number;
    return (this.slabs[this.slabOf[index] as number] as Buffer).subarray(start, start + (this.length[index] as number));
  }

  totalBytes(): number {
    return this.total;
  }
}

/** Generates and encodes the traffic. Costs seconds per 100k requests; keep it outside measured intervals. */
export function generateBenchTraffic(options: TrafficOptions): BenchTraffic {
  const n = options.predictions;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`predictions must be a positive integer, got ${n}`);
  const seed = options.seed ?? 42;
  const meanGapMs = options.meanGapMs ?? 2;
  const formats = options.formats ?? ['json', 'avro'];
  const random = mulberry32(seed);
  const predictionTime = new Float64Array(n);
  const feedbackTime = new Float64Array(n);
  const expected: ExpectedOutcome = { samples: 0, review: 0, unmatched: 0 };
  const logDelayRange = Math.log(FEEDBACK_DELAY_MS.max / FEEDBACK_DELAY_MS.min);
  let clock = BENCH_BASE_TIME;
  for (let i = 0; i < n; i++) {
    clock += -Math.log(1 - random()) * meanGapMs;
    const tp = Math.floor(clock);
    predictionTime[i] = tp;
    feedbackTime[i] = tp + Math.round(FEEDBACK_DELAY_MS.min * Math.exp(random() * logDelayRange));
    if (needsReview(outline(requestRandom(seed, i)))) expected.review++;
    else expected.samples++;
  }
  expected.unmatched = expected.review;

  // Event code = request * 2 + (0 prediction | 1 feedback); sorted by event time, ties by code.
  const order = new Uint32Array(2 * n);
  for (let j = 0; j < order.length; j++) order[j] = j;
  const timeOf = (code: number): number => ((code & 1) === 0 ? predictionTime[code >>> 1] : feedbackTime[code >>> 1]) as number;
  order.sort((a, b) => timeOf(a) - timeOf(b) || a - b);

  const arenas = new Map<InputFormat, ByteArena>();
  for (const f of formats) arenas.set(f, new ByteArena(order.length));
  const json = arenas.get('json');
  const avro = arenas.get('avro');
  for (let j = 0; j < order.length; j++) {
    const code = order[j] as number;
    const request = code >>> 1;
    const r = requestRandom(seed, request);
    const o = outline(r);
    const requestId = benchRequestId(seed, request);
    if ((code & 1) === 0) {
      const p = buildPrediction(o, r, requestId, request, predictionTime[request] as number);
      json?.putString(j, JSON.stringify(p));
      avro?.putBytes(j, encodeFramed('Prediction', 0, p));
    } else {
      const f = buildFeedback(o, requestId, feedbackTime[request] as number);
      json?.putString(j, JSON.stringify(f));
      avro?.putBytes(j, encodeFramed('Feedback', 0, f));
    }
  }
  const first = predictionTime[0] as number;
  const last = timeOf(order[order.length - 1] as number);

  const arena = (format: InputFormat): ByteArena => {
    const a = arenas.get(format);
    if (!a) throw new RangeError(`the traffic was generated without the ${format} encoding`);
    return a;
  };
  return {
    predictions: n,
    events: order.length,
    formats,
    expected,
    spanMs: last - first,
    kind: (event) => (((order[event] as number) & 1) === 0 ? 'prediction' : 'feedback'),
    timestamp: (event) => timeOf(order[event] as number),
    requestId: (event) => benchRequestId(seed, (order[event] as number) >>> 1),
    bytes: (format, event) => arena(format).view(event),
    totalBytes: (format) => arena(format).totalBytes(),
    setAvroSchemaIds: (predictionId, feedbackId) => {
      const a = arena('avro');
      for (let j = 0; j < order.length; j++) a.view(j).writeUInt32BE(((order[j] as number) & 1) === 0 ? predictionId : feedbackId, 1);
    },
  };
}

function requestRandom(seed: number, request: number): () => number {
  return mulberry32(mix32((Math.imul(seed, 0x9e3779b1) + request) >>> 0));
}
