import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DeadLetterNote, EngineMetrics, MetricSource, MetricsListener } from '../../engine/metrics.js';
import type { Logger } from '../../engine/logger.js';
import { errorMessage } from '../../engine/errors.js';
import type { LedgerView } from '../../models/ledger.js';
import { BUCKET_COUNT, LABEL_DELAY_BUCKETS, bucketOf } from './delay-buckets.js';
import { LiveAccuracy } from './live-accuracy.js';
import { TimeRing } from './ring.js';

/** What the composition root (run, demo) gives the dashboard to read. */
export interface DashboardSources {
  mode: 'embedded' | 'kafka';
  metrics: EngineMetrics;
  topics: { predictions: string; feedback: string; samples: string };
  /** The configured categories: their traffic counters start at 0, so "no samples for N minutes" can fire from the start. */
  categories?: readonly string[];
  /** The trigger's live-accuracy floor (`trigger.minLiveAccuracy`), drawn on the accuracy chart. */
  accuracyFloor: number;
  /** The engine's clock (the demo's simulated one); default Date.now. */
  now?: () => number;
  /** Reads and verifies the model ledger (refreshed every `ledgerRefreshMs`). */
  readLedger?: () => Promise<LedgerView>;
  /** Bytes of local state on disk (embedded: the log database with its state stores). */
  stateBytes?: () => number | Promise<number>;
  /** Brings `sampleloop_consumer_lag` up to date (the embedded runtime computes it on demand). */
  refreshLag?: () => void;
  logger?: Logger;
}

export interface DashboardSettings {
  resolutionMs: number;
  retentionMs: number;
  recentDeadLetters: number;
  ledgerRefreshMs: number;
}

export const DEFAULT_DASHBOARD_SETTINGS: DashboardSettings = { resolutionMs: 1000, retentionMs: 3_600_000, recentDeadLetters: 50, ledgerRefreshMs: 5000 };

/** A trainer decision seen in this process (the built-in trainer); promotions also come from the ledger. */
export interface DecisionNote {
  at: number;
  category: string;
  decision: string;
  reason: string;
  candidateVersion: string;
  candidateAccuracy: number | null;
  servingVersion: string;
  servingAccuracy: number | null;
  holdoutSize: number;
  sampleCount: number;
}

export interface LedgerSnapshot {
  readAt: number;
  error: string | null;
  view: LedgerView | null;
}

const MAX_DECISIONS = 500;
/** Join and trainer events kept per slot (the outcome chart). */
export const OUTCOME_EVENTS = ['matched', 'revised', 'unmatched', 'default-sample', 'orphan-no-prediction', 'orphan-outside-window', 'late-prediction', 'late-feedback', 'review'] as const;

/**
 * Feeds the dashboard's ring buffer from what the engine reports as it happens (counts, label
 * delays, samples, dead letters, trainer decisions) and, once per slot, from the runtime's gauges
 * (lag, commits, state size); keeps the latest dead letters and the ledger. Also exports the
 * application's `sampleloop_live_accuracy` and `sampleloop_label_delay_seconds`.
 */
export class DashboardCollector {
  readonly ring: TimeRing;
  readonly accuracy = new LiveAccuracy();
  readonly now: () => number;
  private readonly deadLetters: DeadLetterNote[] = [];
  private readonly decisions: DecisionNote[] = [];
  private readonly liveAccuracyGauge: Gauge<'category' | 'version'>;
  private readonly labelDelay: Histogram;
  private readonly ledgerFailures: Gauge;
  private readonly categoryRecords: Counter<'category' | 'kind'>;
  private readonly servingVersion: Gauge<'category' | 'version'>;
  private readonly ledgerVersions: Gauge<'category' | 'version' | 'trainer' | 'verified'>;
  private readonly stateBytes: Gauge;
  private readonly kinds = new Map<string, { series: string; counter: { inc(): void } }>();
  private ledgerSnapshot: LedgerSnapshot = { readAt: 0, error: null, view: null };
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastCommits: number | undefined;
  private lastLedgerRead = Number.NEGATIVE_INFINITY;
  private ledgerReading: Promise<void> | undefined;

  constructor(
    readonly sources: DashboardSources,
    readonly settings: DashboardSettings = DEFAULT_DASHBOARD_SETTINGS,
  ) {
    this.now = sources.now ?? Date.now;
    this.ring = new TimeRing(settings.resolutionMs, Math.max(1, Math.ceil(settings.retentionMs / settings.resolutionMs)));
    const registry = sources.metrics.registry;
    this.liveAccuracyGauge = metric(registry, 'sampleloop_live_accuracy', () => new Gauge({
      name: 'sampleloop_live_accuracy',
      help: 'CONFIRMED share of the feedback-labeled samples (CONFIRMED or CORRECTED) per category and model version, since this instance started',
      labelNames: ['category', 'version'],
      registers: [registry],
    }));
    this.labelDelay = metric(registry, 'sampleloop_label_delay_seconds', () => new Histogram({
      name: 'sampleloop_label_delay_seconds',
      help: 'Label delay: prediction to feedback in event time, per joined sample',
      buckets: [...LABEL_DELAY_BUCKETS],
      registers: [registry],
    }));
    this.ledgerFailures = metric(registry, 'sampleloop_ledger_failed_versions', () => new Gauge({
      name: 'sampleloop_ledger_failed_versions',
      help: 'Records of the model ledger that fail verification (hash chain, model bytes, duplicate label); 0 when the chain verifies',
      registers: [registry],
    }));
    this.categoryRecords = metric(registry, 'sampleloop_category_records_total', () => new Counter({
      name: 'sampleloop_category_records_total',
      help: 'Predictions and feedback joined, and samples written, per category (kind: prediction, feedback, sample); feedback whose prediction is not held has category ""',
      labelNames: ['category', 'kind'],
      registers: [registry],
    }));
    for (const category of sources.categories ?? []) for (const kind of ['prediction', 'feedback', 'sample']) this.categoryRecords.labels(category, kind).inc(0);
    this.servingVersion = metric(registry, 'sampleloop_serving_version', () => new Gauge({
      name: 'sampleloop_serving_version',
      help: '1 for the version of each category the predictor serves (the last verified version in the model ledger)',
      labelNames: ['category', 'version'],
      registers: [registry],
    }));
    this.ledgerVersions = metric(registry, 'sampleloop_ledger_version_info', () => new Gauge({
      name: 'sampleloop_ledger_version_info',
      help: 'One series per record of the model ledger: its category, version, trainer and whether it verifies (value 1)',
      labelNames: ['category', 'version', 'trainer', 'verified'],
      registers: [registry],
    }));
    this.stateBytes = metric(registry, 'sampleloop_state_bytes', () => new Gauge({
      name: 'sampleloop_state_bytes',
      help: 'Bytes of local state on disk (embedded mode: the log database, which holds the state stores too)',
      registers: [registry],
    }));
    metric(registry, 'sampleloop_live_accuracy_floor', () => new Gauge({
      name: 'sampleloop_live_accuracy_floor',
      help: 'The retrain trigger\'s live-accuracy floor (trigger.minLiveAccuracy)',
      registers: [registry],
    })).set(sources.accuracyFloor);
  }

  /** Subscribes to the engine's metrics and samples the gauges once per slot. */
  start(): this {
    if (this.unsubscribe) return this;
    this.unsubscribe = this.sources.metrics.listen(this.listener());
    this.timer = setInterval(() => void this.tick(), this.settings.resolutionMs);
    this.timer.unref();
    void this.tick();
    return this;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ledgerReading;
  }

  /** Reads the gauges into the current slot; reads the ledger when it is due. Called every slot by `start`. */
  async tick(): Promise<void> {
    const now = this.now();
    try {
      this.sources.refreshLag?.();
      const lag = await this.sources.metrics.consumerLag.get();
      for (const v of lag.values) this.ring.set(now, `lag|${String(v.labels.topic)}/${String(v.labels.partition)}`, v.value);
      const commits = (await this.sources.metrics.commits.get()).values.reduce((s, v) => s + v.value, 0);
      if (this.lastCommits !== undefined) this.ring.add(now, 'commits', Math.max(0, commits - this.lastCommits));
      this.lastCommits = commits;
      if (this.sources.stateBytes) {
        const bytes = await this.sources.stateBytes();
        this.ring.set(now, 'state-bytes', bytes);
        this.stateBytes.set(bytes);
      }
    } catch (err) {
      this.sources.logger?.warn({ err: errorMessage(err) }, 'dashboard: reading the runtime gauges failed');
    }
    if (Date.now() - this.lastLedgerRead >= this.settings.ledgerRefreshMs) await this.refreshLedger();
  }

  /** Reads and verifies the ledger now (also when the API asks for it and the last read is stale). */
  refreshLedger(): Promise<void> {
    if (!this.sources.readLedger) return Promise.resolve();
    if (this.ledgerReading) return this.ledgerReading;
    this.lastLedgerRead = Date.now();
    const read = this.sources.readLedger;
    this.ledgerReading = (async () => {
      try {
        const view = await read();
        this.ledgerSnapshot = { readAt: this.now(), error: null, view };
        this.ledgerFailures.set(view.failures.length);
        this.servingVersion.reset();
        for (const head of view.heads.values()) this.servingVersion.labels(head.category, head.version).set(1);
        this.ledgerVersions.reset();
        for (const v of view.versions) this.ledgerVersions.labels(v.category, v.version?.version ?? '', v.version?.trainer ?? '', String(v.verification.ok)).set(1);
      } catch (err) {
        this.ledgerSnapshot = { ...this.ledgerSnapshot, readAt: this.now(), error: errorMessage(err) };
      } finally {
        this.ledgerReading = undefined;
      }
    })();
    return this.ledgerReading;
  }

  ledger(): LedgerSnapshot {
    return this.ledgerSnapshot;
  }

  /** The latest dead letters, newest first. */
  recentDeadLetters(): DeadLetterNote[] {
    return [...this.deadLetters].reverse();
  }

  recentDecisions(): DecisionNote[] {
    return [...this.decisions];
  }

  private listener(): MetricsListener {
    return {
      count: (_source: MetricSource, event: string, by: number) => {
        this.ring.add(this.now(), `ev|${event}`, by);
      },
      observe: (_source: MetricSource, name: string, value: number) => {
        if (name !== 'label_delay_seconds') return;
        this.labelDelay.observe(value);
        this.ring.observe(this.now(), 'delay', bucketOf(value), BUCKET_COUNT);
      },
      note: (_source: MetricSource, event: string, fields) => this.onNote(event, fields),
      deadLetter: (letter: DeadLetterNote) => {
        this.ring.add(letter.at, `dl|${letter.reasonCode}`);
        this.deadLetters.push(letter);
        if (this.deadLetters.length > this.settings.recentDeadLetters) this.deadLetters.shift();
      },
    };
  }

  /** Per category and kind, the series name and counter child (looked up once: this runs for every record). */
  private kindOf(category: string, event: 'prediction' | 'feedback' | 'sample'): { series: string; counter: { inc(): void } } {
    const key = `${event}\u0000${category}`;
    let kind = this.kinds.get(key);
    if (!kind) {
      const prefix = event === 'prediction' ? 'pred' : event === 'feedback' ? 'fb' : 'smp';
      kind = { series: `${prefix}|${category}`, counter: this.categoryRecords.labels(category, event) };
      this.kinds.set(key, kind);
    }
    return kind;
  }

  private onNote(event: string, fields: Readonly<Record<string, string | number | null>>): void {
    const now = this.now();
    const text = (name: string): string => String(fields[name] ?? '');
    const num = (name: string): number | null => (typeof fields[name] === 'number' ? (fields[name] as number) : null);
    if (event === 'prediction' || event === 'feedback' || event === 'sample') {
      const kind = this.kindOf(text('category'), event);
      this.ring.add(now, kind.series);
      kind.counter.inc();
    }
    if (event === 'sample') {
      const changed = this.accuracy.add({ requestId: text('requestId'), category: text('category'), version: text('version'), labelSource: text('labelSource') });
      if (changed && changed.accuracy !== null) {
        this.ring.set(now, `acc|${changed.category}|${changed.version}`, changed.accuracy);
        this.liveAccuracyGauge.labels(changed.category, changed.version).set(changed.accuracy);
      }
    } else if (event === 'decision') {
      this.decisions.push({
        at: num('decidedAt') ?? now,
        category: text('category'),
        decision: text('decision'),
        reason: text('reason'),
        candidateVersion: text('candidateVersion'),
        candidateAccuracy: num('candidateAccuracy'),
        servingVersion: text('servingVersion'),
        servingAccuracy: num('servingAccuracy'),
        holdoutSize: num('holdoutSize') ?? 0,
        sampleCount: num('sampleCount') ?? 0,
      });
      if (this.decisions.length > MAX_DECISIONS) this.decisions.shift();
    }
  }
}

/** The registry's metric of that name, or a new one (a second collector on the same metrics reuses them). */
function metric<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
