import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { LogAccess } from '../access/embedded.js';
import { ConfigError } from '../engine/errors.js';
import type { Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';
import { topicRoutes } from './http-topics.js';
import { bearerToken, isLoopback, type BearerTokens } from './http-auth.js';

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
  /**
   * Route plugins of the application, registered in this order (the gateway's /v2 and /v1 routes, the
   * dashboard). A route declares the token scope it needs with `config: { auth: 'infer' | 'feedback' |
   * 'topics' | 'public' | ... }`; without one it needs an `admin` token (when tokens are configured).
   */
  plugins?: ReadonlyArray<HttpPlugin>;
  /** Bearer tokens by scope; unset: no authentication (then only a loopback host is allowed, unless `allowUnauthenticated`). */
  tokens?: BearerTokens;
  /** PEM files: the server speaks HTTPS only. */
  tls?: { certFile: string; keyFile: string };
  allowUnauthenticated?: boolean;
}

export interface HttpServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/**
 * No coercion: a string where a number belongs (or a number where a string belongs) is a 400, not
 * converted. Query strings are text, so routes declare their numeric parameters as digit strings.
 */
export const HTTP_AJV_OPTIONS = { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } } as const;

/** One fastify server: /metrics (Prometheus), /healthz, in embedded mode the topic API, and the app's plugins. */
export async function buildHttpServer(options: Omit<HttpServerOptions, 'host' | 'port'>): Promise<FastifyInstance> {
  const limits = options.limits ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    ...(options.tls ? { https: tlsFiles(options.tls) } : {}),
    loggerInstance: options.logger.child({ component: 'http' }) as FastifyBaseLogger,
    // No line per request: request bodies may hold sensitive attributes, and the volume would drown the engine's log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyLimitBytes,
    ajv: HTTP_AJV_OPTIONS,
  });
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: err.message, code: err.code, url: request.routeOptions.url }, 'http request failed');
    void reply.status(status).send({ error: errorText(err) });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: `no route ${request.method} ${request.url.split('?')[0] ?? ''}; try GET /metrics, GET /healthz, GET /topics, GET|POST /topics/<topic>/records` });
  });

  const tokens = options.tokens;
  if (tokens) {
    app.addHook('onRequest', async (request, reply) => {
      // no route matched: the 404 names no data, and a 401 would tell a caller with a good token that it is wrong
      if (request.routeOptions.url === undefined) return;
      const scope = (request.routeOptions.config as { auth?: string } | undefined)?.auth ?? 'admin';
      if (scope === 'public') return;
      const token = bearerToken(request.headers.authorization);
      if (token !== undefined && tokens.allows(scope, token)) return;
      await reply
        .status(401)
        .header('www-authenticate', `Bearer realm="sampleloop", scope="${scope}"`)
        .send({ error: `${token === undefined ? 'no bearer token' : 'the bearer token is not valid'} for this route (scope "${scope}"): send Authorization: Bearer <token> with a token of that scope` });
    });
  }

  app.get('/metrics', { config: { auth: 'public' } }, async (_request, reply) => {
    options.routes.refreshMetrics?.();
    const text = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(text);
  });
  const health = async (_request: unknown, reply: { status(code: number): { send(body: unknown): unknown } }): Promise<void> => {
    const h = options.routes.health();
    await reply.status(h.healthy ? 200 : 503).send({ status: h.healthy ? 'ok' : 'unhealthy', ...h.details });
  };
  app.get('/healthz', { config: { auth: 'public' } }, health);
  app.get('/health', { config: { auth: 'public' } }, health);
  if (options.routes.log) await app.register(topicRoutes(options.routes.log, limits.topicsBodyLimitBytes));
  for (const plugin of options.plugins ?? []) await app.register(plugin);
  return app;
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  if (!isLoopback(options.host) && !options.tokens && !options.allowUnauthenticated) {
    throw new ConfigError(
      `http.host ${options.host} is reachable from other machines, and no http.tokensFile is configured: anyone could call the gateway and the topic API. ` +
        'Configure bearer tokens (http.tokensFile, with http.tls), or set http.allowUnauthenticated: true to do it on purpose',
    );
  }
  if (!isLoopback(options.host) && options.tokens && !options.tls) {
    options.logger.warn({ host: options.host }, 'http: bearer tokens over plain HTTP on a non-loopback address travel in clear; configure http.tls');
  }
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

function tlsFiles(tls: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  try {
    return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  } catch (err) {
    throw new ConfigError(`http.tls: cannot read ${tls.certFile} / ${tls.keyFile}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The message of a failed request: a validation error names the field ("body/inputs/0/name must be string"). */
function errorText(err: FastifyError): string {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return `${err.message} (the route's body limit; see http.bodyLimitBytes / http.topicsBodyLimitBytes)`;
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    // curl -d and Python's urllib send application/x-www-form-urlencoded unless told otherwise
    return `${err.message}: this route reads JSON; send "content-type: application/json" (with curl: -H 'content-type: application/json')`;
  }
  return err.message;
}
