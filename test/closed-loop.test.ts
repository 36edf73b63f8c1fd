/**
 * The closed loop (issue "model cluster"): the demo's simulated traffic flows through the real
 * predictor (ONNX), the join, the retrain trigger and the built-in trainer on the embedded engine.
 * Checked here from what the run leaves behind (the model ledger on disk), not from the demo's own
 * numbers: the served model ends more accurate than the seed on a fixed test set, no promotion
 * lowered holdout accuracy, the hash chain verifies, and a seed gives the same models every run.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo, splitDataset, type DemoResult } from '../cli/demo.js';
import { directAccess, type DisplayRecord } from '../access/embedded.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { loadDataset, type DatasetName } from '../models/datasets/index.js';
import { readLedger, type LedgerView } from '../models/ledger.js';
import { loadOnnxModel } from '../models/onnx-runtime.js';
import { TRAINER_ID } from '../models/trainer-job.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { ModelVersion } from '../schemas/types.js';

/** Enough traffic for several retrains per category, small enough for two runs well under a minute. */
const REQUESTS = 800;
const SEED = 11;
const CATEGORIES: DatasetName[] = ['digits', 'breast-cancer'];

interface Run {
  dir: string;
  result: DemoResult;
  lines: string[];
  ledger: LedgerView;
}

const base = mkdtempSync(join(tmpdir(), 'sampleloop-closed-loop-'));
let first: Run;
let second: Run;

async function readLedgerOf(dataDir: string): Promise<LedgerView> {
  const log = await EmbeddedLog.open(join(dataDir, 'log'));
  try {
    return await readLedger(directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db))), 'models');
  } finally {
    await log.close();
  }
}

/** Every record of every topic of a finished run, decoded. */
async function allRecords(dataDir: string): Promise<Map<string, DisplayRecord[]>> {
  const log = await EmbeddedLog.open(join(dataDir, 'log'));
  try {
    const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    const out = new Map<string, DisplayRecord[]>();
    for (const t of await access.topics()) out.set(t.topic, await access.read(t.topic));
    return out;
  } finally {
    await log.close();
  }
}

async function demo(name: string, quiet: boolean): Promise<Run> {
  const dir = join(base, name);
  const lines: string[] = [];
  const result = await runDemo({ dataDir: dir, requests: REQUESTS, seed: SEED, quiet, out: (l) => lines.push(l) });
  return { dir, result, lines, ledger: await readLedgerOf(dir) };
}

/** Versions of a category that verified, in ledger order. */
function versions(run: Run, category: string): ModelVersion[] {
  return (run.ledger.byCategory.get(category) ?? []).flatMap((v) => (v.verification.ok && v.version ? [v.version] : []));
}

/** Accuracy of a ledger version on the category's fixed test set, with onnxruntime directly. */
async function testSetAccuracy(version: ModelVersion, category: DatasetName): Promise<number> {
  const dataset = loadDataset(category);
  const { test } = splitDataset(dataset);
  const model = await loadOnnxModel(version.onnx as Uint8Array, { featureNames: version.featureNames, classes: version.classes });
  try {
    const rows = test.map((row) => version.featureNames.map((name) => row.features[dataset.featureNames.indexOf(name)] as number));
    const predicted = await model.predictBatch(rows);
    return predicted.filter((p, i) => p.label === test[i]?.label).length / test.length;
  } finally {
    await model.close();
  }
}

beforeAll(async () => {
  first = await demo('first', false);
  second = await demo('second', true);
}, 180_000);

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

describe('closed loop: traffic → predictor → samples → trigger → trainer → ledger → predictor', () => {
  it('the test set and the labeled seed are fixed and disjoint from the traffic pool', () => {
    for (const category of CATEGORIES) {
      const split = splitDataset(loadDataset(category));
      const test = new Set(split.test.map((r) => r.index));
      expect(split.test.length + split.seed.length + split.pool.length).toBe(loadDataset(category).rows.length);
      expect(split.seed.every((r) => !test.has(r.index)) && split.pool.every((r) => !test.has(r.index))).toBe(true);
      expect(split.test.length / loadDataset(category).rows.length).toBeGreaterThan(0.2);
      expect(split.test.length / loadDataset(category).rows.length).toBeLessThan(0.3);
      expect(split.seed.length).toBeGreaterThan(5);
      expect(split.seed.length).toBeLessThan(split.pool.length / 10);
    }
  });

  it('from the seed model, test-set accuracy is higher for each category after the loop consumed the traffic', async () => {
    for (const category of CATEGORIES) {
      const chain = versions(first, category);
      const seed = chain[0] as ModelVersion;
      const final = chain[chain.length - 1] as ModelVersion;
      expect(seed).toMatchObject({ version: '1', sequence: 1, trainer: 'demo-seed' });
      expect(final.trainer).toBe(TRAINER_ID);
      const seedAccuracy = await testSetAccuracy(seed, category);
      const finalAccuracy = await testSetAccuracy(final, category);
      expect(finalAccuracy, category).toBeGreaterThan(seedAccuracy + 0.03);
      // What the demo printed is what onnxruntime says about the ledger's models.
      const reported = first.result.categories.find((c) => c.category === category);
      expect(reported).toMatchObject({ seedAccuracy, finalAccuracy, finalVersion: final.version, finalModelSha256: final.modelSha256 });
      // Close to a model trained on every label of the pool, though trained on a part of the traffic only.
      expect(Math.abs((reported?.oracleAccuracy ?? 0) - finalAccuracy), category).toBeLessThan(0.05);
    }
  });

  it('every promotion passed the gate: holdoutAccuracy >= servingHoldoutAccuracy in the ledger metrics', () => {
    for (const category of CATEGORIES) {
      const promoted = versions(first, category).slice(1);
      expect(promoted.length, `${category} promotions`).toBeGreaterThanOrEqual(1);
      for (const v of promoted) {
        expect(v.trainer).toBe(TRAINER_ID);
        expect(typeof v.metrics.holdoutAccuracy).toBe('number');
        expect(typeof v.metrics.servingHoldoutAccuracy).toBe('number');
        expect(v.metrics.holdoutAccuracy as number, `${category} v${v.version}`).toBeGreaterThanOrEqual(v.metrics.servingHoldoutAccuracy as number);
        // At least the trainer's minimum of 50 training + 20 holdout samples.
        expect(v.trainingSnapshot?.sampleCount).toBeGreaterThanOrEqual(70);
      }
      // Trained on more and more samples.
      const counts = promoted.map((v) => v.trainingSnapshot?.sampleCount ?? 0);
      expect([...counts].sort((a, b) => a - b)).toEqual(counts);
      // The demo reported exactly these promotions, and the trainer's decisions agree.
      const reported = first.result.categories.find((c) => c.category === category)?.promotions ?? [];
      expect(reported.map((p) => [p.version, p.modelSha256, p.holdoutAccuracy])).toEqual(promoted.map((v) => [v.version, v.modelSha256, v.metrics.holdoutAccuracy]));
      const decisions = first.result.decisions.filter((d) => d.category === category && d.decision === 'promoted');
      expect(decisions.map((d) => d.publishedSha256)).toEqual(promoted.map((v) => v.modelSha256));
    }
  });

  it('the model ledger verifies: every version links to the previous one of its category', () => {
    expect(first.ledger.failures).toEqual([]);
    expect(first.result.ledger).toEqual({ versions: first.ledger.versions.length, categories: 2, failures: [] });
    for (const category of CATEGORIES) {
      const chain = versions(first, category);
      chain.forEach((v, i) => {
        expect(v.sequence).toBe(i + 1);
        expect(v.prevRecordHash).toBe(i === 0 ? '' : (chain[i - 1] as ModelVersion).recordHash);
      });
    }
  });

  it('is deterministic for a fixed seed: two runs publish the same models (same sha256) and the same ledger', () => {
    for (const category of CATEGORIES) {
      const a = versions(first, category);
      const b = versions(second, category);
      expect(b.map((v) => v.modelSha256)).toEqual(a.map((v) => v.modelSha256));
      expect(b.map((v) => v.recordHash)).toEqual(a.map((v) => v.recordHash));
      expect(second.result.categories.find((c) => c.category === category)?.finalModelSha256).toBe(a[a.length - 1]?.modelSha256);
    }
    expect(second.result.decisions).toEqual(first.result.decisions);
  });

  it('labels match the ground truth, sensitive values never leave the engine, broken input is dead-lettered', () => {
    expect(first.result.labelCorrectness).toBe(1);
    expect(first.result.leaks).toBe(0);
    expect(first.result.scannedRecords).toBeGreaterThan(REQUESTS);
    expect(first.result.counts.deadLetters).toBe(3);
    expect(first.result.counts.requests).toBe(REQUESTS);
    for (const c of first.result.categories) {
      expect(c.samples).toBeGreaterThan(0.75 * c.requests);
      expect(c.samples + c.unmatched).toBeLessThanOrEqual(c.requests);
    }
  });

  it('no raw name, phone or ID number is in any topic: the requests were protected on ingest, the outputs by the engine', async () => {
    const topics = await allRecords(first.dir);
    const requests = (topics.get('requests') ?? []).map((r) => r.value as { attributes?: Record<string, string> } | null);
    expect(requests.length).toBeGreaterThanOrEqual(REQUESTS);
    // The demo writes its requests through the ingest protection: the input topic holds tokens and masks, no raw value.
    for (const r of requests.filter((x) => x?.attributes !== undefined)) {
      expect(r!.attributes!.name).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
      expect(r!.attributes!.idNumber).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
      expect(r!.attributes!.phone).toMatch(/^\*+\d{4}$/);
    }
    // The demo's raw values (cli/demo.ts planTraffic): "Customer <n>", "+44 7700 9<n>", "ID9<7 digits>"; none in any topic.
    const rawPattern = /Customer \d|\+44 7700 9\d|ID9\d{7}/;
    expect(rawPattern.test(JSON.stringify({ attributes: { phone: '+44 7700 9123' } }))).toBe(true);
    expect(rawPattern.test(JSON.stringify(requests))).toBe(false);
    let scanned = 0;
    for (const [topic, records] of topics) {
      if (topic !== 'requests' && topic !== 'feedback') scanned += records.length;
      expect(rawPattern.exec(JSON.stringify(records))?.[0], topic).toBeUndefined();
    }
    expect(scanned).toBe(first.result.scannedRecords);
    // The protected forms are there instead: tokens and masked phones.
    const sample = (topics.get('samples')?.[0]?.value ?? {}) as { attributes?: Record<string, string> };
    expect(sample.attributes?.name).toMatch(/^tok_/);
    expect(sample.attributes?.phone).toMatch(/^\*+\d{4}$/);
  });

  it('prints progress and each promotion, then the summary; --quiet prints only the summary', () => {
    const text = first.lines.join('\n');
    expect(text).toMatch(/traffic: +\d+% \| +\d+\/800 requests \| live accuracy/);
    expect(text).toMatch(/promoted digits v2 after \d+ samples \([a-z-]+\): holdout \d+\.\d% vs \d+\.\d% for v1 on \d+ held-out samples \(McNemar p = \d\.\d+\) -> test-set accuracy \d+\.\d%/);
    expect(text).toMatch(/model ledger: ok: \d+ version\(s\) of 2 categories verified/);
    expect(text).toContain('raw sensitive values found in outputs: 0');
    const quiet = second.lines.join('\n');
    expect(quiet).not.toContain('traffic:');
    expect(quiet).not.toMatch(/^ {2}promoted /m);
    expect(quiet).toMatch(/^ {2}digits +\d+\.\d% +\d+\.\d% \(v\d+\) +\d+\.\d%/m);
  });

  it('writes a self-contained HTML chart with one SVG panel per category and the oracle dashed', () => {
    const path = first.result.chartPath as string;
    expect(path).toBe(join(first.dir, 'accuracy.html'));
    expect(existsSync(path)).toBe(true);
    const html = readFileSync(path, 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).not.toMatch(/<script|<link|src=|href=/i);
    expect(html.match(/stroke-dasharray/g)?.length).toBeGreaterThanOrEqual(2);
    for (const category of CATEGORIES) expect(html).toContain(`>${category}</text>`);
  });
});
