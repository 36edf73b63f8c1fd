import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { LogAccess } from '../access/embedded.js';
import { ConfigError } from '../engine/errors.js';
import type { Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';
import { topicRoutes } from './http-topics.js';

export interface HttpRoutes {
  health(): { healthy: boolean; details: Record<string, unknown> };
  /** The embedded log, for the CLI while this process holds it (produce, consume, inspect). */
  log?: LogAccess;
  /** Brings gauges computed on demand (embedded consumer lag) up to date before each scrape. */
  refreshMetrics?(): void;
}

/**
 * A part of the HTTP API that app code adds to the one server (the gateway, the dashboard): a fastify
 * plugin, registered in its own encapsulation context after the built-in routes. It declares its
 * routes with JSON schemas; the server's error handler turns failures into `{ "error": message }`.
 */
export type HttpPlugin = FastifyPluginAsync;

export interface HttpLimits {
  /** Largest request body of any route but the topic API's POST, in bytes. */
  bodyLimitBytes: number;
  /** Largest body of `POST /topics/<topic>/records` (JSON lines), in bytes. */
  topicsBodyLimitBytes: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { bodyLimitBytes: 1024 * 1024, topicsBodyLimitBytes: 32 * 1024 * 1024 };

export interface HttpServerOptions {
  host: string;
  port: number;
  metrics: EngineMetrics;
  routes: HttpRoutes;
  logger: Logger;
  limits?: HttpLimits;
  /** Route plugins of the application, registered in this order (e.g. the gateway's /v2 and /v1 routes). */
  plugins?: ReadonlyArray<HttpPlugin>;
}

export interface HttpServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** One fastify server: /metrics (Prometheus), /healthz, in embedded mode the topic API, and the app's plugins. */
export async function buildHttpServer(options: Omit<HttpServerOptions, 'host' | 'port'>): Promise<FastifyInstance> {
  const limits = options.limits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // No line per request: request bodies may hold sensitive attributes, and the volume would drown the engine's log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyLimitBytes,
    // Number coercion of query strings only; bodies are validated as they are.
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, allErrors: false } },
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: err.message, code: err.code, url: request.routeOptions.url }, 'http request failed');
    void reply.status(status).send({ error: errorText(err) });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: `no route ${request.method} ${request.url.split('?')[0] ?? ''}; try GET /metrics, GET /healthz, GET /topics, GET|POST /topics/<topic>/records` });
  });

  app.get('/metrics', async (_request, reply) => {
    options.routes.refreshMetrics?.();
    const text = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(text);
  });
  const health = async (_request: unknown, reply: { status(code: number): { send(body: unknown): unknown } }): Promise<void> => {
    const h = options.routes.health();
    await reply.status(h.healthy ? 200 : 503).send({ status: h.healthy ? 'ok' : 'unhealthy', ...h.details });
  };
  app.get('/healthz', health);
  app.get('/health', health);
  if (options.routes.log) await app.register(topicRoutes(options.routes.log, limits.topicsBodyLimitBytes));
  for (const plugin of options.plugins ?? []) await app.register(plugin);
  return app;
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const app = await buildHttpServer(options);
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${options.host}:${options.port}`;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConfigError(
        `cannot listen on ${where} for /metrics, /healthz and the topic API (${code}); ` +
          'if another process (perhaps another sampleloop engine) uses the port, pick another with --http-port or http.port (0 = any free port)',
        { cause: err },
      );
    }
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  return { server: app.server, port, close: () => app.close() };
}

/** The message of a failed request: a validation error names the field ("body/inputs/0/name must be string"). */
function errorText(err: FastifyError): string {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return `${err.message} (the route's body limit; see http.bodyLimitBytes / http.topicsBodyLimitBytes)`;
  return err.message;
}
