import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import type { EmbeddedApp } from '../app/embedded.js';
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

/** Serves the dashboard of the demo's engine; its time axis is the demo's simulated clock. */
export async function startDemoDashboard(app: EmbeddedApp, now: () => number, options: DemoDashboardOptions): Promise<DemoDashboard> {
  // The demo's traffic takes seconds: read the ledger every second so promotions show at once.
  const collector = embeddedDashboard(app, { now, settings: { ledgerRefreshMs: 1000 } });
  const server = Fastify();
  server.get('/metrics', async (_request, reply) => reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics()));
  await server.register(dashboardPlugin(collector));
  const host = options.host ?? '127.0.0.1';
  await server.listen({ host, port: options.port });
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/`,
    close: async () => {
      await collector.stop();
      await server.close();
    },
  };
}
