import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProcessorMetrics } from './processor.js';

/** Which processor a count, observation or note came from. */
export interface MetricSource {
  topology: string;
  processor: string;
}

/** A record the runtime sent to the dead-letter topic: where it came from and why, never its bytes. */
export interface DeadLetterNote {
  topology: string;
  reasonCode: string;
  stage: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  /** The runtime's clock when the record was dead-lettered (ms). */
  at: number;
}

/** In-process subscriber to what processors and the runtime report (e.g. the dashboard's time series). */
export interface MetricsListener {
  count?(source: MetricSource, event: string, by: number): void;
  observe?(source: MetricSource, name: string, value: number): void;
  note?(source: MetricSource, event: string, fields: Readonly<Record<string, string | number | null>>): void;
  deadLetter?(letter: DeadLetterNote): void;
}

/** Every metric sampleloop exports, documented in docs/operations.md. */
export class EngineMetrics {
  private listeners: MetricsListener[] = [];
  readonly registry = new Registry();
  readonly recordsIn = new Counter({ name: 'sampleloop_records_in_total', help: 'Records read from source topics', labelNames: ['topology', 'topic'], registers: [this.registry] });
  readonly recordsOut = new Counter({ name: 'sampleloop_records_out_total', help: 'Records written to topics', labelNames: ['topic'], registers: [this.registry] });
  readonly events = new Counter({ name: 'sampleloop_processor_events_total', help: 'Events counted by processors (join matches, unmatched, orphans, late, ...)', labelNames: ['topology', 'processor', 'event'], registers: [this.registry] });
  readonly deadLetters = new Counter({ name: 'sampleloop_dead_letters_total', help: 'Records sent to the dead-letter topic', labelNames: ['topology', 'reason'], registers: [this.registry] });
  readonly observations = new Histogram({
    name: 'sampleloop_processor_seconds',
    help: 'Durations observed by processors, e.g. label delay (prediction to feedback) and feedback to sample',
    labelNames: ['topology', 'processor', 'name'],
    buckets: [0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 21600, 86400, 604800],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({ name: 'sampleloop_commit_seconds', help: 'Commit latency', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] });
  readonly commits = new Counter({ name: 'sampleloop_commits_total', help: 'Commits', registers: [this.registry] });
  readonly consumerLag = new Gauge({ name: 'sampleloop_consumer_lag', help: 'Records not yet processed per input partition', labelNames: ['topic', 'partition'], registers: [this.registry] });
  readonly restoredRecords = new Counter({ name: 'sampleloop_state_restored_records_total', help: 'Changelog records restored into local state', labelNames: ['store'], registers: [this.registry] });
  readonly restoreRemaining = new Gauge({ name: 'sampleloop_state_restore_remaining_records', help: 'Changelog records still to restore', labelNames: ['store'], registers: [this.registry] });
  readonly rebalances = new Counter({ name: 'sampleloop_rebalances_total', help: 'Partition assignments and revocations', labelNames: ['kind'], registers: [this.registry] });
  readonly tasks = new Gauge({ name: 'sampleloop_tasks', help: 'Tasks running in this instance', registers: [this.registry] });
  readonly partitionsOwned = new Gauge({ name: 'sampleloop_partitions_owned', help: 'Input (lead) partitions the consumer group has assigned to this instance (Kafka mode)', registers: [this.registry] });
  readonly groupRejoins = new Counter({ name: 'sampleloop_group_rejoins_total', help: 'Times this instance re-subscribed because it owned no partitions after a lost assignment (Kafka mode)', registers: [this.registry] });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'sampleloop_' });
  }

  /** Subscribes to counts, observations, notes and dead letters as they happen; returns the unsubscribe. */
  listen(listener: MetricsListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Called by the runtime for every dead letter it writes (after counting it in `deadLetters`). */
  deadLetterWritten(letter: DeadLetterNote): void {
    for (const l of this.listeners) l.deadLetter?.(letter);
  }

  forProcessor(topology: string, processor: string): ProcessorMetrics {
    const counters = new Map<string, { inc(by?: number): void }>();
    const histograms = new Map<string, { observe(v: number): void }>();
    const source: MetricSource = { topology, processor };
    return {
      count: (event, by = 1) => {
        let c = counters.get(event);
        if (!c) {
          c = this.events.labels(topology, processor, event);
          counters.set(event, c);
        }
        c.inc(by);
        for (const l of this.listeners) l.count?.(source, event, by);
      },
      observe: (name, value) => {
        let h = histograms.get(name);
        if (!h) {
          h = this.observations.labels(topology, processor, name);
          histograms.set(name, h);
        }
        h.observe(value);
        for (const l of this.listeners) l.observe?.(source, name, value);
      },
      note: (event, fields) => {
        for (const l of this.listeners) l.note?.(source, event, fields);
      },
    };
  }

  /** Sum of a counter's values matching the given labels (for summaries and tests). */
  async total(metric: 'events' | 'deadLetters' | 'recordsOut' | 'recordsIn', labels: Record<string, string> = {}): Promise<number> {
    const data = await this[metric].get();
    let sum = 0;
    for (const v of data.values) {
      if (Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)) sum += v.value;
    }
    return sum;
  }
}
