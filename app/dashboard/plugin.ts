import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { packageRoot } from '../../config/paths.js';
import type { DashboardCollector } from './collector.js';
import * as views from './views.js';

/** The page's own files (app/dashboard/page, read from the package: no build step). */
const PAGE_FILES: Record<string, string> = {
  '/': 'index.html',
  '/dashboard/dashboard.js': 'dashboard.js',
  '/dashboard/dashboard.css': 'dashboard.css',
};
const CONTENT_TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

// Query values arrive as text and the engine's server does not coerce types (app/http.ts), so the
// schemas take digit strings and the handlers turn them into numbers.
const digitString = (description: string) => ({ type: 'string', pattern: '^[0-9]{1,15}$', description }) as const;

const windowQuery = {
  type: 'object',
  properties: {
    from: digitString('oldest slot to return, ms since the epoch'),
    step: digitString('step of the series in ms (rounded to whole slots), at least 1'),
  },
  additionalProperties: false,
} as const;

interface WindowRequest {
  Querystring: { from?: string; step?: string };
}

class QueryError extends Error {
  readonly statusCode = 400;
}

function windowOf(query: WindowRequest['Querystring']): views.WindowQuery {
  const step = query.step === undefined ? undefined : Number(query.step);
  if (step === 0) throw new QueryError('querystring/step must be at least 1 (ms)');
  return { ...(query.from !== undefined ? { from: Number(query.from) } : {}), ...(step !== undefined ? { step } : {}) };
}

function limitOf(limit: string | undefined, fallback: number): number {
  if (limit === undefined) return fallback;
  const n = Number(limit);
  if (n < 1 || n > 1000) throw new QueryError('querystring/limit must be between 1 and 1000');
  return n;
}

function pageAssets(): Map<string, { body: Buffer; type: string }> {
  const dir = join(packageRoot(), 'app', 'dashboard', 'page');
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const [url, file] of Object.entries(PAGE_FILES)) assets.set(url, { body: readFileSync(join(dir, file)), type: CONTENT_TYPES[file.split('.').pop() as string] as string });
  // uPlot, served from the installed package (no CDN: the engine's machine may have no internet).
  const require = createRequire(import.meta.url);
  assets.set('/dashboard/uPlot.iife.min.js', { body: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js')), type: CONTENT_TYPES.js as string });
  assets.set('/dashboard/uPlot.min.css', { body: readFileSync(require.resolve('uplot/dist/uPlot.min.css')), type: CONTENT_TYPES.css as string });
  return assets;
}

/**
 * The dashboard as a fastify plugin: the page at `/` (with its script, style and uPlot under
 * `/dashboard/`) and the JSON API under `/api/v1/` that the page reads (docs/operations.md).
 */
export function dashboardPlugin(collector: DashboardCollector): FastifyPluginAsync {
  const assets = pageAssets();
  return async (app) => {
    for (const [url, asset] of assets) {
      // the page and its scripts hold no data and a browser cannot send a bearer token when it opens a
      // page: they are public; the page sends the token (from #token=...) with every /api/v1 call
      app.get(url, { config: { auth: 'public' } }, async (_request, reply) => reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body));
    }
    app.get('/api/v1/overview', async () => views.overview(collector));
    app.get<WindowRequest>('/api/v1/series/traffic', { schema: { querystring: windowQuery } }, async (request) => views.traffic(collector, windowOf(request.query)));
    app.get<WindowRequest>('/api/v1/series/outcomes', { schema: { querystring: windowQuery } }, async (request) => views.outcomes(collector, windowOf(request.query)));
    app.get<WindowRequest>('/api/v1/series/label-delay', { schema: { querystring: windowQuery } }, async (request) => views.labelDelay(collector, windowOf(request.query)));
    app.get<WindowRequest>('/api/v1/series/accuracy', { schema: { querystring: windowQuery } }, async (request) => views.accuracy(collector, windowOf(request.query)));
    app.get<WindowRequest>('/api/v1/series/runtime', { schema: { querystring: windowQuery } }, async (request) => views.runtime(collector, windowOf(request.query)));
    app.get('/api/v1/ledger', async () => views.ledger(collector));
    app.get<{ Querystring: { limit?: string } }>(
      '/api/v1/dead-letters',
      { schema: { querystring: { type: 'object', properties: { limit: digitString('how many, 1..1000') }, additionalProperties: false } } },
      async (request) => views.deadLetters(collector, limitOf(request.query.limit, collector.settings.recentDeadLetters)),
    );
  };
}
