/**
 * Gateway benchmark: requests/s and p50/p99 latency of `POST /v2/models/breast-cancer/infer` (one
 * row, 30 features: ONNX inference, the Prediction appended to the embedded log before the answer)
 * at concurrency 1, 16 and 64, beside a bare fastify route in the same run that only parses the same
 * body and answers JSON (the HTTP limit of this machine). Each server runs in its own process pinned
 * to one core (taskset); autocannon drives it from this process. Then the gateway at half its
 * measured peak rate (64 connections): its p99 there.
 * Run: `npm run build && node dist/bench/gateway.js [--seconds 5] [--no-write]`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { parseConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { startEmbeddedApp } from '../app/embedded.js';
import { embeddedGateway } from '../app/gateway/index.js';
import { startHttpServer } from '../app/http.js';
import { packageRoot } from '../config/paths.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { loadDataset } from '../models/datasets/index.js';
import { ledgerKeysFor, publishVersion } from '../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';

const PATH = '/v2/models/breast-cancer/infer';
const CONCURRENCY = [1, 16, 64] as const;

function requestBody(): string {
  const cancer = loadDataset('breast-cancer');
  const row = cancer.rows[0]!.features;
  return JSON.stringify({
    inputs: cancer.featureNames.map((name, j) => ({ name, shape: [1], datatype: 'FP64', data: [row[j]] })),
    parameters: { attributes: { name: 'Bench Customer', phone: '+44 7700 900000', channel: 'web' } },
  });
}

/** The gateway as `sampleloop run` serves it: embedded engine (samples topology running), gateway, one server. */
async function serveGateway(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-gateway-'));
  const config = parseConfig({ dataDir, log: { level: 'silent' } });
  const metrics = new EngineMetrics();
  const app = await startEmbeddedApp(config, { logger: silentLogger(), metrics });
  const cancer = loadDataset('breast-cancer');
  const onnx = exportOnnx(trainLogistic(cancer.rows, cancer.featureNames, cancer.classes, defaultTrainOptions), { version: '1', category: cancer.name });
  await publishVersion(directAccess(app.log, app.registry), { category: cancer.name, version: '1', onnx, featureNames: cancer.featureNames, classes: cancer.classes, metrics: {}, trainer: 'bench', createdAt: Date.now() }, { topic: config.topics.models, ...ledgerKeysFor(config, { generate: true }) });
  const gateway = await embeddedGateway({ config, models: app.models!, registry: app.registry, privacy: app.privacy, logger: silentLogger(), metrics, ready: () => true, log: app.log });
  const http = await startHttpServer({ host: '127.0.0.1', port: 0, metrics, logger: silentLogger(), routes: { health: () => ({ healthy: true, details: {} }) }, plugins: [gateway.plugin] });
  const controller = new AbortController();
  const running = app.runtime.run(controller.signal);
  process.stdout.write(`${http.port}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => {
    void (async () => {
      await http.close();
      controller.abort();
      await running;
      await gateway.close();
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    })();
  });
}

/** The HTTP limit: the same body parsed (same JSON parser, same body limit), a small JSON answer. */
async function serveBare(): Promise<void> {
  const app = Fastify({ bodyLimit: 1024 * 1024 });
  app.post(PATH, (request) => ({ model_name: 'breast-cancer', inputs: (request.body as { inputs: unknown[] }).inputs.length }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${(app.server.address() as { port: number }).port}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => void app.close().then(() => process.exit(0)));
}

async function startServer(kind: 'gateway' | 'bare'): Promise<{ url: string; child: ChildProcess }> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn('taskset', ['-c', '0', process.execPath, self, '--serve', kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`the ${kind} server exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}${PATH}`, child };
}

interface Row {
  server: 'gateway' | 'bare';
  connections: number;
  rate: number | null;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

async function measure(server: Row['server'], url: string, body: string, connections: number, seconds: number, rate?: number): Promise<Row> {
  const result = await autocannon({ url, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections, duration: seconds, ...(rate ? { overallRate: rate } : {}) });
  // a benchmark of error answers measures nothing: stop instead of recording it
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${server} at c=${connections}: ${result.non2xx} non-2xx answers and ${result.errors} errors; the figures would not be of the gateway answering`);
  return {
    server,
    connections,
    rate: rate ?? null,
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { serve: { type: 'string' }, seconds: { type: 'string', default: '5' }, 'no-write': { type: 'boolean', default: false } } });
  if (values.serve === 'gateway') return serveGateway();
  if (values.serve === 'bare') return serveBare();
  const seconds = Number(values.seconds);
  const body = requestBody();
  const load = { before: loadavg().map((l) => Number(l.toFixed(2))), after: [] as number[] };
  const rows: Row[] = [];
  for (const kind of ['bare', 'gateway'] as const) {
    const { url, child } = await startServer(kind);
    try {
      await measure(kind, url, body, 16, 2); // warm-up (JIT, model session)
      for (const c of CONCURRENCY) {
        const row = await measure(kind, url, body, c, seconds);
        rows.push(row);
        console.log(`${kind.padEnd(7)} c=${String(c).padStart(2)}  ${String(row.requestsPerSecond).padStart(6)} req/s  p50 ${row.p50Ms} ms  p99 ${row.p99Ms} ms  non-2xx ${row.non2xx}  errors ${row.errors}`);
      }
      if (kind === 'gateway') {
        const peak = Math.max(...rows.filter((r) => r.server === 'gateway').map((r) => r.requestsPerSecond));
        const half = Math.max(1, Math.floor(peak / 2));
        const row = await measure(kind, url, body, 64, seconds, half);
        rows.push(row);
        console.log(`gateway c=64 at ${half} req/s (half the peak ${peak}): ${row.requestsPerSecond} req/s  p50 ${row.p50Ms} ms  p99 ${row.p99Ms} ms  non-2xx ${row.non2xx}`);
      }
    } finally {
      child.stdin!.end();
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  load.after = loadavg().map((l) => Number(l.toFixed(2)));
  const bare64 = rows.find((r) => r.server === 'bare' && r.connections === 64 && r.rate === null)!;
  const gateway64 = rows.find((r) => r.server === 'gateway' && r.connections === 64 && r.rate === null)!;
  const atHalf = rows.find((r) => r.rate !== null)!;
  const summary = {
    ratioAtC64: Number((gateway64.requestsPerSecond / bare64.requestsPerSecond).toFixed(3)),
    targetRatio: 0.5,
    p99AtHalfPeakMs: atHalf.p99Ms,
    targetP99Ms: 25,
  };
  console.log(`gateway / bare at c=64: ${summary.ratioAtC64} (target >= 0.5); p99 at half the peak rate: ${summary.p99AtHalfPeakMs} ms (target <= 25); load average ${load.before.join(' ')} -> ${load.after.join(' ')}`);
  if (!values['no-write']) {
    const file = join(packageRoot(), 'bench', 'results', 'gateway.json');
    writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), seconds, load, rows, summary }, null, 2)}\n`);
    console.log(`written: ${file}`);
  }
}

await main();
