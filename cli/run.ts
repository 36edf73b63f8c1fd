import { rmSync, writeFileSync } from 'node:fs';
import { startEmbeddedApp } from '../engine/embedded/app.js';
import { directAccess } from '../engine/embedded/access.js';
import type { SampleloopConfig } from '../engine/config.js';
import { ConfigError } from '../engine/errors.js';
import { startHttpServer } from '../engine/http.js';
import { engineInfoPath, type EngineInfo } from './context.js';

/** `sampleloop run`: the samples topology on the embedded log until SIGTERM/SIGINT. */
export async function runEngine(config: SampleloopConfig, options: { signal?: AbortSignal } = {}): Promise<void> {
  if (config.mode === 'kafka') {
    throw new ConfigError('mode "kafka" is not available in this release yet; set "mode": "embedded" (the default) — see docs/configuration.md');
  }
  const app = await startEmbeddedApp(config);
  const { logger, runtime, log } = app;
  const http = await startHttpServer({
    host: config.http.host,
    port: config.http.port,
    metrics: app.metrics,
    logger,
    routes: {
      health: () => ({ healthy: true, details: { mode: 'embedded', tasks: runtime.taskList().length, lag: runtime.lag() } }),
      log: directAccess(log, app.registry),
    },
  });
  const info: EngineInfo = { pid: process.pid, url: `http://${config.http.host}:${http.port}` };
  writeFileSync(engineInfoPath(config.dataDir), JSON.stringify(info));
  logger.info({ dataDir: config.dataDir, url: info.url, topics: config.topics }, 'sampleloop engine running (embedded mode)');

  const controller = new AbortController();
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down: finishing the current step and committing');
    controller.abort();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  options.signal?.addEventListener('abort', () => controller.abort());

  const maintenance = setInterval(() => {
    try {
      runtime.commit();
      for (const [topic, c] of log.listTopics()) if (c.compact) log.compact(topic);
      log.enforceRetention();
      const lag = runtime.lag();
      logger.info({ lag: lag.reduce((s, l) => s + l.lag, 0) }, 'maintenance done (compaction, retention)');
    } catch (err) {
      logger.error({ err }, 'maintenance failed');
    }
  }, config.embedded.maintenanceIntervalMs);

  try {
    await runtime.run(controller.signal);
  } finally {
    clearInterval(maintenance);
    await http.close();
    await app.close();
    rmSync(engineInfoPath(config.dataDir), { force: true });
    logger.info('stopped cleanly');
  }
}
