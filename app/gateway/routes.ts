import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram } from 'prom-client';
import type { Logger } from '../../engine/logger.js';
import type { EngineMetrics } from '../../engine/metrics.js';
import type { ModelEvent, ModelRegistry, ServedModel } from '../../models/model-registry.js';
import type { PrivacyPolicy } from '../../processors/privacy.js';
import type { Prediction } from '../../schemas/types.js';
import type { HttpPlugin } from '../http.js';
import { MicroBatcher, QueueFullError } from './batcher.js';
import { FeedbackBodyError, feedbackItems, validateFeedback } from './feedback.js';
import { inferRequestSchema, inferResponse, modelMetadata, OipInputError, readRows, type OipInferRequest, type OipInferResponse } from './oip.js';
import { RequestIdGenerator } from './request-id.js';
import type { GatewaySink } from './sink.js';

export interface GatewaySettings {
  maxRowsPerRequest: number;
  maxBatchRows: number;
  maxQueueRows: number;
  retryAfterSeconds: number;
  maxFeedbackRecords: number;
  /** `predictor.featureDefaults`: per category, "*" for all. */
  featureDefaults: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** `input.rejectUnknownCategories`: the configured categories; other categories are 400s. */
  knownCategories?: ReadonlySet<string>;
}

export interface GatewayDeps {
  models: ModelRegistry;
  sink: GatewaySink;
  privacy: PrivacyPolicy;
  settings: GatewaySettings;
  logger: Logger;
  metrics: EngineMetrics;
  /** The engine is running (for /v2/health/ready). */
  ready(): boolean;
  now?: () => number;
}

interface Answer {
  predictions: Prediction[];
  response: OipInferResponse;
}

const CATEGORY = { type: 'string', pattern: '^[A-Za-z0-9._-]+$', maxLength: 200 } as const;
const categoryParams = { type: 'object', required: ['category'], properties: { category: CATEGORY } } as const;
const versionParams = { type: 'object', required: ['category', 'version'], properties: { category: CATEGORY, version: { type: 'string', minLength: 1, maxLength: 200 } } } as const;

type InferRoute = { Params: { category: string; version?: string }; Body: OipInferRequest };

/**
 * The gateway's routes (docs/gateway.md): OIP inference and metadata under /v2, feedback under /v1.
 * Each route declares the token scope it needs (`config.auth`), read by the server's auth hook.
 */
export function gatewayRoutes(deps: GatewayDeps): HttpPlugin {
  const { models, sink, privacy, settings, logger } = deps;
  const now = deps.now ?? Date.now;
  const ids = new RequestIdGenerator(now);
  const metrics = gatewayMetrics(deps.metrics);
  const batcher = new MicroBatcher<Answer>({
    models,
    maxBatchRows: settings.maxBatchRows,
    maxQueueRows: settings.maxQueueRows,
    commit: (answers) => sink.appendPredictions(answers.flatMap((a) => a.predictions)),
    observeBatch: (rows) => metrics.batchRows.observe(rows),
  });

  const serving = async (category: string): Promise<ServedModel> => {
    report(await models.refresh(), logger);
    if (settings.knownCategories && !settings.knownCategories.has(category)) {
      throw new OipInputError(`category "${category}" is not configured (known: ${[...settings.knownCategories].join(', ')})`);
    }
    const served = models.resolve(category);
    if (!served) {
      const known = models.serving().map((s) => s.category);
      throw new OipInputError(`no model serves category "${category}" (${known.length === 0 ? 'no model is published yet' : `models exist for: ${known.join(', ')}`})`);
    }
    return served;
  };

  const infer = async (request: FastifyRequest<InferRoute>, reply: FastifyReply): Promise<unknown> => {
    const arrived = now();
    const { category, version } = request.params;
    try {
      const served = await serving(category);
      if (version !== undefined && version !== served.version) {
        throw new OipInputError(`model ${category} has no version "${version}" being served (serving: ${served.version}); pin only the serving version, or call /v2/models/${category}/infer`, 404);
      }
      const defaults = { ...settings.featureDefaults['*'], ...settings.featureDefaults[category] };
      const read = readRows(request.body, served, defaults, settings.maxRowsPerRequest);
      const requestIds = read.requestIds.map((id) => id ?? ids.next());
      const attributes = read.attributes.map((a) => privacy.protect(category, a));
      const answer = await batcher.submit({
        served,
        rows: read.rows,
        complete: (outputs) => {
          const at = now();
          const predictions = outputs.map((p, r): Prediction => {
            const bad = Object.entries(p.scores).find(([, v]) => !Number.isFinite(v));
            if (bad) throw new Error(`model ${category} version ${served.version} gave a non-finite score for class "${bad[0]}"`);
            return {
              requestId: requestIds[r] as string,
              category,
              features: read.features[r] as Record<string, number>,
              attributes: attributes[r] as Record<string, string>,
              predictedLabel: p.label,
              scores: p.scores,
              modelVersion: served.version,
              modelHash: served.modelSha256,
              requestTimestamp: arrived,
              timestamp: Math.max(at, arrived),
            };
          });
          const callId = requestIds.length === 1 ? (requestIds[0] as string) : (request.body.id ?? (requestIds[0] as string));
          return { predictions, response: inferResponse(served, callId, requestIds, outputs, request.body.outputs) };
        },
      });
      return answer.response;
    } catch (err) {
      return failure(reply, err, request, settings.retryAfterSeconds);
    }
  };

  return async (app) => {
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unknown';
      metrics.requests.inc({ route, code: String(reply.statusCode) });
      metrics.seconds.observe({ route }, reply.elapsedTime / 1000);
    });
    // OIP clients (tritonclient among them) send JSON without a content type: read it as JSON.
    app.addHook('onRequest', async (request, reply) => {
      if (request.method !== 'POST') return;
      if (request.headers['inference-header-content-length'] !== undefined) {
        await reply.status(400).send({ error: 'the binary tensor extension (Inference-Header-Content-Length) is not supported: send the inputs as JSON (tritonclient: binary_data=False)' });
        return;
      }
      if (request.headers['content-type'] === undefined) request.headers['content-type'] = 'application/json';
    });
    // JSON lines for /v1/feedback; everything else is JSON.
    app.addContentTypeParser(['application/x-ndjson', 'application/jsonl', 'text/plain'], { parseAs: 'string' }, (_request, body, done) => done(null, body));

    const inferSchema = inferRequestSchema(settings.maxRowsPerRequest, 4096);
    app.post<InferRoute>('/v2/models/:category/infer', { schema: { params: categoryParams, body: inferSchema }, config: { auth: 'infer' } }, infer);
    app.post<InferRoute>('/v2/models/:category/versions/:version/infer', { schema: { params: versionParams, body: inferSchema }, config: { auth: 'infer' } }, infer);

    const metadata = async (request: FastifyRequest<{ Params: { category: string; version?: string } }>, reply: FastifyReply): Promise<unknown> => {
      try {
        const served = await serving(request.params.category);
        if (request.params.version !== undefined && request.params.version !== served.version) {
          throw new OipInputError(`model ${served.category} has no version "${request.params.version}" being served (serving: ${served.version})`, 404);
        }
        return modelMetadata(served);
      } catch (err) {
        return failure(reply, err, request, settings.retryAfterSeconds);
      }
    };
    app.get('/v2/models/:category', { schema: { params: categoryParams }, config: { auth: 'infer' } }, metadata);
    app.get('/v2/models/:category/versions/:version', { schema: { params: versionParams }, config: { auth: 'infer' } }, metadata);
    // OIP: GET v2/models/{name}[/versions/{version}]/ready; only the serving version is ready
    const ready = async (request: FastifyRequest<{ Params: { category: string; version?: string } }>, reply: FastifyReply) => {
      report(await models.refresh(), logger);
      const { category, version } = request.params;
      const served = models.resolve(category);
      if (!served) return reply.status(404).send({ error: `no model serves category "${category}"` });
      if (version !== undefined && version !== served.version) return reply.status(404).send({ error: `model ${category} has no version "${version}" being served (serving: ${served.version})` });
      return { name: category, version: served.version, ready: true };
    };
    app.get('/v2/models/:category/ready', { schema: { params: categoryParams }, config: { auth: 'infer' } }, ready);
    app.get('/v2/models/:category/versions/:version/ready', { schema: { params: versionParams }, config: { auth: 'infer' } }, ready);
    app.get('/v2', { config: { auth: 'public' } }, () => ({ name: 'sampleloop', extensions: [] }));
    app.get('/v2/health/live', { config: { auth: 'public' } }, () => ({ live: true }));
    app.get('/v2/health/ready', { config: { auth: 'public' } }, (_request, reply) => (deps.ready() ? { ready: true } : reply.status(503).send({ ready: false })));

    app.post('/v1/feedback', { schema: { body: { anyOf: [{ type: 'object' }, { type: 'array' }, { type: 'string' }] } }, config: { auth: 'feedback' } }, async (request, reply) => {
      try {
        const { accepted, results } = validateFeedback(feedbackItems(request.body, settings.maxFeedbackRecords), now());
        if (accepted.length > 0) await sink.appendFeedback(accepted);
        const body = { accepted: accepted.length, rejected: results.length - accepted.length, results };
        return accepted.length === 0 ? reply.status(400).send({ error: 'no feedback record was accepted', ...body }) : body;
      } catch (err) {
        if (err instanceof FeedbackBodyError) return reply.status(400).send({ error: err.message });
        return failure(reply, err, request, settings.retryAfterSeconds);
      }
    });
  };
}

/** 400/404 for the caller's mistakes, 503 + Retry-After when the queue is full or the log refuses, 500 otherwise. */
function failure(reply: FastifyReply, err: unknown, request: FastifyRequest, retryAfterSeconds: number): FastifyReply {
  if (err instanceof OipInputError) return reply.status(err.status).send({ error: err.message });
  if (err instanceof QueueFullError) return reply.status(503).header('retry-after', String(retryAfterSeconds)).send({ error: err.message });
  const message = err instanceof Error ? err.message : String(err);
  const retriable = (err as { retriable?: boolean }).retriable === true;
  request.log.error({ err: message, route: request.routeOptions.url }, 'gateway request failed');
  if (retriable) return reply.status(503).header('retry-after', String(retryAfterSeconds)).send({ error: message });
  return reply.status(500).send({ error: message });
}

function report(events: ModelEvent[], logger: Logger): void {
  for (const event of events) {
    if (event.kind === 'loaded') logger.info(event, event.replaced === null ? 'gateway: model loaded' : 'gateway: model swapped');
    else if (event.kind === 'ledger-unreadable') logger.error(event, 'gateway: reading the model ledger failed; serving the models already loaded');
    else logger.error(event, 'gateway: model version refused; the previous version keeps serving');
  }
}

function gatewayMetrics(metrics: EngineMetrics): { requests: Counter<'route' | 'code'>; seconds: Histogram<'route'>; batchRows: Histogram } {
  const registers = [metrics.registry];
  const existing = (name: string): unknown => metrics.registry.getSingleMetric(name);
  return {
    requests: (existing('sampleloop_gateway_requests_total') as Counter<'route' | 'code'> | undefined) ??
      new Counter({ name: 'sampleloop_gateway_requests_total', help: 'Gateway calls by route and HTTP status', labelNames: ['route', 'code'], registers }),
    seconds: (existing('sampleloop_gateway_request_seconds') as Histogram<'route'> | undefined) ??
      new Histogram({ name: 'sampleloop_gateway_request_seconds', help: 'Gateway call latency, received to answered', labelNames: ['route'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers }),
    batchRows: (existing('sampleloop_gateway_batch_rows') as Histogram | undefined) ??
      new Histogram({ name: 'sampleloop_gateway_batch_rows', help: 'Rows per onnxruntime run of the gateway (micro-batch size)', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers }),
  };
}
