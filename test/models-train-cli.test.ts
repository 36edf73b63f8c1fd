/**
 * `models train` (from a labeled file and from the samples topic), `models evaluate`, `models
 * export` and `produce requests --format csv`, in process through cli/main.ts, on the breast-cancer
 * dataset shipped in models/datasets/.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { parseConfig } from '../config/config.js';
import { loadDataset } from '../models/datasets/index.js';
import { evaluate, rocAuc } from '../models/evaluation.js';
import { modelBytes, publishVersion, readLedger } from '../models/ledger.js';
import { loadOnnxModel } from '../models/onnx-runtime.js';
import { splitHoldout, type TrainingRow } from '../models/training-set.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { LabeledSample, ModelVersion } from '../schemas/types.js';
import { runCli } from './helpers/cli-in-process.js';
import { csvText, splitRows, writeCsv, writeJsonLines } from './helpers/tables.js';

const cancer = loadDataset('breast-cancer');
const { train, test } = splitRows(cancer.rows);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-train-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

/** The rows as the trainer splits them: only the row ID and the label decide the holdout. */
function trainingRows(rows: typeof train, id: (i: number) => string): TrainingRow[] {
  return rows.map((r, i) => ({ requestId: id(i), features: {}, vector: r.features, label: r.label }));
}

async function ledgerOf(dataDir: string): Promise<ModelVersion[]> {
  const log = await openEmbeddedLog(parseConfig({ dataDir }));
  try {
    const view = await readLedger(directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db))));
    return view.versions.flatMap((v) => (v.version ? [v.version] : []));
  } finally {
    await log.close();
  }
}

describe('models train --from <file>', () => {
  it('trains on a gzip CSV, publishes version 1 with metrics and the file snapshot; evaluate reports what onnxruntime predicts', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const trainFile = join(dir, 'train.csv.gz');
    const testFile = join(dir, 'test.csv');
    writeCsv(trainFile, cancer.featureNames, train, { gzip: true });
    writeCsv(testFile, cancer.featureNames, test);

    const trained = await runCli('models', 'train', '--category', 'cancer', '--from', trainFile, '--data-dir', dataDir);
    expect(trained.stderr).toBe('');
    expect(trained.code).toBe(0);
    const [version] = await ledgerOf(dataDir);
    expect(version).toBeDefined();
    const v = version as ModelVersion;
    expect(v.version).toBe('1');
    expect(v.featureNames).toEqual(cancer.featureNames);
    expect(v.classes).toEqual(['benign', 'malignant']);
    expect(v.trainingSnapshot).toEqual({ topic: `file:sha256:${createHash('sha256').update(readFileSync(trainFile)).digest('hex')}`, offsets: [], sampleCount: train.length });
    expect(v.metrics.trainSize! + v.metrics.holdoutSize!).toBe(train.length);
    expect(v.metrics.holdoutAccuracy).toBeGreaterThan(0.93);
    expect(JSON.parse(trained.stdout[0] as string)).toMatchObject({ category: 'cancer', version: '1', published: true, modelSha256: v.modelSha256 });
    // signed with the data dir's key, so the engine's default trust policy serves it
    const listed = await runCli('models', 'list', '--json', '--data-dir', dataDir);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout[0] as string)).toMatchObject({ category: 'cancer', version: '1', verified: true, serving: true });
    expect(JSON.parse(listed.stdout[0] as string).signerKeyId).toMatch(/.+/);

    // evaluate: the same numbers as onnxruntime's own predictions on the test rows, computed here
    const evaluated = await runCli('models', 'evaluate', '--category', 'cancer', '--from', testFile, '--json', '--data-dir', dataDir);
    expect(evaluated.code).toBe(0);
    const report = JSON.parse(evaluated.stdout[0] as string) as ReturnType<typeof evaluate> & { version: string; skippedRows: number };
    const model = await loadOnnxModel(modelBytes(v), { featureNames: v.featureNames, classes: v.classes });
    const predictions = await model.predictBatch(test.map((r) => r.features));
    await model.close();
    const correct = predictions.filter((p, i) => p.label === test[i]?.label).length;
    expect(report.version).toBe('1');
    expect(report.rows).toBe(test.length);
    expect(report.skippedRows).toBe(0);
    expect(report.accuracy).toBeCloseTo(correct / test.length, 12);
    expect(report.accuracy).toBeGreaterThan(0.93);
    const tp = predictions.filter((p, i) => p.label === 'malignant' && test[i]?.label === 'malignant').length;
    const fp = predictions.filter((p, i) => p.label === 'malignant' && test[i]?.label === 'benign').length;
    const fn = predictions.filter((p, i) => p.label === 'benign' && test[i]?.label === 'malignant').length;
    expect(report.confusion).toEqual([
      [test.filter((r) => r.label === 'benign').length - fp, fp],
      [fn, tp],
    ]);
    expect(report.perClass[1]).toMatchObject({ class: 'malignant', precision: tp / (tp + fp), recall: tp / (tp + fn), support: tp + fn });
    // ROC AUC by counting every (positive, negative) pair
    let pairs = 0;
    let wins = 0;
    test.forEach((a, i) => {
      if (a.label !== 'malignant') return;
      test.forEach((b, j) => {
        if (b.label !== 'benign') return;
        pairs++;
        const sa = predictions[i]?.scores.malignant ?? 0;
        const sb = predictions[j]?.scores.malignant ?? 0;
        wins += sa > sb ? 1 : sa === sb ? 0.5 : 0;
      });
    });
    expect(report.rocAuc).toBeCloseTo(wins / pairs, 12);
    const logLoss = -test.reduce((s, r, i) => s + Math.log(Math.min(1 - 1e-15, Math.max(1e-15, predictions[i]?.scores[r.label] ?? 0))), 0) / test.length;
    expect(report.logLoss).toBeCloseTo(logLoss, 12);

    const table = await runCli('models', 'evaluate', '--category', 'cancer', '--from', testFile, '--data-dir', dataDir);
    expect(table.code).toBe(0);
    expect(table.stdout.join('\n')).toContain(`accuracy ${report.accuracy.toFixed(4)}`);
    expect(table.stdout.join('\n')).toContain('confusion matrix');
  });

  it('reads JSON lines with --features and --id; the row IDs decide the holdout', async () => {
    const dir = tempDir();
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, train.map((r, i) => JSON.stringify({ id: `patient-${i}`, features: { radius: r.features[0], texture: r.features[1], area: r.features[3] }, diagnosis: r.label })).join('\n') + '\n');
    const run = await runCli('models', 'train', '--category', 'c', '--from', file, '--label', 'diagnosis', '--features', 'radius,texture,area', '--id', 'id', '--dry-run', '--data-dir', join(dir, 'data'));
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout[0] as string) as { published: boolean; features: string[]; metrics: Record<string, number> };
    expect(out.published).toBe(false);
    expect(out.features).toEqual(['radius', 'texture', 'area']);
    // the holdout is stratified by class, each class ordered by the hash of its row IDs
    expect(out.metrics.holdoutSize).toBe(splitHoldout(trainingRows(train, (i) => `patient-${i}`), 0.2).holdout.length);
  });

  it('refuses too small a file with exit code 1 and the reason, publishing nothing', async () => {
    const dir = tempDir();
    const file = join(dir, 'small.jsonl');
    writeJsonLines(file, cancer.featureNames, train.slice(0, 30));
    const run = await runCli('models', 'train', '--category', 'c', '--from', file, '--data-dir', join(dir, 'data'));
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/too-few-samples.*need 50 and 20/);
    expect(await ledgerOf(join(dir, 'data'))).toEqual([]);
  });

  it('a category with a serving version: a candidate the promotion gate does not pass is not published (exit 1, candidate-not-better)', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const good = join(dir, 'good.csv');
    writeCsv(good, cancer.featureNames, train);
    expect((await runCli('models', 'train', '--category', 'c', '--from', good, '--data-dir', dataDir)).code).toBe(0);
    // the same rows and labels (so the same stratified holdout, chosen by label and line number) with the
    // features of the training rows replaced by noise: the candidate learns nothing and loses to version 1
    const holdout = new Set(splitHoldout(trainingRows(train, (i) => `row-${i + 2}`), 0.2).holdout.map((r) => r.requestId));
    let seed = 7;
    const noise = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const noisy = join(dir, 'noisy.csv');
    writeCsv(noisy, cancer.featureNames, train.map((r, i) => (holdout.has(`row-${i + 2}`) ? r : { ...r, features: r.features.map(() => noise()) })));
    const run = await runCli('models', 'train', '--category', 'c', '--from', noisy, '--data-dir', dataDir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/not published \(candidate-not-better\): candidate 0\.\d+ vs serving 0\.9\d+ on \d+ holdout samples \(\d+ right only for the candidate, \d+ only for the serving version\): McNemar exact p = [\d.e-]+ needs < 0\.05/);
    expect((await ledgerOf(dataDir)).map((v) => v.version)).toEqual(['1']);
  });

  it('a missing label column is a usage error (exit 2)', async () => {
    const dir = tempDir();
    const file = join(dir, 't.csv');
    writeCsv(file, cancer.featureNames, train.slice(0, 10));
    const run = await runCli('models', 'train', '--category', 'c', '--from', file, '--label', 'diagnosis', '--data-dir', join(dir, 'data'));
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no column "diagnosis"');
  });
});

describe('models train --from samples', () => {
  it('trains on the category\'s samples on the samples topic and records the topic snapshot', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const log = await openEmbeddedLog(parseConfig({ dataDir }));
    const sample = (r: (typeof train)[number], i: number, category: string): LabeledSample => ({
      requestId: `req-${i}`,
      category,
      features: Object.fromEntries(cancer.featureNames.map((f, j) => [f, r.features[j] as number])),
      attributes: {},
      label: r.label,
      labelSource: 'CONFIRMED',
      predictedLabel: r.label,
      modelVersion: '',
      requestTimestamp: 1_750_000_000_000 + i,
      feedbackTimestamp: 1_750_000_000_000 + i,
      revision: 1,
      origin: 'replay',
    });
    try {
      const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
      await access.produceAvro!('samples', 'LabeledSample', [
        ...train.map((r, i) => ({ key: `req-${i}`, value: sample(r, i, 'cancer'), timestamp: 1 })),
        ...test.slice(0, 10).map((r, i) => ({ key: `other-${i}`, value: { ...sample(r, i, 'other'), requestId: `other-${i}` }, timestamp: 1 })),
      ]);
    } finally {
      await log.close();
    }
    const run = await runCli('models', 'train', '--category', 'cancer', '--from', 'samples', '--data-dir', dataDir);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const [v] = await ledgerOf(dataDir);
    expect(v?.trainingSnapshot).toEqual({ topic: 'samples', offsets: [{ partition: 0, offset: train.length + 10 }], sampleCount: train.length });
    expect(v!.metrics.trainSize! + v!.metrics.holdoutSize!).toBe(train.length);
    expect(v!.metrics.holdoutAccuracy).toBeGreaterThan(0.93);

    // the same samples exported and trained on from the file: the export's own columns (revision,
    // timestamps, ...) are not features, and rows are identified by requestId, so the holdout is the same
    for (const ext of ['csv', 'jsonl']) {
      const exported = join(dir, `samples.${ext}`);
      expect((await runCli('export', 'samples', '--category', 'cancer', '--out', exported, '--data-dir', dataDir)).code).toBe(0);
      // (another category: the serving version of `cancer` was refitted on every sample, holdout included, so no
      // candidate can beat it on that holdout; the dry run is about the columns and rows read)
      const fromFile = await runCli('models', 'train', '--category', 'cancer-from-file', '--from', exported, '--dry-run', '--data-dir', dataDir);
      expect(fromFile.code, fromFile.stderr).toBe(0);
      const out = JSON.parse(fromFile.stdout[0] as string) as { features: string[]; metrics: Record<string, number> };
      expect([...out.features].sort()).toEqual([...cancer.featureNames].sort());
      expect(out.metrics.holdoutSize).toBe(v!.metrics.holdoutSize);
      expect(out.metrics.trainSize).toBe(v!.metrics.trainSize);
    }
  });
});

describe('models export', () => {
  it('round-trips publish → export → publish byte-identically, with the sidecar publish reads', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const trainFile = join(dir, 'train.csv');
    writeCsv(trainFile, cancer.featureNames, train);
    expect((await runCli('models', 'train', '--category', 'cancer', '--from', trainFile, '--data-dir', dataDir)).code).toBe(0);
    const first = join(dir, 'cancer-v1.onnx');
    const exported = await runCli('models', 'export', '--category', 'cancer', '--out', first, '--data-dir', dataDir);
    expect(exported.code).toBe(0);
    const [v1] = await ledgerOf(dataDir);
    expect(readFileSync(first).equals(modelBytes(v1!))).toBe(true);
    const sidecar = JSON.parse(readFileSync(join(dir, 'cancer-v1.json'), 'utf8')) as Record<string, unknown>;
    expect(sidecar).toMatchObject({ featureNames: v1!.featureNames, classes: v1!.classes, category: 'cancer', version: '1', modelSha256: v1!.modelSha256 });

    const published = await runCli('models', 'publish', first, '--category', 'copy', '--data-dir', dataDir);
    expect(published.code).toBe(0);
    const second = join(dir, 'copy.onnx');
    expect((await runCli('models', 'export', '--category', 'copy', '--version', '1', '--out', second, '--data-dir', dataDir)).code).toBe(0);
    expect(readFileSync(second).equals(readFileSync(first))).toBe(true);
    const copy = (await ledgerOf(dataDir)).find((v) => v.category === 'copy')!;
    expect(copy.modelSha256).toBe(v1!.modelSha256);
    expect(copy.featureNames).toEqual(v1!.featureNames);
    expect(copy.classes).toEqual(v1!.classes);

    // a record the engine does not trust (unsigned, appended by someone without the key) chains onto
    // version 1: export and evaluate still take the serving version, as the gateway does
    const log = await openEmbeddedLog(parseConfig({ dataDir }));
    try {
      await publishVersion(directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db))), { category: 'cancer', version: '2', onnx: modelBytes(v1!), featureNames: v1!.featureNames, classes: v1!.classes, metrics: {}, trainer: 'outsider', createdAt: Date.now() });
    } finally {
      await log.close();
    }
    const afterOutsider = join(dir, 'serving.onnx');
    const servingExport = await runCli('models', 'export', '--category', 'cancer', '--out', afterOutsider, '--data-dir', dataDir);
    expect(servingExport.code).toBe(0);
    expect(JSON.parse(servingExport.stdout[0] as string)).toMatchObject({ version: '1' });
    const outsider = await runCli('models', 'export', '--category', 'cancer', '--version', '2', '--out', afterOutsider, '--data-dir', dataDir);
    expect(outsider.code).toBe(1);
    expect(outsider.stderr).toContain('fails verification (unsigned');
    const testFile = join(dir, 'test.csv');
    writeCsv(testFile, cancer.featureNames, test);
    const evaluated = await runCli('models', 'evaluate', '--category', 'cancer', '--from', testFile, '--json', '--data-dir', dataDir);
    expect(evaluated.code).toBe(0);
    expect(JSON.parse(evaluated.stdout[0] as string)).toMatchObject({ version: '1' });

    const unknown = await runCli('models', 'export', '--category', 'cancer', '--version', '9', '--out', second, '--data-dir', dataDir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('has no version "9"');
  });
});

describe('evaluation metrics', () => {
  it('log loss and ROC AUC as scikit-learn documents them', () => {
    // sklearn.metrics.log_loss(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]]) = 0.21616...
    const rows = [
      { label: 'spam', predicted: 'spam', scores: { ham: 0.1, spam: 0.9 } },
      { label: 'ham', predicted: 'ham', scores: { ham: 0.9, spam: 0.1 } },
      { label: 'ham', predicted: 'ham', scores: { ham: 0.8, spam: 0.2 } },
      { label: 'spam', predicted: 'spam', scores: { ham: 0.35, spam: 0.65 } },
    ];
    expect(evaluate(rows, ['ham', 'spam']).logLoss).toBeCloseTo(0.21616187468057912, 12);
    // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75
    const auc = rocAuc(
      [0.1, 0.4, 0.35, 0.8].map((s, i) => ({ label: i < 2 ? 'n' : 'p', predicted: 'p', scores: { p: s } })),
      'p',
    );
    expect(auc).toBe(0.75);
  });
});

describe('produce', () => {
  it('gzip JSON lines, unchanged, with progress on stderr when asked', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const lines = test.slice(0, 30).map((r, i) => JSON.stringify({ requestId: `g-${i}`, category: 'cancer', features: { x: r.features[0] }, attributes: {}, timestamp: 1_750_000_000_000 + i, source: 't' }));
    const file = join(dir, 'requests.jsonl.gz');
    writeFileSync(file, gzipSync(`${lines.join('\n')}\n`));
    const run = await runCli('produce', 'requests', '--file', file, '--progress', '--data-dir', dataDir);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^produce: 30 records \(100 % of the file\), [\d.]+ s\n$/);
    const consumed = await runCli('consume', 'requests', '--data-dir', dataDir);
    expect(consumed.stdout.map((l) => JSON.stringify(JSON.parse(l)))).toEqual(lines);
  });
});

describe('produce requests --format csv', () => {
  it('makes one Request per row: generated IDs from the file hash and line, numeric features, named attributes, the label left out', async () => {
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const file = join(dir, 'requests.csv');
    const rows = test.slice(0, 25);
    const channels = ['web', 'app', 'branch, north'];
    writeFileSync(file, csvText(cancer.featureNames, rows, { header: 'channel', cell: (i) => `"${channels[i % 3]}"` }));
    const run = await runCli('produce', 'requests', '--file', file, '--category', 'cancer', '--attributes', 'channel', '--ignore', 'label', '--data-dir', dataDir);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout[0] as string)).toEqual({ topic: 'requests', appended: 25, skipped: 0 });
    const consumed = await runCli('consume', 'requests', '--data-dir', dataDir);
    const requests = consumed.stdout.map((l) => JSON.parse(l) as { requestId: string; category: string; features: Record<string, number>; attributes: Record<string, string>; source: string });
    const prefix = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
    expect(requests).toHaveLength(25);
    requests.forEach((r, i) => {
      expect(r.requestId).toBe(`${prefix}-${i + 2}`); // line 1 is the header
      expect(r.category).toBe('cancer');
      expect(r.features).toEqual(Object.fromEntries(cancer.featureNames.map((f, j) => [f, rows[i]!.features[j]])));
      expect(r.attributes).toEqual({ channel: channels[i % 3] });
      expect(r.source).toBe('file');
    });
  });
});

describe('a CSV without a header row', () => {
  it('is refused (exit 2) by models train, models evaluate and produce requests, before any row is used', async () => {
    // digits' pixels are small integers: the first data row, taken as the header, repeats names
    const digits = loadDataset('digits');
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const file = join(dir, 'digits-no-header.csv');
    writeFileSync(file, digits.rows.slice(0, 300).map((r) => [...r.features, r.label].join(',')).join('\n') + '\n');
    const message = /digits-no-header\.csv, line 1: the CSV header names column "0" twice; the first row must name the columns \(a header row\), each once/;

    const trained = await runCli('models', 'train', '--category', 'd', '--from', file, '--label', '0', '--data-dir', dataDir);
    expect(trained.code).toBe(2);
    expect(trained.stderr).toMatch(message);
    expect(await ledgerOf(dataDir)).toEqual([]);

    const produced = await runCli('produce', 'requests', '--file', file, '--category', 'd', '--data-dir', dataDir);
    expect(produced.code).toBe(2);
    expect(produced.stderr).toMatch(message);
    expect((await runCli('consume', 'requests', '--data-dir', dataDir)).stdout).toEqual([]);

    const good = join(dir, 'train.csv');
    writeCsv(good, cancer.featureNames, train);
    expect((await runCli('models', 'train', '--category', 'c', '--from', good, '--data-dir', dataDir)).code).toBe(0);
    const evaluated = await runCli('models', 'evaluate', '--category', 'c', '--from', file, '--label', '0', '--data-dir', dataDir);
    expect(evaluated.code).toBe(2);
    expect(evaluated.stderr).toMatch(message);
  });
});
