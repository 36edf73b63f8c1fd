/**
 * dashboards/prometheus/alerts.yml passes `promtool check rules` and its unit tests (alerts.test.yml,
 * `promtool test rules`; Debian's prometheus package), and
 * neither it nor dashboards/grafana/sampleloop.json names a metric the running engine does not export.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedDashboard } from '../../app/dashboard/wiring.js';
import { startEmbeddedApp, type EmbeddedApp } from '../../app/embedded.js';
import { parseConfig } from '../../config/config.js';
import type { DashboardCollector } from '../../app/dashboard/collector.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { silentLogger } from '../../engine/logger.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ALERTS = join(ROOT, 'dashboards', 'prometheus', 'alerts.yml');
const GRAFANA = join(ROOT, 'dashboards', 'grafana', 'sampleloop.json');

/** Every `sampleloop_...` name in a text (PromQL in JSON or YAML). */
function metricNames(text: string): Set<string> {
  return new Set([...text.matchAll(/\bsampleloop_[a-z0-9_]+/g)].map((m) => m[0]));
}

describe('Prometheus rules and Grafana dashboard', () => {
  let dir: string;
  let app: EmbeddedApp;
  let collector: DashboardCollector;
  let exported: Set<string>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sampleloop-monitoring-'));
    const config = parseConfig({ dataDir: dir, log: { level: 'silent' }, predictor: { enabled: true }, trigger: { enabled: true }, trainer: { enabled: true }, categories: { digits: { classes: ['0', '1'] } } });
    app = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics({ defaultMetrics: true }) });
    collector = embeddedDashboard(app);
    exported = new Set();
    for (const m of await app.metrics.registry.getMetricsAsJSON()) {
      exported.add(m.name);
      if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(m.name + suffix);
    }
  });
  afterAll(async () => {
    await collector?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the alert rules pass promtool check rules', () => {
    const run = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(run.error, 'promtool not found: install Debian\'s prometheus package (scripts/setup.sh does)').toBeUndefined();
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain('SUCCESS: 6 rules found');
  });

  it('each alert fires on the series it is meant for (promtool test rules)', () => {
    const run = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { encoding: 'utf8', cwd: join(ROOT, 'dashboards', 'prometheus') });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain('SUCCESS');
  });

  it('the alert rules name only metrics the engine exports', () => {
    const names = metricNames(readFileSync(ALERTS, 'utf8'));
    expect(names.size).toBeGreaterThan(5);
    expect([...names].filter((n) => !exported.has(n))).toEqual([]);
  });

  it('the Grafana dashboard is import-ready (datasource variable) and queries only metrics the engine exports', () => {
    const text = readFileSync(GRAFANA, 'utf8');
    const dashboard = JSON.parse(text) as {
      templating: { list: Array<{ name: string; type: string; query: unknown }> };
      panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string }> }>;
      annotations: { list: Array<{ expr: string }> };
    };
    expect(dashboard.templating.list.find((v) => v.type === 'datasource')).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const queried = dashboard.panels.filter((p) => p.type !== 'row');
    expect(queried.length).toBeGreaterThanOrEqual(12);
    for (const p of queried) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(metricNames(t.expr).size, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
    }
    const names = metricNames(text);
    expect([...names].filter((n) => !exported.has(n))).toEqual([]);
    // The panels of the page: traffic, outcomes, dead letters, label delay, live accuracy, ledger, lag, commits, state size.
    for (const metric of ['sampleloop_category_records_total', 'sampleloop_processor_events_total', 'sampleloop_dead_letters_total', 'sampleloop_label_delay_seconds_bucket', 'sampleloop_live_accuracy', 'sampleloop_ledger_version_info', 'sampleloop_ledger_failed_versions', 'sampleloop_consumer_lag', 'sampleloop_commits_total', 'sampleloop_state_bytes']) {
      expect(names.has(metric), metric).toBe(true);
    }
  });

  it('the check would catch a query of a metric that does not exist', () => {
    expect([...metricNames('rate(sampleloop_no_such_metric_total[5m])')].filter((n) => !exported.has(n))).toEqual(['sampleloop_no_such_metric_total']);
  });
});
