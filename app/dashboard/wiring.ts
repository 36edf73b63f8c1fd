import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleloopConfig } from '../../config/config.js';
import { directAccess } from '../../access/embedded.js';
import { kafkaAccess } from '../../access/kafka.js';
import { readLedger, trustPolicyFor, type LedgerView } from '../../models/ledger.js';
import type { EmbeddedApp } from '../embedded.js';
import { librdkafkaSettings, type KafkaApp } from '../kafka.js';
import { DashboardCollector, type DashboardSettings } from './collector.js';

export function dashboardSettings(config: SampleloopConfig): DashboardSettings {
  const { resolutionMs, retentionMs, recentDeadLetters, ledgerRefreshMs } = config.dashboard;
  return { resolutionMs, retentionMs, recentDeadLetters, ledgerRefreshMs };
}

/** The dashboard's collector on the embedded engine; `now` is the engine's clock (the demo's simulated one). Started. */
export function embeddedDashboard(app: EmbeddedApp, options: { now?: () => number; settings?: Partial<DashboardSettings> } = {}): DashboardCollector {
  const { config, log, runtime } = app;
  const access = directAccess(log, app.registry);
  return new DashboardCollector(
    {
      mode: 'embedded',
      metrics: app.metrics,
      topics: config.topics,
      categories: Object.keys(config.categories),
      accuracyFloor: config.trigger.minLiveAccuracy,
      ...(options.now ? { now: options.now } : {}),
      readLedger: unlessUnchanged(
        () => {
          const topic = log.topic(config.topics.models);
          let end = 0;
          for (let p = 0; p < (topic?.partitions ?? 0); p++) end += log.endOffset(config.topics.models, p);
          return end;
        },
        // Verified with the predictor's trust policy (signatures, trusted keys), read again: keys may rotate.
        () => readLedger(access, config.topics.models, trustPolicyFor(config, { generate: false })),
      ),
      stateBytes: () => log.db.approximateSizeBytes(),
      refreshLag: () => void runtime.lag(),
      logger: app.logger,
    },
    { ...dashboardSettings(config), ...options.settings },
  ).start();
}

/** The dashboard's collector on one Kafka instance (its own tasks' counts; the ledger read from the cluster). Started. */
export function kafkaDashboard(config: SampleloopConfig, app: KafkaApp): DashboardCollector {
  const access = kafkaAccess(librdkafkaSettings(config), app.registry, app.logger, { partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor });
  const stateDir = join(config.kafka.stateDir ?? join(config.dataDir, 'state'), config.applicationId);
  let stateBytes = { at: Number.NEGATIVE_INFINITY, bytes: 0 };
  return new DashboardCollector(
    {
      mode: 'kafka',
      metrics: app.metrics,
      topics: config.topics,
      categories: Object.keys(config.categories),
      accuracyFloor: config.trigger.minLiveAccuracy,
      // Verified with the predictor's trust policy (signatures, trusted keys), read again each time: keys may rotate.
      readLedger: () => readLedger(access, config.topics.models, trustPolicyFor(config, { generate: false })),
      refreshLag: () => void app.runtime.lag(),
      // A walk of the state directory: every 10 s at most.
      stateBytes: () => {
        if (Date.now() - stateBytes.at >= 10_000) stateBytes = { at: Date.now(), bytes: directoryBytes(stateDir) };
        return stateBytes.bytes;
      },
      logger: app.logger,
    },
    dashboardSettings(config),
  ).start();
}

/** Reads the ledger (every model's bytes, hashed) only when the topic grew, or a minute after the last read (a trust policy may change). */
function unlessUnchanged(endOffset: () => number, read: () => Promise<LedgerView>): () => Promise<LedgerView> {
  let last: { end: number; at: number; view: LedgerView } | undefined;
  return async () => {
    const end = endOffset();
    if (last && last.end === end && Date.now() - last.at < 60_000) return last.view;
    const view = await read();
    last = { end, at: Date.now(), view };
    return view;
  };
}

function directoryBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    try {
      if (e.isDirectory()) total += directoryBytes(path);
      else if (e.isFile()) total += statSync(path).size;
    } catch {
      // a file compacted away while walking
    }
  }
  return total;
}
