import { ConfigError, TopologyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import { PartitionGroup } from '../partition-group.js';
import type { InputRecord } from '../timestamp-extractor.js';
import { StreamTask, type DeadLetterEnvelope } from '../task.js';
import type { Topology } from '../topology.js';
import { CachedKeyValueStore } from '../state/kv-store.js';
import type { EmbeddedLog, GroupOffset, TopicConfig } from './log.js';
import type { OutputRecord } from '../record.js';
import type { WriteOp } from '../state/rocks.js';

export interface EmbeddedRuntimeOptions {
  applicationId: string;
  logger: Logger;
  metrics: EngineMetrics;
  deadLetterTopic: string;
  encodeDeadLetter(envelope: DeadLetterEnvelope): Buffer;
  protectPayload?(bytes: Buffer): { payload: Buffer; encoding: 'sealed' | 'withheld' } | null;
  /** Commit at least this often while records flow (ms). */
  commitIntervalMs?: number;
  /** Commit early once this many outputs or state writes are pending. */
  commitMaxPending?: number;
  /** Records fetched per partition read. */
  fetchSize?: number;
  /** Wall-clock punctuation period (ms). */
  punctuateIntervalMs?: number;
  /** Topic settings for topics the runtime must create. */
  defaultTopic?: Partial<TopicConfig>;
  topicOverrides?: Record<string, Partial<TopicConfig>>;
  now?: () => number;
}

interface RunningTask {
  task: StreamTask;
  group: PartitionGroup;
  consumerGroup: string;
}

/** Runs topologies over the embedded log in this process: every partition is assigned here. */
export class EmbeddedRuntime {
  private readonly tasks: RunningTask[] = [];
  private lastCommit = 0;
  private readonly now: () => number;
  private stopped = false;
  /** Processing threw (the engine stops): the half-done step must never be committed. */
  private failed = false;
  private readonly commitIntervalMs: number;
  private readonly commitMaxPending: number;
  private readonly fetchSize: number;
  private readonly punctuateIntervalMs: number;

  constructor(
    private readonly log: EmbeddedLog,
    private readonly topologies: readonly Topology[],
    private readonly options: EmbeddedRuntimeOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.commitIntervalMs = options.commitIntervalMs ?? 100;
    this.commitMaxPending = options.commitMaxPending ?? 20_000;
    this.fetchSize = options.fetchSize ?? 500;
    this.punctuateIntervalMs = options.punctuateIntervalMs ?? 1000;
  }

  /** Creates missing topics, checks co-partitioning and starts one task per input partition. */
  start(): void {
    this.ensureTopic(this.options.deadLetterTopic, false);
    for (const topology of this.topologies) {
      for (const [topic, req] of topology.sinkTopics) this.ensureTopic(topic, req.compact);
      const sources = topology.sourceTopics();
      for (const topic of sources) this.ensureTopic(topic, false);
      const partitions = checkCoPartitioned(topology, sources.map((t) => [t, this.log.topic(t)?.partitions ?? 1] as const));
      const consumerGroup = `${this.options.applicationId}.${topology.name}`;
      this.refuseOtherApplicationId(consumerGroup, topology.name, sources);
      for (let p = 0; p < partitions; p++) {
        const task = new StreamTask(topology, p, {
          applicationId: this.options.applicationId,
          logger: this.options.logger,
          metrics: this.options.metrics,
          deadLetterTopic: this.options.deadLetterTopic,
          encodeDeadLetter: this.options.encodeDeadLetter,
          ...(this.options.protectPayload ? { protectPayload: this.options.protectPayload } : {}),
          now: this.now,
          createStore: (spec, taskId) => new CachedKeyValueStore(spec.name, taskId, this.log.db, spec.codec, spec.readCacheEntries, spec.rangeScans),
        });
        task.init();
        const inputs = sources.map((topic) => ({ topic, partition: p, position: this.log.committedOffset(consumerGroup, topic, p) ?? 0 }));
        const group = new PartitionGroup(inputs, (t, part, from, max) => this.log.read(t, part, from, max), this.fetchSize, (r) => topology.extract(r));
        this.tasks.push({ task, group, consumerGroup });
      }
    }
    this.options.metrics.tasks.set(this.tasks.length);
    this.lastCommit = this.now();
  }

  /**
   * State stores are not namespaced by applicationId, consumer groups are: a data dir whose
   * topology progressed under another applicationId would be read again from offset 0 against the
   * state that already holds its results (every prediction a duplicate-prediction dead letter,
   * every feedback a second revision). Refuse instead.
   */
  private refuseOtherApplicationId(consumerGroup: string, topologyName: string, sources: string[]): void {
    const ours = sources.some((topic) => {
      const partitions = this.log.topic(topic)?.partitions ?? 1;
      for (let p = 0; p < partitions; p++) if (this.log.committedOffset(consumerGroup, topic, p) !== undefined) return true;
      return false;
    });
    if (ours) return;
    const other = this.log.consumerGroups().find((g) => g !== consumerGroup && g.endsWith(`.${topologyName}`));
    if (other === undefined) return;
    const previous = other.slice(0, -(topologyName.length + 1));
    throw new ConfigError(
      `applicationId: this data dir was processed as applicationId "${previous}" (consumer group ${other}), not "${this.options.applicationId}"; ` +
        `its state would see every input again. Set applicationId back to "${previous}", or use a new dataDir for "${this.options.applicationId}"`,
    );
  }

  private ensureTopic(topic: string, compact: boolean): void {
    const override = this.options.topicOverrides?.[topic] ?? {};
    this.log.ensureTopic(topic, { ...this.options.defaultTopic, ...override, compact: compact || (override.compact ?? false) });
  }

  /**
   * Processes up to `budget` records per task, runs due punctuations, and commits when due; returns
   * the records processed. Synchronous: for topologies without batch (async) processors.
   */
  step(budget = 2_000): number {
    return this.failOnThrow(() => {
      let processed = 0;
      for (const rt of this.tasks) {
        processed += this.pull(rt, budget);
        if (rt.task.hasPendingBatches()) throw new TopologyError(`topology "${rt.task.topology.name}" has batch processors: drive it with stepAsync()`);
      }
      this.afterStep();
      return processed;
    });
  }

  /** Like `step`, for any topology: awaits batch processors (model inference) once per task and batch. */
  async stepAsync(budget = 2_000): Promise<number> {
    try {
      let processed = 0;
      for (const rt of this.tasks) {
        processed += this.pull(rt, budget);
        await rt.task.flushBatches();
      }
      this.afterStep();
      return processed;
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /**
   * A step that throws is half done: committing it (on close, or at the next commit) would mark the
   * failed record and the rest of its batch as processed without their outputs — a silent loss.
   * Left uncommitted, a restart processes them again from the last commit.
   */
  private failOnThrow<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  private pull(rt: RunningTask, budget: number): number {
    rt.group.refresh();
    const batch: InputRecord[] = [];
    for (let n = 0; n < budget; n++) {
      const next = rt.group.next();
      if (!next) break;
      batch.push(next);
    }
    rt.task.prefetch(batch.map((e) => e.record));
    for (const e of batch) rt.task.process(e.record, e.extraction);
    return batch.length;
  }

  private afterStep(): void {
    const now = this.now();
    for (const rt of this.tasks) rt.task.punctuate(now);
    if (now - this.lastCommit >= this.commitIntervalMs || this.pending() >= this.commitMaxPending) this.commit();
  }

  private pending(): number {
    let n = 0;
    for (const rt of this.tasks) n += rt.task.pendingOutputs() + rt.task.pendingStateWrites();
    return n;
  }

  /** Makes every task's outputs, state and input offsets durable in one atomic write. */
  commit(): void {
    if (this.failed) return;
    const started = process.hrtime.bigint();
    const outputs: OutputRecord[] = [];
    const ops: WriteOp[] = [];
    const offsets: GroupOffset[] = [];
    for (const rt of this.tasks) {
      const unit = rt.task.drain(false);
      for (const o of unit.outputs) outputs.push(o);
      for (const op of unit.ops) ops.push(op);
      for (const o of unit.offsets) offsets.push({ group: rt.consumerGroup, ...o });
    }
    this.lastCommit = this.now();
    if (outputs.length === 0 && ops.length === 0 && offsets.length === 0) return;
    this.log.commit(outputs, ops, offsets);
    this.options.metrics.commits.inc();
    this.options.metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** Processes until no input is left, then commits (tests, replay, the demo's catch-up). */
  runUntilIdle(): number {
    let total = 0;
    for (;;) {
      const n = this.step();
      total += n;
      if (n === 0) break;
    }
    this.commit();
    return total;
  }

  async runUntilIdleAsync(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.stepAsync();
      total += n;
      if (n === 0) break;
    }
    this.commit();
    return total;
  }

  /** For bounded inputs: closes every window still open and commits the results. */
  endOfInput(): void {
    this.failOnThrow(() => {
      for (const rt of this.tasks) rt.task.endOfInput();
    });
    this.commit();
  }

  /** Processes records as they arrive until `signal` aborts; commits before returning. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.stopped) {
      const n = await this.stepAsync();
      if (n === 0) await this.log.waitForAppend(Math.min(this.punctuateIntervalMs, this.commitIntervalMs));
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.commit();
  }

  lag(): Array<{ topic: string; partition: number; lag: number }> {
    const out: Array<{ topic: string; partition: number; lag: number }> = [];
    for (const rt of this.tasks) {
      for (const { topic, partition } of rt.group.inputs()) {
        const committed = this.log.committedOffset(rt.consumerGroup, topic, partition) ?? 0;
        const lag = Math.max(0, this.log.endOffset(topic, partition) - committed);
        this.options.metrics.consumerLag.labels(topic, String(partition)).set(lag);
        out.push({ topic, partition, lag });
      }
    }
    return out;
  }

  taskList(): StreamTask[] {
    return this.tasks.map((t) => t.task);
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.commit();
    for (const rt of this.tasks) rt.task.close();
  }
}

/** Joined inputs must have the same partition count, or records with one key would meet in different tasks. */
export function checkCoPartitioned(topology: Topology, topics: ReadonlyArray<readonly [string, number]>): number {
  const counts = new Set(topics.map(([, n]) => n));
  if (counts.size > 1) {
    const list = topics.map(([t, n]) => `${t} (${n} partitions)`).join(', ');
    throw new ConfigError(
      `topology "${topology.name}" reads ${list}; co-partitioned inputs must have the same number of partitions. ` +
        'Recreate the smaller topics with the larger count (or repartition them) so every request ID meets in one task.',
    );
  }
  return topics[0]?.[1] ?? 1;
}
