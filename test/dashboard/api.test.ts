/** The dashboard's API and page, on its own fastify instance, fed through a real EngineMetrics and a real embedded ledger. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directAccess, type LogAccess } from '../../access/embedded.js';
import { DashboardCollector } from '../../app/dashboard/collector.js';
import { dashboardPlugin } from '../../app/dashboard/plugin.js';
import { HTTP_AJV_OPTIONS } from '../../app/http.js';
import { EmbeddedLog } from '../../engine/embedded/log.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { loadDataset } from '../../models/datasets/index.js';
import { publishVersion, readLedger } from '../../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../../models/logistic-regression.js';
import { exportOnnx } from '../../models/onnx-export.js';
import { rocksRegistryStorage } from '../../schemas/registry-storage.js';
import { LocalSchemaRegistry } from '../../schemas/registry.js';

const digits = loadDataset('digits');
const onnx = exportOnnx(trainLogistic(digits.rows.slice(0, 100), digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 10 }), { version: '1', category: 'digits' });
const T0 = 1_767_600_000_000;

describe('dashboard API', () => {
  let dir: string;
  let log: EmbeddedLog;
  let access: LogAccess;
  let metrics: EngineMetrics;
  let clock: number;
  let collector: DashboardCollector;
  let app: FastifyInstance;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sampleloop-dashboard-'));
    log = await EmbeddedLog.open(dir);
    access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    metrics = new EngineMetrics();
    clock = T0;
    collector = new DashboardCollector(
      {
        mode: 'embedded',
        metrics,
        topics: { predictions: 'predictions', feedback: 'feedback', samples: 'samples' },
        accuracyFloor: 0.8,
        now: () => clock,
        readLedger: () => readLedger(access, 'models'),
        stateBytes: () => 4096,
      },
      { resolutionMs: 1000, retentionMs: 60_000, recentDeadLetters: 2, ledgerRefreshMs: 60_000 },
    );
    collector.start();
    // the engine's server settings (no type coercion), as `run` serves the plugin
    app = Fastify({ ajv: HTTP_AJV_OPTIONS });
    await app.register(dashboardPlugin(collector));
  });
  afterEach(async () => {
    await collector.stop();
    await app.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (url: string): Promise<Record<string, unknown>> => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  /** What the join and the runtime report for a small run: 3 predictions, 2 feedback, a correction, an unmatched one, a dead letter. */
  function traffic(): void {
    const join = metrics.forProcessor('samples', 'join');
    for (let i = 0; i < 3; i++) {
      metrics.recordsIn.labels('samples', 'predictions').inc();
      join.note('prediction', { category: 'digits', version: '1' });
    }
    clock = T0 + 2500;
    for (const [id, source, delay] of [['r1', 'CONFIRMED', 4], ['r2', 'CONFIRMED', 12]] as const) {
      metrics.recordsIn.labels('samples', 'feedback').inc();
      join.note('feedback', { category: 'digits' });
      join.count('matched');
      join.observe('label_delay_seconds', delay);
      metrics.recordsOut.labels('samples').inc();
      join.note('sample', { requestId: id, category: 'digits', version: '1', labelSource: source, revision: 0 });
    }
    clock = T0 + 4200;
    // an audit corrects r2
    metrics.recordsIn.labels('samples', 'feedback').inc();
    join.note('feedback', { category: 'digits' });
    join.count('revised');
    join.observe('label_delay_seconds', 100);
    metrics.recordsOut.labels('samples').inc();
    join.note('sample', { requestId: 'r2', category: 'digits', version: '1', labelSource: 'CORRECTED', revision: 1 });
    join.count('unmatched');
    metrics.deadLetters.labels('samples', 'undecodable').inc();
    for (let offset = 0; offset < 3; offset++) {
      metrics.deadLetterWritten({ topology: 'samples', reasonCode: 'undecodable', stage: 'decode-feedback', sourceTopic: 'feedback', sourcePartition: 0, sourceOffset: offset, at: clock });
    }
  }

  it('serves totals, the serving version\'s live accuracy and the ledger from the engine\'s own counters and ledger', async () => {
    await publishVersion(access, { category: 'digits', onnx, featureNames: digits.featureNames, classes: digits.classes, metrics: { trainSize: 100 }, trainer: 'seed', createdAt: T0 - 1000 });
    await collector.refreshLedger();
    traffic();
    const o = await get('/api/v1/overview');
    expect(o.totals).toEqual({
      predictions: 3,
      feedback: 3,
      samples: 3,
      matched: 2,
      revised: 1,
      unmatched: 1,
      defaultSamples: 0,
      orphans: { 'no-prediction': 0, 'outside-window': 0 },
      late: { prediction: 0, feedback: 0 },
      review: 0,
      deadLetters: 1,
      deadLettersByReason: { undecodable: 1 },
    });
    expect(o.serving).toEqual([{ category: 'digits', version: '1', liveAccuracy: 0.5, confirmed: 1, corrected: 1, previous: null }]);
    expect(o.ledger).toMatchObject({ versions: 1, failures: 0, error: null });
    const ledger = await get('/api/v1/ledger');
    expect(ledger).toMatchObject({ verified: true, failures: 0, categories: [{ category: 'digits', serving: '1', versions: [{ version: '1', trainer: 'seed', verified: true, failure: null }] }] });

    const metricsText = await metrics.registry.metrics();
    expect(metricsText).toContain('sampleloop_live_accuracy{category="digits",version="1"} 0.5');
    expect(metricsText).toContain('sampleloop_label_delay_seconds_count 3');
    expect(metricsText).toContain('sampleloop_label_delay_seconds_bucket{le="5"} 1');
    expect(metricsText).toContain('sampleloop_ledger_failed_versions 0');
    expect(metricsText).toContain('sampleloop_live_accuracy_floor 0.8');
  });

  it('serves the time series per slot and per step', async () => {
    traffic();
    const t = await get('/api/v1/series/traffic');
    expect(t.t).toEqual([T0, T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000]);
    expect(t.categories).toEqual({ digits: { predictions: [3, 0, 0, 0, 0], feedback: [0, 0, 2, 0, 1], samples: [0, 0, 2, 0, 1] } });
    const coarse = await get('/api/v1/series/traffic?step=2000');
    expect(coarse.t).toEqual([T0, T0 + 2000, T0 + 4000]);
    expect((await get(`/api/v1/series/traffic?from=${T0 + 2000}`)).t).toEqual([T0 + 2000, T0 + 3000, T0 + 4000]);
    expect((coarse.categories as Record<string, { predictions: number[] }>).digits?.predictions).toEqual([1.5, 0, 0]);

    const out = await get('/api/v1/series/outcomes');
    expect((out.series as Record<string, number[]>).matched).toEqual([0, 0, 2, 0, 0]);
    expect((out.series as Record<string, number[]>).unmatched).toEqual([0, 0, 0, 0, 1]);
    expect((out.series as Record<string, number[]>)['dead-letter:undecodable']).toEqual([0, 0, 0, 0, 3]);

    const delay = await get('/api/v1/series/label-delay');
    expect((delay.window as { count: number }).count).toBe(3);
    expect((delay.p50 as Array<number | null>)[0]).toBeNull();
    expect((delay.p50 as number[])[2]).toBeGreaterThan(3);
    expect((delay.p50 as number[])[2]).toBeLessThanOrEqual(15);

    const acc = await get('/api/v1/series/accuracy');
    expect(acc.series).toEqual([{ category: 'digits', version: '1', values: [null, null, 1, null, 0.5] }]);
    expect(acc.floor).toBe(0.8);

    const rt = await get('/api/v1/series/runtime');
    expect((rt.stateBytes as Array<number | null>)[0]).toBe(4096);
  });

  it('lists the latest dead letters without payloads, newest first, bounded', async () => {
    traffic();
    const d = await get('/api/v1/dead-letters');
    expect(d.recent).toEqual([
      { at: T0 + 4200, reason: 'undecodable', stage: 'decode-feedback', topology: 'samples', topic: 'feedback', partition: 0, offset: 2 },
      { at: T0 + 4200, reason: 'undecodable', stage: 'decode-feedback', topology: 'samples', topic: 'feedback', partition: 0, offset: 1 },
    ]);
    const one = await get('/api/v1/dead-letters?limit=1');
    expect(one.recent).toEqual([{ at: T0 + 4200, reason: 'undecodable', stage: 'decode-feedback', topology: 'samples', topic: 'feedback', partition: 0, offset: 2 }]);
    expect((await get('/api/v1/dead-letters?limit=1000')).recent).toHaveLength(2);
    expect((await app.inject({ method: 'GET', url: '/api/v1/dead-letters?limit=0' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v1/dead-letters?limit=1001' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v1/series/traffic?step=0' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v1/series/traffic?step=abc' })).statusCode).toBe(400);
  });

  it('flags a ledger whose chain fails verification', async () => {
    await publishVersion(access, { category: 'digits', onnx, featureNames: digits.featureNames, classes: digits.classes, metrics: {}, trainer: 'seed', createdAt: T0 });
    log.append([{ topic: 'models', key: Buffer.from('digits'), value: Buffer.from('not a ledger record'), timestamp: T0, headers: {} }]);
    await collector.refreshLedger();
    const ledger = await get('/api/v1/ledger');
    expect(ledger).toMatchObject({ verified: false, failures: 1 });
    expect((await get('/api/v1/overview')).ledger).toMatchObject({ failures: 1 });
    expect(await metrics.registry.metrics()).toContain('sampleloop_ledger_failed_versions 1');
  });

  it('serves the page, its script and uPlot from the package', async () => {
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('/dashboard/uPlot.iife.min.js');
    const uplot = await app.inject({ method: 'GET', url: '/dashboard/uPlot.iife.min.js' });
    expect(uplot.statusCode).toBe(200);
    expect(uplot.body).toContain('uPlot');
    const script = await app.inject({ method: 'GET', url: '/dashboard/dashboard.js' });
    expect(script.body).toContain('/api/v1/overview');
    // The page reads nothing but the documented API.
    const urls = [...script.body.matchAll(/'(\/[a-z0-9/._-]+)/g)].map((m) => m[1]);
    expect(urls.filter((u) => !u?.startsWith('/api/v1/'))).toEqual([]);
  });
});
