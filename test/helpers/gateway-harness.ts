/**
 * An embedded engine with the gateway on a real HTTP port, in this process: the runtime runs in the
 * background (the join turns predictions + feedback into samples), models are real ONNX published to
 * the ledger.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type ConfigInput } from '../../config/config.js';
import { directAccess, type LogAccess } from '../../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../../app/embedded.js';
import { embeddedGateway } from '../../app/gateway/index.js';
import { startHttpServer, type HttpServer, type HttpServerOptions } from '../../app/http.js';
import { silentLogger } from '../../engine/logger.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { loadDataset, type Dataset } from '../../models/datasets/index.js';
import { ledgerKeysFor, publishVersion } from '../../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../../models/logistic-regression.js';
import { exportOnnx } from '../../models/onnx-export.js';
import { decodeFramed } from '../../schemas/codec.js';
import type { LabeledSample, Prediction } from '../../schemas/types.js';

export const cancer = loadDataset('breast-cancer');
export const digits = loadDataset('digits');

/** A trained model of `dataset` on `rows` rows, as ONNX bytes. */
export function onnxOf(dataset: Dataset, version: string, rows = dataset.rows.length): Uint8Array {
  return exportOnnx(trainLogistic(dataset.rows.slice(0, rows), dataset.featureNames, dataset.classes, defaultTrainOptions), { version, category: dataset.name });
}

/** An OIP request for rows of `dataset` (one FP64 input per feature). */
export function oipRequest(dataset: Dataset, rows: number[], parameters?: Record<string, unknown>): Record<string, unknown> {
  return {
    inputs: dataset.featureNames.map((name, j) => ({ name, shape: [rows.length], datatype: 'FP64', data: rows.map((r) => (dataset.rows[r] as { features: number[] }).features[j]) })),
    ...(parameters ? { parameters } : {}),
  };
}

export interface GatewayEngine {
  app: EmbeddedApp;
  access: LogAccess;
  url: string;
  metrics: EngineMetrics;
  publish(dataset: Dataset, version: string, onnx?: Uint8Array): Promise<void>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  predictions(): Prediction[];
  samples(): LabeledSample[];
  close(): Promise<void>;
}

export async function startGatewayEngine(configInput: ConfigInput = {}, http: Partial<Pick<HttpServerOptions, 'tokens' | 'tls'>> = {}): Promise<GatewayEngine> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-gateway-'));
  const config = parseConfig({ dataDir, log: { level: 'silent' }, ...configInput });
  const metrics = new EngineMetrics();
  const app = await startEmbeddedApp(config, { logger: silentLogger(), metrics });
  const access = directAccess(app.log, app.registry);
  const gateway = await embeddedGateway({ config, models: app.models!, registry: app.registry, privacy: app.privacy, logger: app.logger, metrics, ready: () => true, log: app.log });
  const server: HttpServer = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    logger: silentLogger(),
    routes: { health: () => ({ healthy: true, details: {} }), log: access },
    plugins: [gateway.plugin],
    ...http,
  });
  const controller = new AbortController();
  const running = app.runtime.run(controller.signal);
  const url = `${http.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`;
  const decoded = <T>(topic: string): T[] => {
    const out: T[] = [];
    const partitions = app.log.topic(topic)?.partitions ?? 0;
    for (let p = 0; p < partitions; p++) {
      for (const r of app.log.read(topic, p, 0, 1_000_000)) if (r.value) out.push(decodeFramed(r.value, (id) => app.registry.cached(id)).value as T);
    }
    return out;
  };
  return {
    app,
    access,
    url,
    metrics,
    publish: async (dataset, version, onnx = onnxOf(dataset, version)) => {
      await publishVersion(access, { category: dataset.name, version, onnx, featureNames: dataset.featureNames, classes: dataset.classes, metrics: {}, trainer: 'test', createdAt: Date.now() }, { topic: config.topics.models, ...ledgerKeysFor(config, { generate: true }) }); // signed: the gateway serves only trusted versions
    },
    post: async (path, body, headers = {}) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
    },
    predictions: () => decoded<Prediction>(config.topics.predictions),
    samples: () => decoded<LabeledSample>(config.topics.samples),
    close: async () => {
      await server.close();
      controller.abort();
      await running;
      await gateway.close();
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Sends every body at once from another process (its own event loop, so the calls really arrive
 * together), and returns each answer's status, Retry-After and body, in order.
 */
export async function burst(url: string, bodies: readonly unknown[]): Promise<Array<{ status: number; retryAfter: string | null; body: Record<string, unknown> }>> {
  const { spawn } = await import('node:child_process');
  const script = `
    const bodies = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
    Promise.all(bodies.map(async (b) => {
      const res = await fetch(${JSON.stringify(url)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
    })).then((r) => process.stdout.write(JSON.stringify(r)));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stdin.end(JSON.stringify(bodies));
  await new Promise((resolve) => child.once('close', resolve));
  return JSON.parse(out) as Array<{ status: number; retryAfter: string | null; body: Record<string, unknown> }>;
}
