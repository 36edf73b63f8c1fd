/**
 * The demo's report: what the loop did per category, read back from every topic and the ledger once
 * the traffic is over; the scan of every output for raw sensitive values; the accuracy chart; the
 * printed summary.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { SampleloopConfig } from '../config/config.js';
import type { LogAccess } from '../access/embedded.js';
import { readLedger, trustPolicyFor } from '../models/ledger.js';
import type { TrainerDecision } from '../models/trainer-job.js';
import type { LabeledSample } from '../schemas/types.js';
import { accuracyChartHtml, type AccuracyPoint } from './demo-chart.js';
import type { DatasetSplit, PlannedRequest } from './demo-traffic.js';

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

/** What the report needs of the demo's options. */
export interface ReportOptions {
  seed: number;
  /** Where to write the HTML chart; default `<dataDir>/accuracy.html`; null: none. */
  chartPath?: string | null;
  out: (line: string) => void;
}


export interface CategoryRun {
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

export function percent(x: number, digits = 1): string {
  return `${(100 * x).toFixed(digits)}%`;
}


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

export interface SummaryInput {
  access: LogAccess;
  config: SampleloopConfig;
  runs: Map<string, CategoryRun>;
  decisions: TrainerDecision[];
  plan: readonly PlannedRequest[];
  dataDir: string;
  started: number;
  options: ReportOptions;
}

export async function summarize(input: SummaryInput): Promise<DemoResult> {
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

  const ledger = await readLedger(access, config.topics.models, trustPolicyFor(config, { generate: false }));
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
  if (ledger.failures.length === 0) out(`model ledger: ok: ${ledger.versions} version(s) of ${ledger.categories} categories verified (ONNX bytes, record hashes, hash chain, signatures)`);
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

