/**
 * The ONNX predictor on the real embedded engine with real onnxruntime-node: requests → predictions
 * with models from the ledger, dead letters, hot swap, refusal of tampered versions, micro-batching.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type ConfigInput } from '../config/config.js';
import { directAccess, type DisplayRecord, type LogAccess } from '../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { decodeEntry, encodeEntry, KEY_RECORD, partitionPrefix, recordKey } from '../engine/embedded/log-codec.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { loadDataset } from '../models/datasets/index.js';
import { generateKeyPairSync } from 'node:crypto';
import { buildVersion, ledgerKeysFor, publishVersion, readLedger, signerFromPrivateKey, signVersion, trustPolicy, type NewVersion } from '../models/ledger.js';
import { defaultTrainOptions, predictProba, trainLogistic, type LogisticModel } from '../models/logistic-regression.js';
import { ModelRegistry, type ModelLoader } from '../models/model-registry.js';
import { exportOnnx, modelSha256 } from '../models/onnx-export.js';
import { loadOnnxModel, type OnnxModel } from '../models/onnx-runtime.js';
import type { ModelVersion, Prediction } from '../schemas/types.js';

const T0 = 1_750_000_000_000;
const digits = loadDataset('digits');
const cancer = loadDataset('breast-cancer');

function train(dataset: typeof digits, rows = dataset.rows): LogisticModel {
  return trainLogistic(rows, dataset.featureNames, dataset.classes, defaultTrainOptions);
}

function featuresOf(dataset: typeof digits, row: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  dataset.featureNames.forEach((name, i) => {
    out[name] = row[i] as number;
  });
  return out;
}

function requestLine(id: string, category: string, features: Record<string, number>, timestamp: number, attributes: Record<string, string> = {}): string {
  return JSON.stringify({ requestId: id, category, features, attributes, timestamp });
}

interface Spy {
  calls: Array<{ category: string; rows: number }>;
  closed: string[];
}

/** Wraps loadOnnxModel to record every predictBatch call and every close, by the model's first feature name's category. */
function spyingLoader(spy: Spy): ModelLoader {
  return async (bytes, options) => {
    const model = await loadOnnxModel(bytes, options);
    const sha = modelSha256(bytes);
    const category = model.featureNames[0] === 'px0' ? 'digits' : 'breast-cancer';
    const wrapped: OnnxModel = Object.create(model) as OnnxModel;
    Object.assign(wrapped, {
      predictBatch: (rows: Float64Array[]) => {
        spy.calls.push({ category, rows: rows.length });
        return model.predictBatch(rows);
      },
      close: () => {
        spy.closed.push(sha);
        return model.close();
      },
    });
    return wrapped;
  };
}

interface Engine {
  app: EmbeddedApp;
  access: LogAccess;
  spy: Spy;
  dataDir: string;
  clock: { now: number };
  produce(lines: string[]): Promise<void>;
  run(): Promise<number>;
  predictions(): Promise<Prediction[]>;
  deadLetters(): Promise<DisplayRecord[]>;
  publish(input: Omit<NewVersion, 'createdAt'>): Promise<ModelVersion>;
  event(name: string): Promise<number>;
  close(): Promise<void>;
}

async function startEngine(config: ConfigInput = {}): Promise<Engine> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-predictor-'));
  const clock = { now: T0 + 3_600_000 };
  const spy: Spy = { calls: [], closed: [] };
  const metrics = new EngineMetrics();
  const parsed = parseConfig({
    ...config,
    dataDir,
    log: { level: 'silent' },
    privacy: { keyEnv: 'SAMPLELOOP_PREDICTOR_TEST_UNUSED_KEY' },
    predictor: { enabled: true, ...(config.predictor ?? {}) },
  });
  const app = await startEmbeddedApp(parsed, { logger: silentLogger(), metrics, now: () => clock.now, predictor: { loadModel: spyingLoader(spy) } });
  const access = directAccess(app.log, app.registry, () => clock.now);
  const values = async (topic: string): Promise<unknown[]> => (app.log.topic(topic) ? (await access.read(topic)).map((r) => r.value) : []);
  return {
    app,
    access,
    spy,
    dataDir,
    clock,
    produce: async (lines) => {
      await access.produce('requests', lines.join('\n'));
    },
    run: () => app.runtime.runUntilIdleAsync(),
    predictions: async () => (await values('predictions')) as Prediction[],
    deadLetters: async () => (app.log.topic('dead-letters') ? access.read('dead-letters') : []),
    publish: async (input) => (await publishVersion(access, { ...input, createdAt: clock.now }, { topic: 'models', ...ledgerKeysFor(parsed, { generate: false }) })).record,
    event: (name) => metrics.total('events', { processor: 'predictor', event: name }),
    close: async () => {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const digitsModel = train(digits);
const digitsBytes = exportOnnx(digitsModel, { version: '1', category: 'digits' });
/** A different model (trained on 300 rows): some predictions differ from digitsModel's. */
const digitsModelV2 = train(digits, digits.rows.slice(0, 300));
const digitsBytesV2 = exportOnnx(digitsModelV2, { version: '2', category: 'digits' });
const cancerModel = train(cancer);
const cancerBytes = exportOnnx(cancerModel, { version: '1', category: 'breast-cancer' });

function digitsVersion(bytes: Uint8Array, version?: string): Omit<NewVersion, 'createdAt'> {
  return { category: 'digits', ...(version ? { version } : {}), onnx: bytes, featureNames: digits.featureNames, classes: digits.classes, trainer: 'test' };
}

function expectedLabel(model: LogisticModel, row: ArrayLike<number>): string {
  const p = predictProba(model, row);
  let best = 0;
  for (let k = 1; k < p.length; k++) if ((p[k] as number) > (p[best] as number)) best = k;
  return model.classes[best] as string;
}

const engines: Engine[] = [];
async function engine(config: ConfigInput = {}): Promise<Engine> {
  const e = await startEngine(config);
  engines.push(e);
  return e;
}
afterEach(async () => {
  while (engines.length > 0) await engines.pop()?.close();
});

describe('predictor: digits model trained by trainLogistic and exported to ONNX', () => {
  let e: Engine;
  let published: ModelVersion;
  const rows = digits.rows.filter((_, i) => i % 3 === 0);

  beforeAll(async () => {
    e = await startEngine();
    published = await e.publish(digitsVersion(digitsBytes));
    await e.produce(rows.map((r, i) => requestLine(`d-${i}`, 'digits', featuresOf(digits, r.features), T0 + i, { name: 'Ada Lovelace', phone: '+44 20 7946 0958' })));
    await e.run();
  });
  afterAll(async () => {
    await e.close();
  });

  it('emits one prediction per request whose label is the argmax of predictProba and whose scores match it', async () => {
    const predictions = await e.predictions();
    expect(predictions).toHaveLength(rows.length);
    let maxDiff = 0;
    predictions.forEach((p) => {
      const i = Number(p.requestId.slice(2));
      const row = (rows[i] as { features: number[] }).features;
      expect(p.predictedLabel).toBe(expectedLabel(digitsModel, row));
      const proba = predictProba(digitsModel, row);
      digits.classes.forEach((c, k) => {
        maxDiff = Math.max(maxDiff, Math.abs((p.scores[c] as number) - (proba[k] as number)));
      });
    });
    expect(maxDiff).toBeLessThan(1e-9);
  });

  it('carries the request, the model version and hash, and documented timestamps', async () => {
    const predictions = await e.predictions();
    const first = predictions.find((p) => p.requestId === 'd-5') as Prediction;
    expect(first.category).toBe('digits');
    expect(first.features).toEqual(featuresOf(digits, (rows[5] as { features: number[] }).features));
    expect(first.modelVersion).toBe('1');
    expect(first.modelHash).toBe(modelSha256(digitsBytes));
    expect(first.modelHash).toBe(published.modelSha256);
    expect(first.requestTimestamp).toBe(T0 + 5);
    // request-plus-latency: the request's time plus the batch's inference time (well under a second here).
    expect(first.timestamp).toBeGreaterThanOrEqual(T0 + 5);
    expect(first.timestamp).toBeLessThan(T0 + 5 + 1000);
    // attributes were protected by decode before the predictor saw them
    expect(first.attributes.name).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
    expect(first.attributes.phone).toBe('************0958');
  });

  it('counts the model load and the predictions', async () => {
    expect(await e.event('model-loaded')).toBe(1);
    expect(await e.event('model-refused')).toBe(0);
    expect(await e.event('predicted')).toBe(rows.length);
    expect(e.app.models?.serving().map((s) => `${s.category}@${s.version}`)).toEqual(['digits@1']);
  });
});

describe('predictor: what it cannot serve', () => {
  it('sends requests of a category without a model to the dead-letter topic (unknown-category), attributes protected', async () => {
    const e = await engine();
    await e.publish(digitsVersion(digitsBytes));
    const row = featuresOf(digits, (digits.rows[0] as { features: number[] }).features);
    await e.produce([requestLine('u-1', 'loans', row, T0, { idNumber: 'X1234567', name: 'Grace Hopper' }), requestLine('ok-1', 'digits', row, T0 + 1)]);
    await e.run();
    expect((await e.predictions()).map((p) => p.requestId)).toEqual(['ok-1']);
    const dead = await e.deadLetters();
    expect(dead.map((d) => `${d.key}:${d.headers['sampleloop.dlq.reason.code']}:${d.headers['sampleloop.dlq.stage']}`)).toEqual(['u-1:unknown-category:predictor']);
    expect(dead[0]?.headers['sampleloop.dlq.reason']).toContain("no model serves the request's category");
    expect(dead[0]?.headers['sampleloop.dlq.reason']).not.toContain('loans'); // reasons never quote field values (docs/operations.md)
    expect(dead[0]?.headers['sampleloop.dlq.payload.redacted']).toBe('true');
    const payload = JSON.parse((dead[0]?.value as { payload: string }).payload) as { requestId: string; attributes: Record<string, string> };
    expect(payload.requestId).toBe('u-1');
    expect(payload.attributes.idNumber).toMatch(/^tok_/);
    expect(payload.attributes.name).toMatch(/^tok_/);
    expect(JSON.stringify(dead)).not.toContain('Grace Hopper');
    expect(await e.event('rejected-unknown-category')).toBe(1);
  });

  it('serves such requests with models.defaultCategory when configured', async () => {
    const e = await engine({ models: { defaultCategory: 'digits' } });
    await e.publish(digitsVersion(digitsBytes));
    const row = (digits.rows[7] as { features: number[] }).features;
    await e.produce([requestLine('x-1', 'other', featuresOf(digits, row), T0)]);
    await e.run();
    const [p] = await e.predictions();
    expect(p?.category).toBe('other');
    expect(p?.modelVersion).toBe('1');
    expect(p?.predictedLabel).toBe(expectedLabel(digitsModel, row));
    expect(await e.deadLetters()).toEqual([]);
  });

  it('dead-letters a request missing a model feature (missing-feature), ignores extra features, and uses configured defaults', async () => {
    const e = await engine({ predictor: { featureDefaults: { digits: { px1: 0 }, '*': { px2: 5 } } } });
    await e.publish(digitsVersion(digitsBytes));
    const row = [...(digits.rows[3] as { features: number[] }).features];
    const full: Record<string, number> = { ...featuresOf(digits, row), unrelated: 42 };
    const withoutPx0 = { ...full };
    delete withoutPx0.px0;
    const withoutDefaulted = { ...full };
    delete withoutDefaulted.px1;
    delete withoutDefaulted.px2;
    await e.produce([requestLine('m-1', 'digits', withoutPx0, T0), requestLine('m-2', 'digits', withoutDefaulted, T0 + 1), requestLine('m-3', 'digits', full, T0 + 2)]);
    await e.run();
    const dead = await e.deadLetters();
    expect(dead.map((d) => `${d.key}:${d.headers['sampleloop.dlq.reason.code']}`)).toEqual(['m-1:missing-feature']);
    expect(dead[0]?.headers['sampleloop.dlq.reason']).toContain('px0');
    const byId = new Map((await e.predictions()).map((p) => [p.requestId, p]));
    expect(byId.get('m-3')?.predictedLabel).toBe(expectedLabel(digitsModel, row));
    expect(byId.get('m-3')?.features.unrelated).toBe(42);
    const defaulted = [...row];
    defaulted[1] = 0;
    defaulted[2] = 5;
    const expected = predictProba(digitsModel, defaulted);
    digits.classes.forEach((c, k) => expect(byId.get('m-2')?.scores[c]).toBeCloseTo(expected[k] as number, 12));
    expect(byId.get('m-2')?.predictedLabel).toBe(expectedLabel(digitsModel, defaulted));
  });
});

describe('predictor: micro-batching', () => {
  it('runs exactly one predictBatch per category model per batch', async () => {
    const e = await engine();
    await e.publish(digitsVersion(digitsBytes));
    await e.publish({ category: 'breast-cancer', onnx: cancerBytes, featureNames: cancer.featureNames, classes: cancer.classes });
    const lines: string[] = [];
    for (let i = 0; i < 120; i++) {
      const d = digits.rows[i] as { features: number[] };
      const c = cancer.rows[i] as { features: number[] };
      lines.push(requestLine(`d-${i}`, 'digits', featuresOf(digits, d.features), T0 + 2 * i));
      lines.push(requestLine(`c-${i}`, 'breast-cancer', featuresOf(cancer, c.features), T0 + 2 * i + 1));
    }
    await e.produce(lines);
    // One step: the predictor task pulls all 240 requests and flushes its batch once.
    expect(await e.app.runtime.stepAsync()).toBe(240);
    expect(e.spy.calls.sort((a, b) => a.category.localeCompare(b.category))).toEqual([
      { category: 'breast-cancer', rows: 120 },
      { category: 'digits', rows: 120 },
    ]);
    // The next batch: again one call per category.
    await e.produce(lines.slice(0, 10).map((l) => l.replace(/"requestId":"(\w)-/, '"requestId":"$1-again-')));
    e.spy.calls.length = 0;
    expect(await e.app.runtime.stepAsync()).toBe(10);
    expect(e.spy.calls.map((c) => `${c.category}:${c.rows}`).sort()).toEqual(['breast-cancer:5', 'digits:5']);
    e.app.runtime.commit();
    const predictions = await e.predictions();
    expect(predictions).toHaveLength(250);
    for (const p of predictions.filter((x) => x.category === 'breast-cancer')) {
      const row = (cancer.rows[Number(p.requestId.split('-').pop())] as { features: number[] }).features;
      expect(p.predictedLabel).toBe(expectedLabel(cancerModel, row));
    }
  });
});

describe('predictor: hot swap', () => {
  it('serves v2 from the batch after it is published, without stopping, and releases v1', async () => {
    const e = await engine();
    const v1 = await e.publish(digitsVersion(digitsBytes));
    const sent: Array<{ id: string; row: number[] }> = [];
    let v2: ModelVersion | undefined;
    let publishedAfter = -1;
    for (let round = 0; round < 6; round++) {
      const lines: string[] = [];
      for (let k = 0; k < 50; k++) {
        const i = round * 50 + k;
        const row = (digits.rows[i + 300] as { features: number[] }).features;
        sent.push({ id: `h-${i}`, row });
        lines.push(requestLine(`h-${i}`, 'digits', featuresOf(digits, row), T0 + i));
      }
      await e.produce(lines);
      await e.app.runtime.stepAsync();
      if (round === 2) {
        v2 = await e.publish(digitsVersion(digitsBytesV2));
        publishedAfter = sent.length;
      }
    }
    e.app.runtime.commit();
    const predictions = await e.predictions();
    expect(predictions).toHaveLength(300);
    const byId = new Map(predictions.map((p) => [p.requestId, p]));
    sent.forEach(({ id, row }, n) => {
      const p = byId.get(id) as Prediction;
      const v = n < publishedAfter ? { model: digitsModel, record: v1 } : { model: digitsModelV2, record: v2 as ModelVersion };
      expect(`${id}:${p.modelVersion}:${p.modelHash}`).toBe(`${id}:${v.record.version}:${v.record.modelSha256}`);
      expect(p.predictedLabel).toBe(expectedLabel(v.model, row));
    });
    expect(v2?.version).toBe('2');
    expect(v2?.prevRecordHash).toBe(v1.recordHash);
    // the two models really differ on some of these rows
    expect(sent.slice(publishedAfter).some(({ row }) => expectedLabel(digitsModel, row) !== expectedLabel(digitsModelV2, row))).toBe(true);
    expect(await e.event('model-loaded')).toBe(2);
    expect(e.spy.closed).toEqual([v1.modelSha256]);
  });
});

/** Rewrites a stored record of the models topic in the embedded log's RocksDB, flipping one byte of its ONNX bytes. */
function flipStoredModelByte(app: EmbeddedApp, offset: number, onnx: Uint8Array): void {
  const key = recordKey(partitionPrefix(KEY_RECORD, 'models', 0), offset);
  const stored = app.log.db.get(key) as Buffer;
  const entry = decodeEntry(Buffer.from(stored));
  const value = Buffer.from(entry.value as Buffer);
  const at = value.indexOf(Buffer.from(onnx));
  expect(at).toBeGreaterThan(0);
  value[at + 200] = (value[at + 200] as number) ^ 0x01;
  app.log.db.write([{ type: 'put', key, value: encodeEntry({ ...entry, value }) }]);
}

describe('predictor: tamper-evident ledger', () => {
  it('refuses a version whose stored ONNX bytes were changed and keeps serving the previous one', async () => {
    const e = await engine();
    const v1 = await e.publish(digitsVersion(digitsBytes));
    const row = (digits.rows[11] as { features: number[] }).features;
    await e.produce([requestLine('t-1', 'digits', featuresOf(digits, row), T0)]);
    await e.run();
    await e.publish(digitsVersion(digitsBytesV2));
    flipStoredModelByte(e.app, 1, digitsBytesV2);
    await e.produce([requestLine('t-2', 'digits', featuresOf(digits, row), T0 + 1)]);
    await e.run();
    const predictions = await e.predictions();
    expect(predictions.map((p) => `${p.requestId}:${p.modelVersion}:${p.modelHash}`)).toEqual([`t-1:1:${v1.modelSha256}`, `t-2:1:${v1.modelSha256}`]);
    expect(await e.event('model-refused')).toBe(1);
    expect(await e.event('model-loaded')).toBe(1);
    const ledger = await readLedger(e.access);
    expect(ledger.failures.map((f) => `${f.version?.version}:${f.verification.ok ? '' : f.verification.code}`)).toEqual(['2:bytes-mismatch']);
  });

  it('refuses a version with a wrong prevRecordHash, then accepts a correct v2 linked to the served v1', async () => {
    const e = await engine();
    const v1 = await e.publish(digitsVersion(digitsBytes));
    // A forged successor: its own hashes are consistent, but it links to a version that is not v1.
    const forged = buildVersion({ ...digitsVersion(digitsBytesV2, 'forged'), createdAt: T0 }, { ...v1, recordHash: 'f'.repeat(64) });
    expect(forged.sequence).toBe(2);
    await e.access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value: forged, timestamp: T0 }]);
    const row = (digits.rows[12] as { features: number[] }).features;
    await e.produce([requestLine('w-1', 'digits', featuresOf(digits, row), T0)]);
    await e.run();
    expect((await e.predictions()).map((p) => p.modelVersion)).toEqual(['1']);
    expect(await e.event('model-refused')).toBe(1);

    const v2 = await e.publish(digitsVersion(digitsBytesV2));
    expect(v2.prevRecordHash).toBe(v1.recordHash);
    expect(v2.sequence).toBe(2);
    await e.produce([requestLine('w-2', 'digits', featuresOf(digits, row), T0 + 1)]);
    await e.run();
    expect((await e.predictions()).map((p) => `${p.requestId}:${p.modelVersion}`)).toEqual(['w-1:1', 'w-2:2']);
    expect(await e.event('model-loaded')).toBe(2);
  });

  it('starts from the verified chain after a restart: a tampered version stays refused', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-predictor-restart-'));
    const config = parseConfig({ dataDir, log: { level: 'silent' }, privacy: { keyEnv: 'SAMPLELOOP_PREDICTOR_TEST_UNUSED_KEY' }, predictor: { enabled: true } });
    try {
      let app = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics() });
      const access = directAccess(app.log, app.registry);
      const keys = ledgerKeysFor(config, { generate: false });
      await publishVersion(access, { ...digitsVersion(digitsBytes), createdAt: T0 }, keys);
      await publishVersion(access, { ...digitsVersion(digitsBytesV2), createdAt: T0 + 1 }, keys);
      flipStoredModelByte(app, 1, digitsBytesV2);
      await app.close();
      app = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics() });
      try {
        const row = (digits.rows[13] as { features: number[] }).features;
        await directAccess(app.log, app.registry).produce('requests', requestLine('r-1', 'digits', featuresOf(digits, row), T0));
        await app.runtime.runUntilIdleAsync();
        const [p] = (await directAccess(app.log, app.registry).read('predictions')).map((r) => r.value as Prediction);
        expect(p?.modelVersion).toBe('1');
        expect(p?.predictedLabel).toBe(expectedLabel(digitsModel, row));
      } finally {
        await app.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('predictor → samples: the two topologies in one runtime', () => {
  it('joins the predictor\'s predictions with feedback into labeled samples', async () => {
    const e = await engine({ join: { beforeMs: 1000, afterMs: 10_000, graceMs: 0 } });
    await e.publish(digitsVersion(digitsBytes));
    const row = (digits.rows[20] as { features: number[] }).features;
    await e.produce([requestLine('j-1', 'digits', featuresOf(digits, row), T0)]);
    await e.run();
    await e.run(); // the samples topology reads the committed predictions
    await e.access.produce('feedback', JSON.stringify({ requestId: 'j-1', timestamp: T0 + 500, actualLabel: '3' }));
    await e.run();
    e.app.runtime.endOfInput();
    const samples = (await e.access.read('samples')).map((r) => r.value as { requestId: string; label: string; predictedLabel: string; modelVersion: string });
    expect(samples.map((s) => `${s.requestId}:${s.label}:${s.predictedLabel}:${s.modelVersion}`)).toEqual([`j-1:3:${expectedLabel(digitsModel, row)}:1`]);
  });
});

describe('model registry', () => {
  const registrySigner = signerFromPrivateKey(generateKeyPairSync('ed25519').privateKey);
  const registryTrust = trustPolicy([{ name: 'test', publicKey: registrySigner.publicKey }]);

  it('loads what it verified before a ledger read failed, reports the failure, and resumes after it', async () => {
    const v1 = signVersion(buildVersion({ ...digitsVersion(digitsBytes), createdAt: T0 }, undefined), registrySigner);
    const v2 = signVersion(buildVersion({ ...digitsVersion(digitsBytesV2), createdAt: T0 + 1 }, v1), registrySigner);
    const records = [v1, v2].map((version, offset) => ({ partition: 0, offset, timestamp: T0, key: 'digits', version }));
    let end = 1;
    let failAt: number | undefined;
    const source = {
      endOffsets: () => [end],
      read: (_p: number, from: number, max: number) => {
        if (failAt !== undefined && from >= failAt) {
          failAt = undefined;
          throw new Error('disk on fire');
        }
        return records.slice(from, Math.min(end, from + max));
      },
    };
    const spy: Spy = { calls: [], closed: [] };
    const registry = new ModelRegistry(source, { trust: registryTrust, loadModel: spyingLoader(spy), readBatch: 1 });
    try {
      expect(await registry.refresh()).toEqual([{ kind: 'loaded', category: 'digits', version: '1', sequence: 1, modelSha256: v1.modelSha256, replaced: null, signedBy: 'test' }]);
      expect(await registry.refresh()).toEqual([]); // nothing new: no read at all
      end = 2;
      failAt = 1;
      expect(await registry.refresh()).toEqual([{ kind: 'ledger-unreadable', reason: 'disk on fire' }]);
      expect(registry.resolve('digits')?.version).toBe('1');
      const events = await registry.refresh();
      expect(events).toEqual([{ kind: 'loaded', category: 'digits', version: '2', sequence: 2, modelSha256: v2.modelSha256, replaced: '1', signedBy: 'test' }]);
      expect(registry.resolve('digits')?.version).toBe('2');
      expect(registry.resolve('other')).toBeUndefined();
      expect(spy.closed).toEqual([v1.modelSha256]);
    } finally {
      await registry.close();
    }
    expect(spy.closed).toEqual([v1.modelSha256, v2.modelSha256]);
  });

  it('keeps a held model open across a swap and releases it after the batch', async () => {
    const v1 = signVersion(buildVersion({ ...digitsVersion(digitsBytes), createdAt: T0 }, undefined), registrySigner);
    const v2 = signVersion(buildVersion({ ...digitsVersion(digitsBytesV2), createdAt: T0 + 1 }, v1), registrySigner);
    const records = [v1, v2].map((version, offset) => ({ partition: 0, offset, timestamp: T0, key: 'digits', version }));
    let end = 1;
    const spy: Spy = { calls: [], closed: [] };
    const registry = new ModelRegistry({ endOffsets: () => [end], read: (_p, from, max) => records.slice(from, Math.min(end, from + max)) }, { trust: registryTrust, loadModel: spyingLoader(spy) });
    try {
      await registry.refresh();
      const first = registry.resolve('digits');
      expect(first?.version).toBe('1');
      registry.hold(first as NonNullable<typeof first>);
      end = 2;
      await registry.refresh();
      expect(registry.resolve('digits')?.version).toBe('2');
      expect(spy.closed).toEqual([]);
      const row = Float64Array.from((digits.rows[0] as { features: number[] }).features);
      const [p] = await registry.predict(first as NonNullable<typeof first>, [row]);
      expect(p?.label).toBe(expectedLabel(digitsModel, row));
      await registry.release(first as NonNullable<typeof first>);
      expect(spy.closed).toEqual([v1.modelSha256]);
    } finally {
      await registry.close();
    }
  });

  it('is shared by the tasks of a multi-partition topology: one session, one predictBatch per task batch', async () => {
    const e = await engine({ embedded: { partitions: 2 } });
    await e.publish(digitsVersion(digitsBytes));
    const lines = digits.rows.slice(0, 60).map((r, i) => requestLine(`p-${i}`, 'digits', featuresOf(digits, r.features), T0 + i));
    await e.produce(lines);
    await e.app.runtime.stepAsync();
    e.app.runtime.commit();
    expect(e.app.log.topic('requests')?.partitions).toBe(2);
    const perPartition = [0, 1].map((p) => e.app.log.read('requests', p, 0, 100).length);
    expect(perPartition.every((n) => n > 0)).toBe(true);
    expect(e.spy.calls.map((c) => c.rows).sort()).toEqual([...perPartition].sort());
    expect(await e.event('model-loaded')).toBe(1);
    const predictions = await e.predictions();
    expect(predictions).toHaveLength(60);
    for (const p of predictions) expect(p.predictedLabel).toBe(expectedLabel(digitsModel, (digits.rows[Number(p.requestId.slice(2))] as { features: number[] }).features));
  });
});
