import type { EmbeddedApp } from '../app/embedded.js';
import { startHttpServer } from '../app/http.js';
import { embeddedDashboard } from '../app/dashboard/wiring.js';
import { dashboardPlugin } from '../app/dashboard/plugin.js';

/** `demo --serve` (and the dashboard's browser tests): the live dashboard of the demo's engine. */
export interface DemoDashboardOptions {
  host?: string;
  /** 0 = any free port. */
  port: number;
  /** Called with the dashboard's URL once it serves, before the traffic starts. */
  onReady?(url: string): Promise<void> | void;
  /** Called after the summary while the engine and the dashboard still run; the demo ends when it resolves. */
  afterTraffic?(url: string, app: EmbeddedApp): Promise<void>;
}

export interface DemoDashboard {
  url: string;
  close(): Promise<void>;
}

/** Serves the dashboard (with /metrics and /healthz) of the demo's engine; its time axis is the demo's simulated clock. */
export async function startDemoDashboard(app: EmbeddedApp, now: () => number, options: DemoDashboardOptions): Promise<DemoDashboard> {
  // The demo's traffic takes seconds: read the ledger every second so promotions show at once.
  const collector = embeddedDashboard(app, { now, settings: { ledgerRefreshMs: 1000 } });
  const host = options.host ?? '127.0.0.1';
  try {
    const http = await startHttpServer({
      host,
      port: options.port,
      metrics: app.metrics,
      logger: app.logger,
      routes: { health: () => ({ healthy: true, details: { mode: 'embedded', demo: true } }), refreshMetrics: () => void app.runtime.lag() },
      plugins: [dashboardPlugin(collector)],
    });
    return {
      url: `http://${host}:${http.port}/`,
      close: async () => {
        await collector.stop();
        await http.close();
      },
    };
  } catch (err) {
    await collector.stop();
    throw err;
  }
}
