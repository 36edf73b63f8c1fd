/**
 * The JSON bodies of the dashboard API (`/api/v1/...`, docs/operations.md), built from the
 * collector's ring buffer, the engine's counters and the ledger.
 */
import type { DashboardCollector } from './collector.js';
import { OUTCOME_EVENTS } from './collector.js';
import { LABEL_DELAY_BUCKETS, quantile } from './delay-buckets.js';

export interface WindowQuery {
  /** Oldest time to return (ms since the epoch); default: all the ring keeps. */
  from?: number;
  /** Step of the returned series (ms, whole slots); default: one slot. */
  step?: number;
}

/** Events per second of a step. */
function perSecond(values: readonly number[], stepMs: number): number[] {
  return values.map((v) => v / (stepMs / 1000));
}

function stepOf(c: DashboardCollector, q: WindowQuery): number {
  const res = c.settings.resolutionMs;
  return Math.max(res, Math.round((q.step ?? res) / res) * res);
}

function window(c: DashboardCollector, q: WindowQuery): ReturnType<DashboardCollector['ring']['window']> {
  return c.ring.window({ ...(q.from !== undefined ? { from: q.from } : {}), stepMs: stepOf(c, q) });
}

export async function overview(c: DashboardCollector): Promise<Record<string, unknown>> {
  const { metrics, topics } = c.sources;
  const events = async (event: string): Promise<number> => metrics.total('events', { event });
  const deadLetters = await metrics.deadLetters.get();
  const byReason: Record<string, number> = {};
  for (const v of deadLetters.values) byReason[String(v.labels.reason)] = (byReason[String(v.labels.reason)] ?? 0) + v.value;
  const ledger = c.ledger();
  const heads = ledger.view?.heads;
  const serving = [...(heads?.values() ?? [])].map((head) => {
    const acc = c.accuracy.get(head.category, head.version);
    // A version promoted a moment ago has no feedback yet: name the last version that had some.
    const earlier = (ledger.view?.byCategory.get(head.category) ?? [])
      .filter((v) => v.verification.ok && v.version && v.version.version !== head.version)
      .map((v) => c.accuracy.get(head.category, (v.version as { version: string }).version))
      .filter((a) => a !== undefined && a.accuracy !== null)
      .pop();
    return {
      category: head.category,
      version: head.version,
      liveAccuracy: acc?.accuracy ?? null,
      confirmed: acc?.confirmed ?? 0,
      corrected: acc?.corrected ?? 0,
      previous: earlier ? { version: earlier.version, liveAccuracy: earlier.accuracy } : null,
    };
  });
  return {
    mode: c.sources.mode,
    now: c.now(),
    resolutionMs: c.settings.resolutionMs,
    retentionMs: c.settings.retentionMs,
    oldest: c.ring.oldest() ?? null,
    newest: c.ring.newest() ?? null,
    accuracyFloor: c.sources.accuracyFloor,
    totals: {
      predictions: await metrics.total('recordsIn', { topic: topics.predictions }),
      feedback: await metrics.total('recordsIn', { topic: topics.feedback }),
      samples: await metrics.total('recordsOut', { topic: topics.samples }),
      matched: await events('matched'),
      revised: await events('revised'),
      unmatched: await events('unmatched'),
      defaultSamples: await events('default-sample'),
      orphans: { 'no-prediction': await events('orphan-no-prediction'), 'outside-window': await events('orphan-outside-window') },
      late: { prediction: await events('late-prediction'), feedback: await events('late-feedback') },
      review: await events('review'),
      deadLetters: Object.values(byReason).reduce((a, b) => a + b, 0),
      deadLettersByReason: byReason,
    },
    serving,
    ledger: { readAt: ledger.readAt || null, error: ledger.error, versions: ledger.view?.versions.length ?? 0, failures: ledger.view?.failures.length ?? 0 },
  };
}

export function traffic(c: DashboardCollector, q: WindowQuery): Record<string, unknown> {
  const w = window(c, q);
  const step = stepOf(c, q);
  const categories = new Set<string>();
  for (const prefix of ['pred|', 'fb|', 'smp|']) for (const name of w.names('counter', prefix)) categories.add(name.slice(prefix.length));
  const byCategory: Record<string, { predictions: number[]; feedback: number[]; samples: number[] }> = {};
  for (const category of [...categories].sort()) {
    byCategory[category === '' ? '(no prediction yet)' : category] = {
      predictions: perSecond(w.counter(`pred|${category}`), step),
      feedback: perSecond(w.counter(`fb|${category}`), step),
      samples: perSecond(w.counter(`smp|${category}`), step),
    };
  }
  return { t: w.t, stepMs: step, unit: 'records/s', categories: byCategory };
}

export function outcomes(c: DashboardCollector, q: WindowQuery): Record<string, unknown> {
  const w = window(c, q);
  const series: Record<string, number[]> = {};
  for (const event of OUTCOME_EVENTS) series[event] = w.counter(`ev|${event}`);
  for (const name of w.names('counter', 'dl|')) series[`dead-letter:${name.slice(3)}`] = w.counter(name);
  return { t: w.t, stepMs: stepOf(c, q), unit: 'records per step', series };
}

export function labelDelay(c: DashboardCollector, q: WindowQuery): Record<string, unknown> {
  const w = window(c, q);
  const histograms = w.histogram('delay');
  const total = new Array<number>(LABEL_DELAY_BUCKETS.length + 1).fill(0);
  for (const h of histograms) if (h) for (let i = 0; i < h.length; i++) total[i] = (total[i] ?? 0) + (h[i] ?? 0);
  const q50 = histograms.map((h) => (h ? quantile(h, 0.5) : null));
  const q90 = histograms.map((h) => (h ? quantile(h, 0.9) : null));
  const q99 = histograms.map((h) => (h ? quantile(h, 0.99) : null));
  return {
    t: w.t,
    stepMs: stepOf(c, q),
    unit: 'seconds',
    p50: q50,
    p90: q90,
    p99: q99,
    histogram: { upperBounds: [...LABEL_DELAY_BUCKETS, null], counts: total },
    window: { p50: quantile(total, 0.5), p90: quantile(total, 0.9), p99: quantile(total, 0.99), count: total.reduce((a, b) => a + b, 0) },
  };
}

export function accuracy(c: DashboardCollector, q: WindowQuery): Record<string, unknown> {
  const w = window(c, q);
  const series = w.names('gauge', 'acc|').map((name) => {
    const [, category = '', version = ''] = name.split('|');
    return { category, version, values: w.gauge(name) };
  });
  const markers: Array<Record<string, unknown>> = [];
  for (const v of c.ledger().view?.versions ?? []) {
    if (!v.verification.ok || !v.version) continue;
    const m = v.version.metrics;
    markers.push({
      kind: 'promoted',
      at: v.version.createdAt,
      category: v.category,
      version: v.version.version,
      trainer: v.version.trainer,
      holdoutAccuracy: m.holdoutAccuracy ?? null,
      servingHoldoutAccuracy: m.servingHoldoutAccuracy ?? null,
      holdoutSize: m.holdoutSize ?? null,
      trainSize: m.trainSize ?? null,
    });
  }
  for (const d of c.recentDecisions()) {
    if (d.decision !== 'rejected') continue;
    markers.push({
      kind: 'rejected',
      at: d.at,
      category: d.category,
      version: d.candidateVersion,
      servingVersion: d.servingVersion,
      holdoutAccuracy: d.candidateAccuracy,
      servingHoldoutAccuracy: d.servingAccuracy,
      holdoutSize: d.holdoutSize,
      sampleCount: d.sampleCount,
    });
  }
  markers.sort((a, b) => (a.at as number) - (b.at as number));
  return { t: w.t, stepMs: stepOf(c, q), floor: c.sources.accuracyFloor, series, markers, current: c.accuracy.all() };
}

export function runtime(c: DashboardCollector, q: WindowQuery): Record<string, unknown> {
  const w = window(c, q);
  const step = stepOf(c, q);
  const lag: Record<string, Array<number | null>> = {};
  for (const name of w.names('gauge', 'lag|')) lag[name.slice(4)] = w.gauge(name);
  return { t: w.t, stepMs: step, lag, commitsPerSecond: perSecond(w.counter('commits'), step), stateBytes: w.gauge('state-bytes') };
}

export function ledger(c: DashboardCollector): Record<string, unknown> {
  const snapshot = c.ledger();
  const view = snapshot.view;
  const categories = [...(view?.byCategory.entries() ?? [])].sort(([a], [b]) => a.localeCompare(b)).map(([category, versions]) => ({
    category,
    serving: view?.heads.get(category)?.version ?? null,
    versions: versions.map((v) => ({
      version: v.version?.version ?? null,
      sequence: v.version?.sequence ?? null,
      createdAt: v.version?.createdAt ?? null,
      trainer: v.version?.trainer ?? null,
      verified: v.verification.ok,
      failure: v.verification.ok ? null : { code: v.verification.code, reason: v.verification.reason },
      holdoutAccuracy: v.version?.metrics.holdoutAccuracy ?? null,
      modelSha256: v.version?.modelSha256 ?? null,
      partition: v.partition,
      offset: v.offset,
    })),
  }));
  return { readAt: snapshot.readAt || null, error: snapshot.error, verified: view ? view.failures.length === 0 : null, failures: view?.failures.length ?? 0, categories };
}

export function deadLetters(c: DashboardCollector, limit: number): Record<string, unknown> {
  const recent = c.recentDeadLetters().slice(0, limit);
  return {
    recent: recent.map((d) => ({ at: d.at, reason: d.reasonCode, stage: d.stage, topology: d.topology, topic: d.sourceTopic, partition: d.sourcePartition, offset: d.sourceOffset })),
  };
}
