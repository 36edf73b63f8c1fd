/**
 * `sampleloop demo`: the closed loop on the embedded engine, with real models.
 *
 *   seed models (v1) ─► ledger ─► predictor (ONNX) ─► predictions ─► join with feedback ─► samples
 *                          ▲                                                                │
 *                          └──── trainer (promotes only if not worse) ◄── retrain trigger ◄──┘
 *
 * Two public datasets (digits, breast-cancer) are split into a fixed test set, a small labeled seed
 * and a traffic pool. The pool's rows are sent as requests; feedback comes from the ground truth,
 * delayed, sometimes missing, partial or corrected. Time is simulated: one clock drives the runtime,
 * the predictor's timestamps, the trigger and the trainer, so a seed gives the same run every time.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { parseConfig, type ConfigInput, type SampleloopConfig } from '../config/config.js';
import { directAccess, type LogAccess } from '../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { UsageError } from '../engine/errors.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { loadDataset, type Dataset, type DatasetName } from '../models/datasets/index.js';
import { holdoutPosition } from '../models/holdout.js';
import { publishVersion, readLedger, type LedgerView } from '../models/ledger.js';
import { trainLogistic, type TrainOptions } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';
import { onnxHoldoutAccuracy, type TrainerDecision, type TrainerJob, type TrainingRow } from '../models/trainer-job.js';
import { decodeFramed } from '../schemas/codec.js';
import type { Feedback, LabeledSample, ModelVersion, Prediction, RetrainTrigger } from '../schemas/types.js';
import { accuracyChartHtml, type AccuracyPoint } from './demo-chart.js';
import { startDemoDashboard, type DemoDashboardOptions } from './demo-dashboard.js';

// ---------------------------------------------------------------------------------------------
// Settings of the simulation

const BASE_TIME = Date.UTC(2026, 0, 5, 9, 0, 0);
/** One request every 250 ms of simulated time. */
const REQUEST_INTERVAL_MS = 250;
/** The engine is driven in steps of this much simulated time (requests of a step are predicted at its end). */
const SLICE_MS = 5_000;
/** Share of each dataset's rows in the fixed test set (by a hash of the row index). */
const TEST_FRACTION = 0.25;
/** Share of the remaining rows that are labeled up front (the seed the first models are trained on). */
const SEED_FRACTION = 0.05;
const FEEDBACK_MISSING = 0.1;
const FEEDBACK_MIN_DELAY_MS = 500;
const FEEDBACK_MAX_DELAY_MS = 20_000;
/** Probability that feedback carries the label (else only correct: true/false), per category. */
const LABELED_FEEDBACK: Record<string, number> = { digits: 0.75, 'breast-cancer': 0.3 };
/** Feedback first gives a wrong label, and an audit corrects it a few seconds later. */
const MISLABEL_THEN_CORRECTION = 0.04;
const SEED_TRAINER = 'demo-seed';
const DATASETS: readonly DatasetName[] = ['digits', 'breast-cancer'];

export interface DemoOptions {
  /** Where the engine keeps its data; default: a new temporary directory. Must be new or empty. */
  dataDir?: string;
  /** Requests to send; default: every row of both traffic pools. */
  requests?: number;
  /** Seed of the simulated traffic (order, delays, missing and partial feedback). */
  seed: number;
  /** Print only the summary. */
  quiet: boolean;
  /** Where to write the HTML chart; default `<dataDir>/accuracy.html`; null: none. */
  chartPath?: string | null;
  /** Serve the live dashboard of the demo's engine (`--serve`). */
  dashboard?: DemoDashboardOptions;
  out: (line: string) => void;
}

export interface PromotionReport {
  version: string;
  triggerId: string;
  /** Reason of the trigger (sample-count, accuracy-drop, age). */
  reason: string;
  /** Samples in the snapshot the version was trained on. */
  sampleCount: number;
  /** From the ledger metrics. */
  holdoutAccuracy: number;
  servingHoldoutAccuracy: number | null;
  holdoutSize: number;
  /** Accuracy of the promoted ONNX model on the category's fixed test set. */
  testAccuracy: number;
  modelSha256: string;
}

export interface CategoryReport {
  category: string;
  testSize: number;
  seedSize: number;
  poolSize: number;
  /** Requests of the category sent as traffic. */
  requests: number;
  seedAccuracy: number;
  finalAccuracy: number;
  oracleAccuracy: number;
  finalVersion: string;
  finalModelSha256: string;
  promotions: PromotionReport[];
  rejected: number;
  /** Snapshot sizes of the rejected candidates. */
  rejectedAt: number[];
  skipped: number;
  /** Distinct request IDs on the samples topic. */
  samples: number;
  unmatched: number;
  review: number;
}

export interface DemoResult {
  dataDir: string;
  chartPath: string | null;
  categories: CategoryReport[];
  decisions: TrainerDecision[];
  ledger: { versions: number; categories: number; failures: string[] };
  counts: {
    requests: number;
    /** Distinct request IDs on the samples topic. */
    samples: number;
    /** Records on the samples topic, revisions included. */
    sampleRecords: number;
    /** Samples (latest revision) by label source. */
    labelSources: Record<string, number>;
    orphans: number;
    late: number;
    deadLetters: number;
  };
  /** Samples (latest revision per request) whose label equals the ground truth. */
  labelCorrectness: number;
  /** Raw names, phones and ID numbers found in any topic but the inputs. */
  leaks: number;
  scannedRecords: number;
  scannedTopics: number;
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Data: a fixed test set, a labeled seed, a traffic pool

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

type FeedbackPlan =
  | { kind: 'missing' }
  | { kind: 'label' | 'correct'; delayMs: number }
  | { kind: 'mislabel-then-correction'; delayMs: number; wrongLabel: string; correctionDelayMs: number };

interface PlannedRequest {
  requestId: string;
  category: string;
  row: SplitRow;
  features: Record<string, number>;
  timestamp: number;
  attributes: Record<string, string>;
  feedback: FeedbackPlan;
}

/** Every pool row once (or the first `requests` of them), shuffled; feedback decided up front, except correct/incorrect, which depends on the live prediction. */
function planTraffic(data: readonly DatasetSplit[], requests: number | undefined, seed: number): PlannedRequest[] {
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
function feedbackFor(request: PlannedRequest, predictedLabel: string): Feedback[] {
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
function brokenRecords(config: SampleloopConfig, example: PlannedRequest): OutputRecord[] {
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

/** The engine's settings for the demo: predictor, trigger and built-in trainer on; windows sized for the simulated traffic. */
export function demoConfigInput(dataDir: string, datasets: readonly Dataset[]): ConfigInput {
  return {
    dataDir,
    http: { port: 0 },
    log: { level: 'silent' },
    // Predictions are stamped with the simulated clock; feedback may then precede them by up to a slice.
    join: { beforeMs: 2 * SLICE_MS, afterMs: 60_000, graceMs: 5_000, idleAdvance: false },
    categories: Object.fromEntries(datasets.map((d) => [d.name, { classes: d.classes }])),
    predictor: { enabled: true, timestamp: 'wall-clock' },
    // Retrain every 100 new samples (or when live accuracy drops); after the traffic, the age rule
    // retrains on what is left once a version has served 3 simulated minutes.
    trigger: { enabled: true, minNewSamples: 100, minLiveAccuracy: 0.8, minWindowSamples: 100, windowSamples: 300, maxAgeMs: 180_000, minNewSamplesForAge: 25, debounceMs: 60_000, checkIntervalMs: 10_000 },
    trainer: { enabled: true, holdoutFraction: 0.2, minTrainSamples: 50, minHoldoutSamples: 20, minImprovement: 0 },
  };
}

function prepareDataDir(dir: string | undefined): string {
  if (dir === undefined) return mkdtempSync(join(tmpdir(), 'sampleloop-demo-'));
  const path = resolve(dir);
  if (existsSync(path) && readdirSync(path).length > 0) {
    throw new UsageError(`${path} is not empty: the demo needs a new or empty data directory (or omit --data-dir for a fresh temporary one)`);
  }
  mkdirSync(path, { recursive: true });
  return path;
}

// ---------------------------------------------------------------------------------------------
// Reading topics while the loop runs

/** Reads what was appended to a topic since the last call (every partition, in offset order). */
class TopicTail {
  private readonly positions: number[] = [];

  constructor(
    private readonly app: EmbeddedApp,
    private readonly topic: string,
  ) {}

  next(): SourceRecord[] {
    const partitions = this.app.log.topic(this.topic)?.partitions ?? 0;
    const out: SourceRecord[] = [];
    for (let p = 0; p < partitions; p++) {
      for (;;) {
        const records = this.app.log.read(this.topic, p, this.positions[p] ?? 0, 5_000);
        if (records.length === 0) break;
        for (const r of records) out.push(r);
        this.positions[p] = (records[records.length - 1] as SourceRecord).offset + 1;
      }
    }
    return out;
  }

  decoded<T>(): T[] {
    const lookup = (id: number): ReturnType<EmbeddedApp['registry']['cached']> => this.app.registry.cached(id);
    return this.next().flatMap((r) => (r.value === null ? [] : [decodeFramed(r.value, lookup).value as T]));
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface CategoryRun {
  data: DatasetSplit;
  seedAccuracy: number;
  oracleAccuracy: number;
  points: AccuracyPoint[];
  promotions: PromotionReport[];
  /** Snapshot sizes of rejected candidates. */
  rejectedAt: number[];
  skipped: number;
  requests: number;
  servingVersion: string;
  /** Predictions since the last progress line: [right, total]. */
  live: [number, number];
  samples: Set<string>;
}

function percent(x: number, digits = 1): string {
  return `${(100 * x).toFixed(digits)}%`;
}

async function testAccuracy(bytes: Uint8Array, data: DatasetSplit, version?: Pick<ModelVersion, 'featureNames' | 'classes'>): Promise<number> {
  return onnxHoldoutAccuracy(bytes, data.testRows, version ? { featureNames: version.featureNames, classes: version.classes } : {});
}

function trainOptions(config: SampleloopConfig): TrainOptions {
  return { l2: config.trainer.l2, maxIterations: config.trainer.maxIterations, tolerance: config.trainer.tolerance };
}

/** `sampleloop demo`; resolves to what it printed as data (the tests check it). */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  if (options.requests !== undefined && (!Number.isInteger(options.requests) || options.requests < 1)) {
    throw new UsageError(`--requests must be a positive integer, got ${options.requests}`);
  }
  const dataDir = prepareDataDir(options.dataDir);
  const datasets = DATASETS.map((name) => loadDataset(name));
  const config = parseConfig(demoConfigInput(dataDir, datasets));
  const data = datasets.map(splitDataset);
  const plan = planTraffic(data, options.requests, options.seed);
  const clock = { now: BASE_TIME - 60_000 };
  const say = (line: string): void => {
    if (!options.quiet) options.out(line);
  };

  say(`sampleloop demo: the closed loop on the embedded engine, data in ${dataDir}`);
  say(`datasets, split by a hash of the row index: test ${percent(TEST_FRACTION, 0)} (never trained on), labeled seed ${percent(SEED_FRACTION, 0)} of the rest, the rest is the traffic pool`);
  for (const d of data) {
    say(`  ${d.dataset.name.padEnd(14)} ${String(d.dataset.rows.length).padStart(4)} rows, ${String(d.dataset.classes.length).padStart(2)} classes: test ${d.test.length}, seed ${d.seed.length}, pool ${d.pool.length}`);
  }

  const app = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics(), now: () => clock.now, trainer: { loop: false } });
  let closeDashboard: (() => Promise<void>) | undefined;
  try {
    const dashboard = options.dashboard ? await startDemoDashboard(app, () => clock.now, options.dashboard) : undefined;
    closeDashboard = dashboard?.close;
    if (dashboard) {
      say(`dashboard: ${dashboard.url}`);
      await options.dashboard?.onReady?.(dashboard.url);
    }
    const loop = new ClosedLoop(app, config, plan, clock, say);
    await loop.publishSeeds(data);
    say(`traffic: ${plan.length} requests over ${((plan.length * REQUEST_INTERVAL_MS) / 60_000).toFixed(1)} simulated minutes; feedback ${FEEDBACK_MIN_DELAY_MS / 1000}-${FEEDBACK_MAX_DELAY_MS / 1000} s later, missing for ${percent(FEEDBACK_MISSING, 0)},`);
    say(`  only "correct: true/false" for ${percent(1 - (LABELED_FEEDBACK.digits ?? 0), 0)} (digits) / ${percent(1 - (LABELED_FEEDBACK['breast-cancer'] ?? 0), 0)} (breast-cancer), first mislabeled then corrected by an audit for ${percent(MISLABEL_THEN_CORRECTION, 0)}`);
    say(`retraining: trigger every ${config.trigger.minNewSamples} new samples of a category (or live accuracy < ${percent(config.trigger.minLiveAccuracy, 0)}); promote only if holdout accuracy >= the serving model's`);
    await loop.runTraffic();
    await loop.finish();
    const result = await summarize({ access: loop.access, config, runs: loop.runs, decisions: loop.decisions, plan, dataDir, started, options });
    if (dashboard) await options.dashboard?.afterTraffic?.(dashboard.url, app);
    return result;
  } finally {
    await closeDashboard?.();
    await app.close();
  }
}

/**
 * Drives the engine through simulated time: sends requests, answers predictions with feedback,
 * and lets the trainer handle triggers after every slice, reporting each decision.
 */
class ClosedLoop {
  readonly access: LogAccess;
  readonly runs = new Map<string, CategoryRun>();
  readonly decisions: TrainerDecision[] = [];
  private readonly trainer: TrainerJob;
  private readonly byId: Map<string, PlannedRequest>;
  private readonly predictions: TopicTail;
  private readonly samples: TopicTail;
  private readonly triggers: TopicTail;
  private readonly triggerById = new Map<string, RetrainTrigger>();
  private readonly pendingFeedback: Feedback[] = [];
  private sent = 0;

  constructor(
    private readonly app: EmbeddedApp,
    private readonly config: SampleloopConfig,
    private readonly plan: readonly PlannedRequest[],
    private readonly clock: { now: number },
    private readonly say: (line: string) => void,
  ) {
    if (!app.trainer) throw new UsageError('the demo needs the built-in trainer (trainer.enabled)');
    this.trainer = app.trainer;
    this.access = directAccess(app.log, app.registry, () => clock.now);
    this.byId = new Map(plan.map((r) => [r.requestId, r]));
    this.predictions = new TopicTail(app, config.topics.predictions);
    this.samples = new TopicTail(app, config.topics.samples);
    this.triggers = new TopicTail(app, config.topics.retrainTriggers);
  }

  /** Trains a model per category on its labeled seed and publishes it as version 1; trains the oracle for comparison. */
  async publishSeeds(data: readonly DatasetSplit[]): Promise<void> {
    this.say('seed models, published to the model ledger as version 1 (test-set accuracy):');
    const options = trainOptions(this.config);
    for (const d of data) {
      const { dataset } = d;
      const onnx = exportOnnx(trainLogistic(d.seed, dataset.featureNames, dataset.classes, options), { version: '1', category: dataset.name });
      await publishVersion(
        this.access,
        { category: dataset.name, version: '1', onnx, featureNames: dataset.featureNames, classes: dataset.classes, metrics: { trainSize: d.seed.length }, trainer: SEED_TRAINER, createdAt: this.clock.now },
        { topic: this.config.topics.models },
      );
      const seedAccuracy = await testAccuracy(onnx, d);
      const oracle = exportOnnx(trainLogistic(d.pool, dataset.featureNames, dataset.classes, options), { version: 'oracle', category: dataset.name });
      const oracleAccuracy = await testAccuracy(oracle, d);
      this.runs.set(dataset.name, {
        data: d,
        seedAccuracy,
        oracleAccuracy,
        points: [{ samples: 0, accuracy: seedAccuracy, label: 'v1 (seed)' }],
        promotions: [],
        rejectedAt: [],
        skipped: 0,
        requests: this.plan.filter((r) => r.category === dataset.name).length,
        servingVersion: '1',
        live: [0, 0],
        samples: new Set(),
      });
      this.say(`  ${dataset.name.padEnd(14)} ${percent(seedAccuracy).padStart(6)}  (trained on ${d.seed.length} labeled rows; oracle trained on all ${d.pool.length} pool labels: ${percent(oracleAccuracy)})`);
    }
  }

  /** Slice by slice of simulated time until every request is sent and every feedback delivered. */
  async runTraffic(): Promise<void> {
    const { plan } = this;
    const progressEvery = Math.max(1, Math.ceil(plan.length / 10));
    let nextProgress = Math.min(progressEvery, plan.length);
    for (let sliceStart = BASE_TIME; this.sent < plan.length || this.pendingFeedback.length > 0; sliceStart += SLICE_MS) {
      const sliceEnd = sliceStart + SLICE_MS;
      const records: OutputRecord[] = [];
      if (sliceStart === BASE_TIME && plan[0]) records.push(...brokenRecords(this.config, plan[0]));
      while (this.sent < plan.length && (plan[this.sent] as PlannedRequest).timestamp < sliceEnd) records.push(this.requestRecord(plan[this.sent++] as PlannedRequest));
      this.pendingFeedback.sort((a, b) => a.timestamp - b.timestamp);
      while (this.pendingFeedback.length > 0 && (this.pendingFeedback[0] as Feedback).timestamp < sliceEnd) records.push(this.feedbackRecord(this.pendingFeedback.shift() as Feedback));
      if (records.length > 0) this.app.log.append(records.sort((a, b) => a.timestamp - b.timestamp));
      this.clock.now = sliceEnd;
      await this.settle();
      await this.train();
      if (this.sent >= nextProgress) {
        this.progress();
        nextProgress = this.sent >= plan.length ? Number.POSITIVE_INFINITY : Math.min(nextProgress + progressEvery, plan.length);
      }
    }
  }

  /** Closes the join windows still open; later, the age rule retrains categories on the samples left. */
  async finish(): Promise<void> {
    const { join, trigger } = this.config;
    this.say('traffic over: the join windows still open are closed (predictions without feedback go to unmatched)');
    this.clock.now += join.afterMs + join.graceMs;
    this.app.runtime.endOfInput();
    await this.settle();
    await this.train();
    if (trigger.maxAgeMs === null) return;
    this.say(`${trigger.maxAgeMs / 60_000} simulated minutes later: the age rule retrains categories with ${trigger.minNewSamplesForAge}+ samples not yet trained on`);
    this.clock.now += trigger.maxAgeMs + trigger.checkIntervalMs;
    await this.settle();
    await this.train();
  }

  private requestRecord(r: PlannedRequest): OutputRecord {
    const value = { requestId: r.requestId, category: r.category, features: r.features, attributes: r.attributes, timestamp: r.timestamp, source: 'demo-gateway' };
    return { topic: this.config.topics.requests, key: Buffer.from(r.requestId), value: Buffer.from(JSON.stringify(value)), timestamp: r.timestamp, headers: {} };
  }

  private feedbackRecord(f: Feedback): OutputRecord {
    return { topic: this.config.topics.feedback, key: Buffer.from(f.requestId), value: Buffer.from(JSON.stringify(f)), timestamp: f.timestamp, headers: {} };
  }

  private run(category: string): CategoryRun {
    const run = this.runs.get(category);
    if (!run) throw new UsageError(`no demo category "${category}"`);
    return run;
  }

  /** Runs every topology until no input is left anywhere (one's outputs reach the next after each commit), then reads what came out. */
  private async settle(): Promise<void> {
    while ((await this.app.runtime.runUntilIdleAsync()) > 0) {
      // another pass: the last one produced input for another topology
    }
    for (const p of this.predictions.decoded<Prediction>()) {
      const request = this.byId.get(p.requestId);
      if (!request) continue;
      const run = this.run(p.category);
      run.servingVersion = p.modelVersion;
      run.live[1]++;
      if (p.predictedLabel === request.row.label) run.live[0]++;
      this.pendingFeedback.push(...feedbackFor(request, p.predictedLabel));
    }
    for (const s of this.samples.decoded<LabeledSample>()) this.runs.get(s.category)?.samples.add(s.requestId);
    for (const t of this.triggers.decoded<RetrainTrigger>()) this.triggerById.set(t.triggerId, t);
  }

  /** Lets the trainer handle every waiting trigger; after a promotion the next requests are served by the new version. */
  private async train(): Promise<void> {
    for (;;) {
      const decided = await this.trainer.processPending();
      if (decided.length === 0) return;
      this.decisions.push(...decided);
      const ledger = await readLedger(this.access, this.config.topics.models);
      for (const d of decided) await this.report(d, ledger);
      await this.settle();
    }
  }

  private async report(d: TrainerDecision, ledger: LedgerView): Promise<void> {
    const run = this.run(d.category);
    const reason = this.triggerById.get(d.triggerId)?.reason ?? 'unknown reason';
    if (d.decision === 'promoted') {
      const version = ledger.byCategory.get(d.category)?.find((v) => v.verification.ok && v.version?.version === d.candidateVersion)?.version;
      if (!version?.onnx) throw new UsageError(`promoted version ${d.category}/${d.candidateVersion} is not in the ledger`);
      const { metrics } = version;
      const promotion: PromotionReport = {
        version: version.version,
        triggerId: d.triggerId,
        reason,
        sampleCount: version.trainingSnapshot?.sampleCount ?? d.sampleCount,
        holdoutAccuracy: metrics.holdoutAccuracy ?? Number.NaN,
        servingHoldoutAccuracy: metrics.servingHoldoutAccuracy ?? null,
        holdoutSize: metrics.holdoutSize ?? d.holdoutSize,
        testAccuracy: await testAccuracy(version.onnx, run.data, version),
        modelSha256: version.modelSha256,
      };
      run.promotions.push(promotion);
      run.points.push({ samples: promotion.sampleCount, accuracy: promotion.testAccuracy, label: `v${promotion.version}` });
      const vs = promotion.servingHoldoutAccuracy === null ? '' : ` vs ${percent(promotion.servingHoldoutAccuracy)} for v${d.servingVersion}`;
      this.say(
        `  promoted ${d.category} v${promotion.version} after ${promotion.sampleCount} samples (${reason}): holdout ${percent(promotion.holdoutAccuracy)}${vs} on ${promotion.holdoutSize} held-out samples -> test-set accuracy ${percent(promotion.testAccuracy)}`,
      );
    } else if (d.decision === 'rejected') {
      run.rejectedAt.push(d.sampleCount);
      this.say(`  rejected ${d.category} candidate v${d.candidateVersion} after ${d.sampleCount} samples (${reason}): holdout ${percent(d.candidateAccuracy ?? 0)} < ${percent(d.servingAccuracy ?? 0)} for v${d.servingVersion}, which keeps serving`);
    } else {
      run.skipped++;
      this.say(`  ${d.decision} ${d.category} trigger ${d.triggerId} (${reason}): ${d.message}`);
    }
  }

  private progress(): void {
    const runs = [...this.runs.values()];
    const live = runs.map((r) => `${r.data.dataset.name} ${r.live[1] === 0 ? '-' : percent(r.live[0] / r.live[1])} (v${r.servingVersion})`).join(', ');
    const counts = runs.map((r) => `${r.data.dataset.name} ${r.samples.size}`).join(', ');
    const width = String(this.plan.length).length;
    this.say(`  traffic: ${percent(this.sent / this.plan.length, 0).padStart(4)} | ${String(this.sent).padStart(width)}/${this.plan.length} requests | live accuracy since last line: ${live} | samples: ${counts}`);
    for (const r of runs) r.live = [0, 0];
  }
}

// ---------------------------------------------------------------------------------------------
// Summary, leak scan, chart

/** The demo generates raw names, phones and ID numbers in these shapes, so a leak of any of them matches. */
const RAW_SHAPES = /Customer \d{5}|\+44 7700 9\d{5}|ID9\d{7}/g;

/** Occurrences of the `raw` values anywhere in `value`: strings, nested objects and arrays, bytes (as latin1). */
export function countRawValues(value: unknown, raw: ReadonlySet<string>): number {
  if (typeof value === 'string') return (value.match(RAW_SHAPES) ?? []).filter((m) => raw.has(m)).length;
  if (value instanceof Uint8Array) return countRawValues(Buffer.from(value).toString('latin1'), raw);
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + countRawValues(v, raw), 0);
  if (value !== null && typeof value === 'object') return Object.values(value).reduce((n: number, v) => n + countRawValues(v, raw), 0);
  return 0;
}

interface SummaryInput {
  access: LogAccess;
  config: SampleloopConfig;
  runs: Map<string, CategoryRun>;
  decisions: TrainerDecision[];
  plan: readonly PlannedRequest[];
  dataDir: string;
  started: number;
  options: DemoOptions;
}

async function summarize(input: SummaryInput): Promise<DemoResult> {
  const result = await collectResult(input);
  if (input.options.chartPath !== null) {
    result.chartPath = writeChart(input.options.chartPath ?? join(input.dataDir, 'accuracy.html'), input, result);
  }
  result.seconds = (Date.now() - input.started) / 1000;
  printSummary(result, input.options.out);
  return result;
}

/** Reads every topic and the ledger once the loop is over. */
async function collectResult(input: SummaryInput): Promise<DemoResult> {
  const { access, config, runs, decisions, plan, dataDir } = input;
  const topics = await access.topics();
  const count = (topic: string): number => topics.find((t) => t.topic === topic)?.records ?? 0;
  const values = async (topic: string): Promise<unknown[]> => (topics.some((t) => t.topic === topic) ? (await access.read(topic)).map((r) => r.value) : []);

  const sampleRecords = (await values(config.topics.samples)) as LabeledSample[];
  const latest = new Map<string, LabeledSample>();
  for (const s of sampleRecords) if ((latest.get(s.requestId)?.revision ?? -1) <= s.revision) latest.set(s.requestId, s);
  const truth = new Map(plan.map((r) => [r.requestId, r.row.label]));
  let right = 0;
  const labelSources: Record<string, number> = {};
  for (const s of latest.values()) {
    if (truth.get(s.requestId) === s.label) right++;
    labelSources[s.labelSource] = (labelSources[s.labelSource] ?? 0) + 1;
  }
  const perCategory = (records: unknown[]): Map<string, number> => {
    const m = new Map<string, number>();
    for (const r of records) {
      const category = (r as { prediction?: { category?: string } }).prediction?.category ?? '';
      m.set(category, (m.get(category) ?? 0) + 1);
    }
    return m;
  };
  const unmatched = perCategory(await values(config.topics.unmatched));
  const review = perCategory(await values(config.topics.review));

  const ledger = await readLedger(access, config.topics.models);
  const failures = ledger.failures.map((f) => `${f.category} version ${f.version?.version ?? '?'} (offset ${f.offset}): ${f.verification.ok ? '' : `${f.verification.code}: ${f.verification.reason}`}`);

  const raw = new Set(plan.flatMap((r) => [r.attributes.name, r.attributes.phone, r.attributes.idNumber] as string[]));
  const inputs = new Set([config.topics.requests, config.topics.feedback]);
  let leaks = 0;
  let scannedRecords = 0;
  let scannedTopics = 0;
  for (const t of topics) {
    if (inputs.has(t.topic)) continue;
    scannedTopics++;
    for (const r of await access.read(t.topic)) {
      scannedRecords++;
      leaks += countRawValues(r, raw);
    }
  }

  const categories: CategoryReport[] = [...runs.values()].map((run) => {
    const name = run.data.dataset.name;
    const head = ledger.heads.get(name);
    return {
      category: name,
      testSize: run.data.test.length,
      seedSize: run.data.seed.length,
      poolSize: run.data.pool.length,
      requests: run.requests,
      seedAccuracy: run.seedAccuracy,
      finalAccuracy: (run.points[run.points.length - 1] as AccuracyPoint).accuracy,
      oracleAccuracy: run.oracleAccuracy,
      finalVersion: head?.version ?? '',
      finalModelSha256: head?.modelSha256 ?? '',
      promotions: run.promotions,
      rejected: run.rejectedAt.length,
      rejectedAt: run.rejectedAt,
      skipped: run.skipped,
      samples: [...latest.values()].filter((s) => s.category === name).length,
      unmatched: unmatched.get(name) ?? 0,
      review: review.get(name) ?? 0,
    };
  });

  return {
    dataDir,
    chartPath: null,
    categories,
    decisions,
    ledger: { versions: ledger.versions.length, categories: ledger.byCategory.size, failures },
    counts: { requests: plan.length, samples: latest.size, sampleRecords: sampleRecords.length, labelSources, orphans: count(config.topics.orphans), late: count(config.topics.late), deadLetters: count(config.topics.deadLetters) },
    labelCorrectness: latest.size === 0 ? 0 : right / latest.size,
    leaks,
    scannedRecords,
    scannedTopics,
    seconds: 0,
  };
}

function writeChart(path: string, input: SummaryInput, result: DemoResult): string {
  const file = resolve(path);
  mkdirSync(dirname(file), { recursive: true });
  const series = result.categories.map((c) => ({
    category: c.category,
    points: input.runs.get(c.category)?.points ?? [],
    oracle: c.oracleAccuracy,
    samplesAtEnd: c.samples,
    rejectedAt: c.rejectedAt,
  }));
  const subtitle = `Test-set accuracy of the served model (ONNX, onnxruntime) against the labeled samples it was trained on; seed ${input.options.seed}, ${result.counts.requests} requests. The dashed line is a model trained on every label of the traffic pool.`;
  writeFileSync(file, accuracyChartHtml(series, { title: 'sampleloop demo: the closed loop raises accuracy', subtitle }));
  return file;
}

function printSummary(result: DemoResult, out: (line: string) => void): void {
  const { categories, counts } = result;
  out('');
  out('results (accuracy on the fixed test set, which no model ever trains on):');
  const header = ['category', 'seed (v1)', 'final', 'oracle', 'promoted', 'rejected', 'samples', 'unmatched', 'review'];
  const rows = categories.map((c) => [
    c.category,
    percent(c.seedAccuracy),
    `${percent(c.finalAccuracy)} (v${c.finalVersion})`,
    percent(c.oracleAccuracy),
    String(c.promotions.length),
    String(c.rejected),
    String(c.samples),
    String(c.unmatched),
    String(c.review),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  for (const r of [header, ...rows]) out(`  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ')}`);
  out('  (oracle: the same trainer on every label of the traffic pool; final: the version serving at the end)');
  const sources = Object.entries(counts.labelSources)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const sum = (pick: (c: CategoryReport) => number): number => categories.reduce((n, c) => n + pick(c), 0);
  out(
    `join: ${counts.samples} samples (${counts.sampleRecords} records incl. revisions; ${sources}), unmatched ${sum((c) => c.unmatched)}, review ${sum((c) => c.review)}, orphans ${counts.orphans}, late ${counts.late}, dead letters ${counts.deadLetters}`,
  );
  out(`sample labels vs ground truth: ${percent(result.labelCorrectness, 2)} of samples right (latest revision of each)`);
  const { ledger } = result;
  if (ledger.failures.length === 0) out(`model ledger: ok: ${ledger.versions} version(s) of ${ledger.categories} categories verified (ONNX bytes, record hashes, hash chain)`);
  else for (const f of ledger.failures) out(`model ledger: FAIL ${f}`);
  out(`raw sensitive values found in outputs: ${result.leaks} (names, phones, ID numbers; ${result.scannedRecords} records of ${result.scannedTopics} topics scanned)`);
  if (result.chartPath) out(`chart: ${result.chartPath}`);
  out(`finished in ${result.seconds.toFixed(1)} s`);
  out('');
  out(`next: node bin/sampleloop.js models list --data-dir ${result.dataDir}`);
  out(`      node bin/sampleloop.js consume trainer-decisions --data-dir ${result.dataDir}`);
  out(`      node bin/sampleloop.js inspect --data-dir ${result.dataDir}`);
}

// ---------------------------------------------------------------------------------------------
// The command

/** `demo --serve`: the dashboard stays up until SIGINT / SIGTERM. */
function untilInterrupted(url: string, out: (line: string) => void): Promise<void> {
  out(`dashboard: ${url} (the engine keeps serving it; Ctrl-C to stop)`);
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || String(n) !== value.trim()) throw new UsageError(`${name} must be a non-negative integer, got "${value}"`);
  return n;
}

export function registerDemoCommand(program: Command, out: (line: string) => void): void {
  program
    .command('demo')
    .description('the closed loop on the embedded default: real ONNX models serve traffic, feedback becomes samples, retraining promotes better models')
    .option('-d, --data-dir <dir>', 'where the demo keeps its data: a new or empty directory (default: a fresh temporary one)')
    .option('--requests <n>', 'number of simulated requests (default: every row of both traffic pools)')
    .option('--seed <n>', 'random seed of the simulated traffic', '7')
    .option('--chart <path>', 'where to write the accuracy chart (HTML; default <data-dir>/accuracy.html)')
    .addOption(new Option('--quiet', 'print only the summary'))
    .option('--serve', 'serve the live dashboard of the demo\'s engine and keep it up after the summary until Ctrl-C')
    .option('--http-port <n>', 'port of the dashboard with --serve (default 9464; 0 = any free port)', '9464')
    .action(async (opts: { dataDir?: string; requests?: string; seed: string; chart?: string; quiet?: boolean; serve?: boolean; httpPort: string }) => {
      await runDemo({
        ...(opts.serve ? { dashboard: { port: positiveInt(opts.httpPort, '--http-port'), afterTraffic: (url) => untilInterrupted(url, out) } } : {}),
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
        ...(opts.requests !== undefined ? { requests: positiveInt(opts.requests, '--requests') } : {}),
        ...(opts.chart ? { chartPath: opts.chart } : {}),
        seed: positiveInt(opts.seed, '--seed'),
        quiet: opts.quiet ?? false,
        out,
      });
    });
}
