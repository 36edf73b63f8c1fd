import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LogAccess } from '../access/embedded.js';
import { ConfigError } from '../engine/errors.js';
import type { Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';

export interface HttpRoutes {
  health(): { healthy: boolean; details: Record<string, unknown> };
  /** The embedded log, for the CLI while this process holds it (produce, consume, inspect). */
  log?: LogAccess;
  /** Brings gauges computed on demand (embedded consumer lag) up to date before each scrape. */
  refreshMetrics?(): void;
}

/** /metrics (Prometheus), /healthz, and in embedded mode POST /topics/<topic>/records. */
export async function startHttpServer(options: { host: string; port: number; metrics: EngineMetrics; routes: HttpRoutes; logger: Logger }): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    handle(req, res, options).catch((err: unknown) => {
      options.logger.error({ err }, 'http request failed');
      if (!res.headersSent) send(res, 500, { error: String(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = `${options.host}:${options.port}`;
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
        reject(
          new ConfigError(
            `cannot listen on ${where} for /metrics, /healthz and the topic API (${err.code}); ` +
              'if another process (perhaps another sampleloop engine) uses the port, pick another with --http-port or http.port (0 = any free port)',
            { cause: err },
          ),
        );
      } else reject(err);
    });
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: { metrics: EngineMetrics; routes: HttpRoutes }): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/metrics') {
    options.routes.refreshMetrics?.();
    res.writeHead(200, { 'content-type': options.metrics.registry.contentType });
    res.end(await options.metrics.registry.metrics());
    return;
  }
  if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/health')) {
    const h = options.routes.health();
    send(res, h.healthy ? 200 : 503, { status: h.healthy ? 'ok' : 'unhealthy', ...h.details });
    return;
  }
  const log = options.routes.log;
  if (log && req.method === 'GET' && url.pathname === '/topics') {
    send(res, 200, await log.topics());
    return;
  }
  if (log && req.method === 'GET' && url.pathname === '/stores') {
    send(res, 200, await log.stores());
    return;
  }
  const records = /^\/topics\/([A-Za-z0-9._-]+)\/records$/.exec(url.pathname);
  if (log && records) {
    const topic = records[1] as string;
    const q = url.searchParams;
    const int = (name: string): number | undefined => (q.has(name) ? Number.parseInt(q.get(name) as string, 10) : undefined);
    try {
      if (req.method === 'POST') {
        const partitions = int('partitions');
        send(res, 200, await log.produce(topic, await readBody(req), { keyField: q.get('keyField') ?? 'requestId', ...(partitions ? { createPartitions: partitions } : {}) }));
        return;
      }
      if (req.method === 'GET') {
        const from = int('from');
        const partition = int('partition');
        const max = int('max');
        send(res, 200, await log.read(topic, { ...(from !== undefined ? { from } : {}), ...(partition !== undefined ? { partition } : {}), ...(max !== undefined ? { max } : {}) }));
        return;
      }
    } catch (err) {
      send(res, 400, { error: err instanceof Error ? err.message : String(err) });
      return;
    }
  }
  send(res, 404, { error: `no route ${req.method ?? ''} ${url.pathname}; try GET /metrics, GET /healthz, GET /topics, GET|POST /topics/<topic>/records` });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
