import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { ingressAccess, startEmbeddedApp } from '../app/embedded.js';
import { DEFAULT_SENSITIVE_RULES, type SampleloopConfig } from '../config/config.js';
import { startKafkaApp } from '../app/kafka.js';
import { startHttpServer, type HttpServerOptions } from '../app/http.js';
import { BearerTokens } from '../app/http-auth.js';
import { embeddedGateway, kafkaGateway } from '../app/gateway/index.js';
import { dashboardPlugin } from '../app/dashboard/plugin.js';
import { embeddedDashboard, kafkaDashboard } from '../app/dashboard/wiring.js';
import { engineInfoPath, type EngineInfo } from './context.js';
import { errorMessage } from '../engine/errors.js';
import type { Logger } from '../engine/logger.js';

const DEFAULT_SENSITIVE = DEFAULT_SENSITIVE_RULES.map((rule) => rule.field);

/**
 * The default sensitive fields (idNumber, name, phone) that a `privacy.alwaysSensitive` set in the
 * configuration left out: setting it replaces the defaults, so adding one field by itself would
 * otherwise let these reach the outputs in clear without a word.
 */
export function unprotectedDefaultFields(config: SampleloopConfig): string[] {
  const always = new Set(config.privacy.alwaysSensitive.map((rule) => rule.field));
  return DEFAULT_SENSITIVE.filter((field) => !always.has(field));
}

function warnUnprotectedDefaults(config: SampleloopConfig, logger: { warn: (obj: object, msg: string) => void }): void {
  const fields = unprotectedDefaultFields(config);
  if (fields.length === 0) return;
  logger.warn(
    { fields },
    `privacy.alwaysSensitive replaces the defaults and leaves out ${fields.join(', ')}: those attributes are protected only in categories whose "sensitive" lists them (docs/configuration.md)`,
  );
}

/** `sampleloop run`: the samples topology on the embedded log until SIGTERM/SIGINT. */
export async function runEngine(config: SampleloopConfig, options: { signal?: AbortSignal } = {}): Promise<void> {
  if (config.mode === 'kafka') return runOnKafka(config, options);
  const app = await startEmbeddedApp(config);
  const { logger, runtime, log } = app;
  let running = true;
  const gateway =
    config.gateway.enabled && app.models
      ? await embeddedGateway({ config, models: app.models, registry: app.registry, privacy: app.privacy, logger, metrics: app.metrics, ready: () => running, log })
      : undefined;
  // The collector runs whether or not the page is served: it exports sampleloop_live_accuracy and the other app metrics.
  const dashboard = embeddedDashboard(app);
  const http = await startHttpServer({
    ...httpServerSettings(config),
    plugins: [...(gateway ? [gateway.plugin] : []), ...(config.dashboard.enabled ? [dashboardPlugin(dashboard)] : [])],
    metrics: app.metrics,
    logger,
    routes: {
      health: () => ({ healthy: true, details: { mode: 'embedded', tasks: runtime.taskList().length, lag: runtime.lag() } }),
      log: ingressAccess(app),
      // sampleloop_consumer_lag is computed from the log's offsets: without this a scrape saw it only
      // after a /healthz call or a maintenance run (every embedded.maintenanceIntervalMs), stale between.
      refreshMetrics: () => void runtime.lag(),
    },
  });
  const info: EngineInfo = { pid: process.pid, url: `${config.http.tls ? 'https' : 'http'}://${config.http.host}:${http.port}` };
  // Written whole under another name, then renamed: a reader never sees a half-written file.
  const infoPath = engineInfoPath(config.dataDir);
  writeFileSync(`${infoPath}.tmp`, JSON.stringify(info));
  renameSync(`${infoPath}.tmp`, infoPath);
  logger.info({ dataDir: config.dataDir, url: info.url, topics: config.topics }, 'sampleloop engine running (embedded mode)');
  warnUnprotectedDefaults(config, logger);

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
      const trimmed = app.trimProcessedInput();
      const lag = runtime.lag();
      logger.info({ lag: lag.reduce((s, l) => s + l.lag, 0), inputRecordsTrimmed: trimmed }, 'maintenance done (compaction, retention, processed input trimmed)');
    } catch (err) {
      logger.error({ err }, 'maintenance failed');
    }
  }, config.embedded.maintenanceIntervalMs);

  let failure: unknown;
  try {
    await runtime.run(controller.signal);
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    running = false;
    clearInterval(maintenance);
    await http.close();
    await gateway?.close();
    await dashboard.stop();
    await app.close();
    rmSync(engineInfoPath(config.dataDir), { force: true });
    logStopped(logger, failure);
  }
}

/** `sampleloop run` with mode "kafka": one instance of the consumer group; start more for scale-out. */
async function runOnKafka(config: SampleloopConfig, options: { signal?: AbortSignal }): Promise<void> {
  const app = await startKafkaApp(config);
  const { logger, runtime } = app;
  let running = true;
  const gateway =
    config.gateway.enabled && app.models
      ? await kafkaGateway({ config, models: app.models, registry: app.registry, privacy: app.privacy, logger, metrics: app.metrics, ready: () => running, settings: app.settings })
      : undefined;
  const dashboard = kafkaDashboard(config, app);
  const http = await startHttpServer({
    ...httpServerSettings(config),
    plugins: [...(gateway ? [gateway.plugin] : []), ...(config.dashboard.enabled ? [dashboardPlugin(dashboard)] : [])],
    metrics: app.metrics,
    logger,
    routes: {
      health: () => {
        const { healthy, details } = runtime.health();
        return { healthy, details: { mode: 'kafka', ...details, instanceId: config.kafka.instanceId } };
      },
      refreshMetrics: () => void runtime.lag(),
    },
  });
  const controller = new AbortController();
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down: committing and closing tasks');
    controller.abort();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  options.signal?.addEventListener('abort', () => controller.abort());
  logger.info({ url: `${config.http.tls ? 'https' : 'http'}://${config.http.host}:${http.port}`, guarantee: config.kafka.processingGuarantee }, 'sampleloop engine running (kafka mode)');
  warnUnprotectedDefaults(config, logger);
  let failure: unknown;
  try {
    await runtime.run(controller.signal);
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    running = false;
    await http.close();
    await gateway?.close();
    await dashboard.stop();
    await app.close();
    logStopped(logger, failure);
  }
}

/** Where and how the HTTP server listens: host, port, limits, tokens, TLS. */
function httpServerSettings(config: SampleloopConfig): Pick<HttpServerOptions, 'host' | 'port' | 'limits' | 'tokens' | 'tls' | 'allowUnauthenticated'> {
  const { http } = config;
  return {
    host: http.host,
    port: http.port,
    limits: { bodyLimitBytes: http.bodyLimitBytes, topicsBodyLimitBytes: http.topicsBodyLimitBytes },
    ...(http.tokensFile ? { tokens: BearerTokens.fromFile(http.tokensFile) } : {}),
    ...(http.tls ? { tls: http.tls } : {}),
    allowUnauthenticated: http.allowUnauthenticated,
  };
}

/** The last log line: a stop after an error must not read as a clean one. */
export function logStopped(logger: Logger, failure: unknown): void {
  if (failure === undefined) logger.info('stopped cleanly');
  else logger.error({ err: errorMessage(failure) }, 'stopped after an error; the next start resumes from the last commit');
}
