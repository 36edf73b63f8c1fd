/**
 * The dashboard behind bearer tokens (http.tokensFile), on the engine's own HTTP server: a browser
 * opens the page without a token (it holds no data), the API it reads needs an admin token.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directAccess } from '../../access/embedded.js';
import { DashboardCollector } from '../../app/dashboard/collector.js';
import { dashboardPlugin } from '../../app/dashboard/plugin.js';
import { BearerTokens } from '../../app/http-auth.js';
import { startHttpServer, type HttpServer } from '../../app/http.js';
import { EmbeddedLog } from '../../engine/embedded/log.js';
import { silentLogger } from '../../engine/logger.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { readLedger } from '../../models/ledger.js';
import { rocksRegistryStorage } from '../../schemas/registry-storage.js';
import { LocalSchemaRegistry } from '../../schemas/registry.js';

describe('the dashboard with bearer tokens', () => {
  let dir: string;
  let log: EmbeddedLog;
  let collector: DashboardCollector;
  let server: HttpServer;
  const tokens = { admin: ['admin-token-0123456789'], infer: ['infer-token-0123456789'] };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sampleloop-dashboard-auth-'));
    log = await EmbeddedLog.open(join(dir, 'log'));
    const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    const metrics = new EngineMetrics();
    collector = new DashboardCollector(
      { mode: 'embedded', metrics, topics: { predictions: 'predictions', feedback: 'feedback', samples: 'samples' }, accuracyFloor: 0.8, now: () => Date.now(), readLedger: () => readLedger(access, 'models'), stateBytes: () => 0 },
      { resolutionMs: 1000, retentionMs: 60_000, recentDeadLetters: 10, ledgerRefreshMs: 60_000 },
    );
    collector.start();
    const file = join(dir, 'tokens.json');
    writeFileSync(file, JSON.stringify(tokens));
    server = await startHttpServer({ host: '127.0.0.1', port: 0, metrics, logger: silentLogger(), routes: { health: () => ({ healthy: true, details: {} }) }, plugins: [dashboardPlugin(collector)], tokens: BearerTokens.fromFile(file) });
  });
  afterEach(async () => {
    await server.close();
    await collector.stop();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page and its scripts without a token, the API only with an admin token', async () => {
    const url = `http://127.0.0.1:${server.port}`;
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    for (const asset of ['/dashboard/dashboard.js', '/dashboard/dashboard.css', '/dashboard/uPlot.iife.min.js']) expect((await fetch(`${url}${asset}`)).status, asset).toBe(200);
    // the page reads the token from #token=... and sends it as a bearer token
    expect(await (await fetch(`${url}/dashboard/dashboard.js`)).text()).toContain("headers.authorization = 'Bearer ' + token");

    expect((await fetch(`${url}/api/v1/overview`)).status).toBe(401);
    expect((await fetch(`${url}/api/v1/overview`, { headers: { authorization: `Bearer ${tokens.infer[0]}` } })).status).toBe(401);
    const overview = await fetch(`${url}/api/v1/series/traffic?step=2000`, { headers: { authorization: `Bearer ${tokens.admin[0]}` } });
    expect(overview.status).toBe(200);
    expect(((await overview.json()) as { stepMs: number }).stepMs).toBe(2000);
  });
});
