/**
 * `sampleloop models list | publish | verify` (in process, through cli/main.ts), with and without a
 * running engine, and the scikit-learn model published through the CLI serving breast-cancer requests.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { engineInfoPath } from '../cli/context.js';
import { parseConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog, startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { decodeEntry, encodeEntry, KEY_RECORD, partitionPrefix, recordKey } from '../engine/embedded/log-codec.js';
import { startHttpServer } from '../app/http.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { packageRoot } from '../config/paths.js';
import { loadDataset } from '../models/datasets/index.js';
import { buildVersion, readLedger } from '../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx, modelSha256 } from '../models/onnx-export.js';
import { loadOnnxModel } from '../models/onnx-runtime.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { Prediction } from '../schemas/types.js';
import { runCli } from './helpers/cli-in-process.js';

const SKLEARN_ONNX = join(packageRoot(), 'models', 'sklearn', 'breast-cancer-sklearn.onnx');
const sidecar = JSON.parse(readFileSync(join(packageRoot(), 'models', 'sklearn', 'breast-cancer-sklearn.json'), 'utf8')) as { featureNames: string[]; classes: string[] };
const cancer = loadDataset('breast-cancer');
const digits = loadDataset('digits');
const T0 = 1_750_000_000_000;

const dirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  vi.restoreAllMocks();
  while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

const cli = runCli;

function digitsOnnx(rows: number, version: string): Uint8Array {
  const model = trainLogistic(digits.rows.slice(0, rows), digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 40 });
  return exportOnnx(model, { version, category: 'digits' });
}

function configFor(dataDir: string) {
  return parseConfig({ dataDir, log: { level: 'silent' }, privacy: { keyEnv: 'SAMPLELOOP_MODELS_CLI_TEST_UNUSED_KEY' }, predictor: { enabled: true }, http: { port: 0 } });
}

function requestsOf(dataset: typeof cancer, category: string, prefix: string): string {
  return dataset.rows
    .map((row, i) => JSON.stringify({ requestId: `${prefix}-${i}`, category, features: Object.fromEntries(dataset.featureNames.map((f, j) => [f, row.features[j]])), timestamp: T0 + i }))
    .join('\n');
}

/** Flips one byte inside the ONNX bytes of the stored models-topic record at `offset` (the log must not be open elsewhere). */
async function tamperStoredModel(dataDir: string, offset: number, onnx: Uint8Array): Promise<void> {
  const log = await openEmbeddedLog(configFor(dataDir));
  try {
    const key = recordKey(partitionPrefix(KEY_RECORD, 'models', 0), offset);
    const entry = decodeEntry(Buffer.from(log.db.get(key) as Buffer));
    const value = Buffer.from(entry.value as Buffer);
    const at = value.indexOf(Buffer.from(onnx)) + 500;
    value[at] = (value[at] as number) ^ 0x10;
    log.db.write([{ type: 'put', key, value: encodeEntry({ ...entry, value }) }]);
  } finally {
    await log.close();
  }
}

describe('models publish / list with the scikit-learn model', () => {
  it('publishes the .onnx with its sidecar JSON, lists it verified, and serves breast-cancer requests with it', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const published = await cli('models', 'publish', SKLEARN_ONNX, '--category', 'breast-cancer', '--metric', 'holdoutAccuracy=0.9824', '-d', dataDir);
    expect(published.code).toBe(0);
    const out = JSON.parse(published.stdout[0] as string) as Record<string, unknown>;
    const sha = modelSha256(readFileSync(SKLEARN_ONNX));
    expect(out).toMatchObject({ category: 'breast-cancer', version: '1', sequence: 1, modelSha256: sha, prevRecordHash: '', features: 30, classes: ['benign', 'malignant'] });

    const listed = await cli('models', 'list', '-d', dataDir);
    expect(listed.code).toBe(0);
    expect(listed.stdout[0]).toMatch(/^category\s+version\s+seq\s+sha256\s+verified\s+metrics$/);
    expect(listed.stdout[1]).toMatch(new RegExp(`^breast-cancer\\s+1 \\*\\s+1\\s+${sha.slice(0, 12)}\\s+yes\\s+holdoutAccuracy=0.9824$`));
    const json = await cli('models', 'list', '--json', '-d', dataDir);
    expect(json.stdout.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ category: 'breast-cancer', version: '1', sequence: 1, modelSha256: sha, verified: true, serving: true, trainer: 'external', metrics: { holdoutAccuracy: 0.9824 } }),
    ]);

    const app = await startEmbeddedApp(configFor(dataDir), { logger: silentLogger(), metrics: new EngineMetrics() });
    try {
      const access = directAccess(app.log, app.registry);
      await access.produce('requests', requestsOf(cancer, 'breast-cancer', 'bc'));
      await app.runtime.runUntilIdleAsync();
      const predictions = (await access.read('predictions')).map((r) => r.value as Prediction);
      expect(predictions).toHaveLength(cancer.rows.length);
      // exactly what the model gives when run directly
      const direct = await loadOnnxModel(readFileSync(SKLEARN_ONNX), { featureNames: sidecar.featureNames });
      const expected = await direct.predictBatch(cancer.rows.map((r) => r.features));
      await direct.close();
      const byId = new Map(predictions.map((p) => [p.requestId, p]));
      cancer.rows.forEach((_, i) => {
        const p = byId.get(`bc-${i}`) as Prediction;
        expect(p.predictedLabel).toBe(expected[i]?.label);
        expect(p.scores.benign).toBeCloseTo(expected[i]?.scores.benign as number, 6);
        expect(p.modelHash).toBe(sha);
      });
      // known rows: the first rows of the dataset (rows 0-2 malignant, row 19 benign) are classified right
      expect([0, 1, 2, 19].map((i) => `${i}:${byId.get(`bc-${i}`)?.predictedLabel}`)).toEqual([0, 1, 2, 19].map((i) => `${i}:${cancer.rows[i]?.label}`));
      expect(cancer.rows[0]?.label).toBe('malignant');
      expect(cancer.rows[19]?.label).toBe('benign');
      const right = cancer.rows.filter((r, i) => byId.get(`bc-${i}`)?.predictedLabel === r.label).length;
      expect(right / cancer.rows.length).toBeGreaterThan(0.95);
    } finally {
      await app.close();
    }
  });

  it('takes features and classes from a sampleloop export\'s metadata, and refuses a model that does not name its features', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const files = tempDir('sampleloop-models-cli-files-');
    const digitsFile = join(files, 'digits.onnx');
    writeFileSync(digitsFile, digitsOnnx(200, '1'));
    const ok = await cli('models', 'publish', digitsFile, '--category', 'digits', '--version', 'first', '-d', dataDir);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout[0] as string)).toMatchObject({ version: 'first', features: 64, classes: digits.classes });

    const bare = join(files, 'no-sidecar.onnx');
    copyFileSync(SKLEARN_ONNX, bare);
    const refused = await cli('models', 'publish', bare, '--category', 'breast-cancer', '-d', dataDir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('does not name its features: pass --features');
    const wrongClasses = await cli('models', 'publish', bare, '--category', 'breast-cancer', '--classes', 'a,b,c', '--features', sidecar.featureNames.join(','), '-d', dataDir);
    expect(wrongClasses.code).toBe(2);
    expect(wrongClasses.stderr).toContain('2 probability columns but 3 class labels');
    const withFlags = await cli('models', 'publish', bare, '--category', 'breast-cancer', '--features', sidecar.featureNames.join(','), '-d', dataDir);
    expect(withFlags.code).toBe(0);
    const duplicate = await cli('models', 'publish', digitsFile, '--category', 'digits', '--version', 'first', '-d', dataDir);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain('already has a version "first"');
    const missing = await cli('models', 'publish', join(files, 'nope.onnx'), '--category', 'x', '-d', dataDir);
    expect(missing.code).toBe(2);

    const list = await cli('models', 'list', '--json', '-d', dataDir);
    expect(list.stdout.map((l) => JSON.parse(l) as { category: string; version: string; verified: boolean }).map((v) => `${v.category}:${v.version}:${v.verified}`)).toEqual([
      'digits:first:true',
      'breast-cancer:1:true',
    ]);
  });

  it('refuses classes the graph orders differently, and a model whose classes are not the configured category\'s', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const files = tempDir('sampleloop-models-cli-files-');
    const bare = join(files, 'cancer.onnx'); // no sidecar: the ZipMap names the classes benign, malignant
    copyFileSync(SKLEARN_ONNX, bare);
    const features = sidecar.featureNames.join(',');
    const swapped = await cli('models', 'publish', bare, '--category', 'breast-cancer', '--features', features, '--classes', 'malignant,benign', '-d', dataDir);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toContain('--classes gives the classes ["malignant","benign"] but the model\'s graph orders its probability columns ["benign","malignant"]');

    const config = join(files, 'config.json');
    writeFileSync(config, JSON.stringify({ log: { level: 'silent' }, categories: { 'breast-cancer': { classes: ['benign', 'malignant'] } } }));
    const numbered = await cli('models', 'publish', bare, '-c', config, '--category', 'breast-cancer', '--features', features, '--classes', '0,1', '-d', dataDir);
    expect(numbered.code).toBe(2);
    expect(numbered.stderr).toContain('predicts class(es) ["0","1"] that category "breast-cancer" does not have (categories.breast-cancer.classes = ["benign","malignant"])');

    const ok = await cli('models', 'publish', bare, '-c', config, '--category', 'breast-cancer', '--features', features, '-d', dataDir);
    expect(ok.code).toBe(0);
    expect(ok.stderr).not.toContain('warning');
    const typo = await cli('models', 'publish', bare, '-c', config, '--category', 'breast-cancr', '--features', features, '-d', dataDir);
    expect(typo.code).toBe(0);
    expect(typo.stderr).toContain('warning: category "breast-cancr" is not under categories in the configuration ("breast-cancer"); check the name');
    expect(JSON.parse(ok.stdout[0] as string)).toMatchObject({ version: '1', classes: ['benign', 'malignant'] });
    const list = await cli('models', 'list', '--json', '-d', dataDir);
    expect(list.stdout).toHaveLength(2);
  });
});

describe('models publish --snapshot (an external trainer records the trigger it trained on)', () => {
  it('stores the trigger\'s snapshot as trainingSnapshot, from the snapshot or the whole trigger, and refuses a malformed one', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const files = tempDir('sampleloop-models-cli-files-');
    const file = join(files, 'digits.onnx');
    writeFileSync(file, digitsOnnx(150, '1'));
    const snapshot = { topic: 'samples', offsets: [{ partition: 0, offset: 348 }, { partition: 1, offset: 252 }], sampleCount: 600 };
    const trigger = { triggerId: 'digits-1-1', category: 'digits', reason: 'sample-count', details: {}, servingVersion: '1', snapshot, createdAt: T0 };
    expect((await cli('models', 'publish', file, '--category', 'digits', '--snapshot', JSON.stringify(snapshot), '-d', dataDir)).code).toBe(0);
    expect((await cli('models', 'publish', file, '--category', 'digits', '--snapshot', JSON.stringify(trigger), '--trainer', 'bank/1', '-d', dataDir)).code).toBe(0);
    expect((await cli('models', 'publish', file, '--category', 'digits', '-d', dataDir)).code).toBe(0);
    for (const bad of ['{"topic":"samples"}', 'not json', '{"topic":"samples","offsets":[{"partition":0,"offset":-1}],"sampleCount":3}']) {
      const refused = await cli('models', 'publish', file, '--category', 'digits', '--snapshot', bad, '-d', dataDir);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('--snapshot: ');
    }
    const log = await openEmbeddedLog(configFor(dataDir));
    try {
      const view = await readLedger(directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db))));
      expect(view.failures).toEqual([]);
      expect(view.versions.map((v) => [v.version?.version, v.version?.trainer, v.version?.trainingSnapshot])).toEqual([
        ['1', 'external', snapshot],
        ['2', 'bank/1', snapshot],
        ['3', 'external', null],
      ]);
    } finally {
      await log.close();
    }

    const list = await cli('models', 'list', '--json', '-d', dataDir);
    const listed = list.stdout.map((l) => JSON.parse(l) as { version: string; featureNames: string[]; classes: string[]; trainingSnapshot: unknown; serving: boolean });
    expect(listed.map((v) => [v.version, v.trainingSnapshot, v.serving])).toEqual([['1', snapshot, false], ['2', snapshot, false], ['3', null, true]]);
    expect(listed[2]).toMatchObject({ featureNames: digits.featureNames, classes: digits.classes });
  });
});

describe('models publish warnings against the serving version', () => {
  it('warns about a feature the replaced version did not read and no featureDefaults covers, and about the same bytes published again', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const files = tempDir('sampleloop-models-cli-files-');
    const bare = join(files, 'cancer.onnx');
    copyFileSync(SKLEARN_ONNX, bare);
    const config = join(files, 'config.json');
    writeFileSync(config, JSON.stringify({ log: { level: 'silent' }, predictor: { featureDefaults: { 'breast-cancer': { tenure_years: 0 }, '*': { region: 1 } } } }));
    const features = (last: string) => [...sidecar.featureNames.slice(0, -1), last].join(',');
    const publish = (names: string) => cli('models', 'publish', bare, '-c', config, '-d', dataDir, '--category', 'breast-cancer', '--features', names);
    const first = await publish(sidecar.featureNames.join(','));
    expect(first).toMatchObject({ code: 0, stderr: '' });
    const renamed = await publish(features('credit_score'));
    expect(renamed.code).toBe(0);
    expect(renamed.stderr).toContain('warning: version "2" reads feature(s) ["credit_score"] that the version it replaces ("1") did not, and predictor.featureDefaults gives no value for them');
    expect(renamed.stderr).toContain('warning: version "2" has the same ONNX bytes as version "1", which it replaces');
    const defaulted = await publish(features('tenure_years'));
    expect(defaulted.stderr).not.toContain('reads feature(s)');
    const wildcard = await publish(features('region'));
    expect(wildcard.stderr).not.toContain('reads feature(s)');
    const digitsFile = join(files, 'digits.onnx');
    writeFileSync(digitsFile, digitsOnnx(150, '1'));
    const other = await cli('models', 'publish', digitsFile, '-c', config, '-d', dataDir, '--category', 'breast-cancer');
    expect(other.code).toBe(0);
    expect(other.stderr).toContain('reads feature(s) ["px0",');
    expect(other.stderr).not.toContain('same ONNX bytes');
    const list = await cli('models', 'list', '--json', '-d', dataDir);
    expect(list.stdout.map((l) => (JSON.parse(l) as { version: string; verified: boolean }).verified)).toEqual([true, true, true, true, true]);
  });
});

describe('models verify', () => {
  it('passes an intact ledger, then fails naming the version whose stored bytes changed', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const files = tempDir('sampleloop-models-cli-files-');
    const v1 = digitsOnnx(150, '1');
    const v2 = digitsOnnx(250, '2');
    writeFileSync(join(files, 'v1.onnx'), v1);
    writeFileSync(join(files, 'v2.onnx'), v2);
    expect((await cli('models', 'publish', join(files, 'v1.onnx'), '--category', 'digits', '-d', dataDir)).code).toBe(0);
    expect((await cli('models', 'publish', join(files, 'v2.onnx'), '--category', 'digits', '-d', dataDir)).code).toBe(0);
    const good = await cli('models', 'verify', '-d', dataDir);
    expect(good).toMatchObject({ code: 0, stdout: ['ok: 2 version(s) of 1 category verified'] });

    await tamperStoredModel(dataDir, 1, v2);
    const bad = await cli('models', 'verify', '-d', dataDir);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toHaveLength(1);
    expect(bad.stdout[0]).toMatch(/^FAIL digits version 2 \(sequence 2, offset 1\): bytes-mismatch: the ONNX bytes hash to [0-9a-f]{64} but the record says modelSha256 = /);
    expect(bad.stdout[0]).toContain(modelSha256(v2));
    expect(bad.stderr).toContain('error [SL_LEDGER]: 1 of 2 ledger record(s) failed verification');
    const list = await cli('models', 'list', '-d', dataDir);
    expect(list.stdout.slice(1, 3).map((l) => l.replace(/\s+/g, ' '))).toEqual([
      expect.stringMatching(/^digits 1 \* 1 [0-9a-f]{12} yes$/),
      expect.stringMatching(/^digits 2 2 [0-9a-f]{12} NO \(bytes-mismatch\)$/),
    ]);
  });

  it('fails a version with a wrong prevRecordHash', async () => {
    const dataDir = tempDir('sampleloop-models-cli-');
    const files = tempDir('sampleloop-models-cli-files-');
    const bytes = digitsOnnx(150, '1');
    writeFileSync(join(files, 'v1.onnx'), bytes);
    expect((await cli('models', 'publish', join(files, 'v1.onnx'), '--category', 'digits', '-d', dataDir)).code).toBe(0);
    const log = await openEmbeddedLog(configFor(dataDir));
    try {
      const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
      const v1 = (await readLedger(access)).heads.get('digits');
      const forged = buildVersion({ category: 'digits', onnx: digitsOnnx(300, 'x'), featureNames: digits.featureNames, classes: digits.classes, createdAt: T0 }, { ...(v1 as NonNullable<typeof v1>), recordHash: '1'.repeat(64) });
      await access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value: forged, timestamp: T0 }]);
    } finally {
      await log.close();
    }
    const bad = await cli('models', 'verify', '-d', dataDir);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toEqual([expect.stringMatching(/^FAIL digits version 2 \(sequence 2, offset 1\): chain-broken: prevRecordHash 1{64} does not link to the previous verified version 1 /)]);
  });
});

describe('models commands against a running engine', () => {
  let app: EmbeddedApp | undefined;
  let http: { close(): Promise<void> } | undefined;
  afterEach(async () => {
    await http?.close();
    await app?.close();
    http = undefined;
    app = undefined;
  });

  it('publishes through the engine\'s HTTP API, and the running predictor swaps to the new version', async () => {
    const dataDir = tempDir('sampleloop-models-cli-running-');
    const files = tempDir('sampleloop-models-cli-files-');
    const config = configFor(dataDir);
    app = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics() });
    const server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      metrics: app.metrics,
      logger: silentLogger(),
      routes: { health: () => ({ healthy: true, details: {} }), log: directAccess(app.log, app.registry) },
    });
    http = server;
    writeFileSync(engineInfoPath(dataDir), JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${server.port}` }));
    const v1 = digitsOnnx(150, '1');
    const v2 = digitsOnnx(400, '2');
    writeFileSync(join(files, 'v1.onnx'), v1);
    writeFileSync(join(files, 'v2.onnx'), v2);

    const first = await cli('models', 'publish', join(files, 'v1.onnx'), '--category', 'digits', '-d', dataDir);
    expect(first.code).toBe(0);
    expect(app.log.read('models', 0, 0, 1)[0]?.value?.toString('utf8').startsWith('{')).toBe(true); // JSON through HTTP
    const access = directAccess(app.log, app.registry);
    const request = (id: string): string => JSON.stringify({ requestId: id, category: 'digits', features: Object.fromEntries(digits.featureNames.map((f, j) => [f, digits.rows[5]?.features[j]])), timestamp: T0 });
    await access.produce('requests', request('before'));
    await app.runtime.runUntilIdleAsync();

    const second = await cli('models', 'publish', join(files, 'v2.onnx'), '--category', 'digits', '-d', dataDir);
    expect(second.code).toBe(0);
    await access.produce('requests', request('after'));
    await app.runtime.runUntilIdleAsync();
    const predictions = (await access.read('predictions')).map((r) => r.value as Prediction);
    expect(predictions.map((p) => `${p.requestId}:${p.modelVersion}:${p.modelHash}`)).toEqual([`before:1:${modelSha256(v1)}`, `after:2:${modelSha256(v2)}`]);

    const verify = await cli('models', 'verify', '-d', dataDir);
    expect(verify).toMatchObject({ code: 0, stdout: ['ok: 2 version(s) of 1 category verified'] });
    const list = await cli('models', 'list', '--json', '-d', dataDir);
    expect(list.stdout.map((l) => JSON.parse(l) as { version: string; verified: boolean; serving: boolean }).map((v) => `${v.version}:${v.verified}:${v.serving}`)).toEqual(['1:true:false', '2:true:true']);
  });
});
