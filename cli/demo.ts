/**
 * `sampleloop demo`: the closed loop on the embedded engine, with real models.
 *
 *   seed models (v1) ─► ledger ─► gateway (OIP, ONNX) ─► predictions ─► join with feedback ─► samples
 *                          ▲                                                                │
 *                          └──── trainer (promotes only if not worse) ◄── retrain trigger ◄──┘
 *
 * Two public datasets (digits, breast-cancer) are split into a fixed test set, a small labeled seed
 * and a traffic pool. The pool's rows are sent as OIP calls to the gateway; feedback comes from the
 * ground truth through its /v1/feedback, delayed, sometimes missing, partial or corrected. Time is
 * simulated: one clock drives the runtime, the gateway's timestamps, the trigger and the trainer, so a
 * seed gives the same run every time.
 *
 * demo-traffic.ts plans the traffic, demo-loop.ts drives the engine through it, demo-report.ts
 * reads the outcome back and prints it; this file is the command.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig, type ConfigInput } from '../config/config.js';
import { startEmbeddedApp } from '../app/embedded.js';
import { embeddedGateway } from '../app/gateway/index.js';
import { startHttpServer } from '../app/http.js';
import { UsageError } from '../engine/errors.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { loadDataset, type Dataset } from '../models/datasets/index.js';
import { ClosedLoop } from './demo-loop.js';
import { percent, summarize, type DemoResult } from './demo-report.js';
import { startDemoDashboard, type DemoDashboardOptions } from './demo-dashboard.js';
import { BASE_TIME, DATASETS, FEEDBACK_MAX_DELAY_MS, FEEDBACK_MIN_DELAY_MS, FEEDBACK_MISSING, LABELED_FEEDBACK, MISLABEL_THEN_CORRECTION, planTraffic, REQUEST_INTERVAL_MS, SEED_FRACTION, SLICE_MS, splitDataset, TEST_FRACTION } from './demo-traffic.js';

export { countRawValues, type CategoryReport, type DemoResult, type PromotionReport } from './demo-report.js';
export { splitDataset, type DatasetSplit, type SplitRow } from './demo-traffic.js';

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
    trainer: { enabled: true, holdoutFraction: 0.2, minTrainSamples: 50, minHoldoutSamples: 20, promotionTest: 'mcnemar', significance: 0.05, refitOnAll: true },
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


// ---------------------------------------------------------------------------------------------
// The run

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

  const metrics = new EngineMetrics();
  const app = await startEmbeddedApp(config, { logger: silentLogger(), metrics, now: () => clock.now, trainer: { loop: false } });
  // The traffic goes through the gateway on a local port, on the simulated clock.
  const gateway = await embeddedGateway({ config, models: app.models!, registry: app.registry, privacy: app.privacy, logger: silentLogger(), metrics, ready: () => true, log: app.log, now: () => clock.now });
  const http = await startHttpServer({ host: '127.0.0.1', port: 0, metrics, logger: silentLogger(), routes: { health: () => ({ healthy: true, details: {} }) }, plugins: [gateway.plugin] }).catch(async (err: unknown) => {
    await gateway.close();
    await app.close();
    throw err;
  });
  let closeDashboard: (() => Promise<void>) | undefined;
  try {
    const dashboard = options.dashboard ? await startDemoDashboard(app, () => clock.now, options.dashboard) : undefined;
    closeDashboard = dashboard?.close;
    if (dashboard) {
      say(`dashboard: ${dashboard.url}`);
      await options.dashboard?.onReady?.(dashboard.url);
    }
    const loop = new ClosedLoop(app, config, plan, clock, say, `http://127.0.0.1:${http.port}`);
    await loop.publishSeeds(data);
    say(`traffic: ${plan.length} requests over ${((plan.length * REQUEST_INTERVAL_MS) / 60_000).toFixed(1)} simulated minutes; feedback ${FEEDBACK_MIN_DELAY_MS / 1000}-${FEEDBACK_MAX_DELAY_MS / 1000} s later, missing for ${percent(FEEDBACK_MISSING, 0)},`);
    say(`  only "correct: true/false" for ${percent(1 - (LABELED_FEEDBACK.digits ?? 0), 0)} (digits) / ${percent(1 - (LABELED_FEEDBACK['breast-cancer'] ?? 0), 0)} (breast-cancer), first mislabeled then corrected by an audit for ${percent(MISLABEL_THEN_CORRECTION, 0)}`);
    say(`retraining: trigger every ${config.trigger.minNewSamples} new samples of a category (or live accuracy < ${percent(config.trigger.minLiveAccuracy, 0)}); promote only on evidence (McNemar's exact test on the same holdout rows, p < ${config.trainer.significance}), then refit on every sample`);
    await loop.runTraffic();
    await loop.finish();
    const result = await summarize({ access: loop.access, config, runs: loop.runs, decisions: loop.decisions, plan, dataDir, started, options });
    if (dashboard) await options.dashboard?.afterTraffic?.(dashboard.url, app);
    return result;
  } finally {
    await closeDashboard?.();
    await http.close();
    await gateway.close();
    await app.close();
  }
}
