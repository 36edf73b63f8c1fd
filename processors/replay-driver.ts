import type { SampleloopConfig } from '../engine/config.js';
import type { Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';
import { partitionForKey } from '../engine/partitioner.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { StreamTask } from '../engine/task.js';
import { encodeFramed } from '../schemas/codec.js';
import { CachedKeyValueStore } from '../state/kv-store.js';
import type { RocksDatabase } from '../state/rocks.js';
import { buildSamplesTopology, joinOptionsFromConfig } from '../topologies/samples.js';
import type { OutputSerdes } from '../topologies/serde.js';
import type { PrivacyPolicy } from './privacy.js';
import type { ReplayRecord } from './replay-batch.js';
import { PREDICTIONS_STREAM } from './replay-records.js';

export interface DriverOptions {
  /** The replay's configuration: topics, join window and policies, categories, `embedded.partitions`. */
  config: SampleloopConfig;
  privacy: PrivacyPolicy;
  /** Output serializers registered in the target's registry, so the outputs need no re-framing. */
  serdes: OutputSerdes;
  /** Where the join keeps its state (replay's scratch database). */
  db: RocksDatabase;
  logger: Logger;
  metrics: EngineMetrics;
  /** Receives each commit's outputs, in order. */
  onOutputs(outputs: OutputRecord[]): Promise<void>;
}

/** Records between commits: bounds the uncommitted state and outputs held in memory. */
const COMMIT_RECORDS = 5_000;

/**
 * Runs the samples topology (topologies/samples.ts, the online engine's) over records handed to it
 * directly, without an input log: one task per partition of `embedded.partitions`, each record routed
 * to the task of its key as the embedded log would partition it, with offsets counted per partition
 * as that log would number them. A commit writes the tasks' state to the scratch database and hands
 * the outputs to `onOutputs`. Commits happen every COMMIT_RECORDS records, so the outputs come in
 * the same order whatever the batches the records arrive in.
 */
export class ReplayTopologyDriver {
  private readonly tasks: StreamTask[] = [];
  private readonly topics: readonly [string, string];
  private readonly offsets: number[][];
  private sinceCommit = 0;
  /** Records processed. */
  processed = 0;

  constructor(private readonly options: DriverOptions) {
    const { config, serdes, privacy } = options;
    const topology = buildSamplesTopology({
      topics: config.topics,
      join: joinOptionsFromConfig(config, 'replay'),
      privacy,
      maxRecordBytes: config.input.maxRecordBytes,
      ...(config.input.rejectUnknownCategories ? { knownCategories: new Set(Object.keys(config.categories)) } : {}),
      serdes,
    });
    const deadLetterId = serdes.schemaId(config.topics.deadLetters) as number;
    const partitions = config.embedded.partitions;
    for (let p = 0; p < partitions; p++) {
      const task = new StreamTask(topology, p, {
        applicationId: config.applicationId,
        logger: options.logger,
        metrics: options.metrics,
        deadLetterTopic: config.topics.deadLetters,
        encodeDeadLetter: (envelope) => encodeFramed('DeadLetter', deadLetterId, envelope),
        sealPayload: (bytes) => privacy.seal(bytes),
        now: Date.now,
        createStore: (spec, taskId) => new CachedKeyValueStore(spec.name, taskId, options.db, spec.codec, spec.readCacheEntries, spec.rangeScans),
      });
      task.init();
      this.tasks.push(task);
    }
    this.topics = [config.topics.predictions, config.topics.feedback];
    this.offsets = [new Array<number>(partitions).fill(0), new Array<number>(partitions).fill(0)];
  }

  /**
   * Processes records in order, committing every COMMIT_RECORDS records (so outputs do not depend on
   * how the records are batched), with each task's keyed state read in bulk per stretch between commits.
   */
  async processAll(records: readonly ReplayRecord[]): Promise<void> {
    let at = 0;
    while (at < records.length) {
      const stretch = records.slice(at, at + COMMIT_RECORDS - this.sinceCommit);
      at += stretch.length;
      const sources = stretch.map((r) => this.sourceOf(r));
      const perTask = new Map<number, SourceRecord[]>();
      for (const s of sources) {
        const list = perTask.get(s.partition);
        if (list) list.push(s);
        else perTask.set(s.partition, [s]);
      }
      for (const [partition, list] of perTask) (this.tasks[partition] as StreamTask).prefetch(list);
      for (const s of sources) (this.tasks[s.partition] as StreamTask).process(s);
      this.processed += sources.length;
      this.sinceCommit += sources.length;
      if (this.sinceCommit >= COMMIT_RECORDS) await this.commit();
    }
  }

  private sourceOf(record: ReplayRecord): SourceRecord {
    const partition = partitionForKey(record.key, this.tasks.length);
    const stream = record.stream === PREDICTIONS_STREAM ? 0 : 1;
    const offsets = this.offsets[stream] as number[];
    const offset = offsets[partition] as number;
    offsets[partition] = offset + 1;
    return { topic: this.topics[stream], partition, offset, key: record.key, value: record.value, timestamp: record.timestamp, headers: {} };
  }

  /** Writes the state changes to the scratch database and passes the outputs on. */
  async commit(): Promise<void> {
    this.sinceCommit = 0;
    const outputs: OutputRecord[] = [];
    for (const task of this.tasks) {
      const unit = task.drain(false);
      this.options.db.write(unit.ops);
      for (const o of unit.outputs) outputs.push(o);
    }
    if (outputs.length > 0) await this.options.onOutputs(outputs);
  }

  /** The input is exhausted: closes every window still open and commits. */
  async finish(): Promise<void> {
    for (const task of this.tasks) task.endOfInput();
    await this.commit();
  }

  close(): void {
    for (const task of this.tasks) task.close();
  }
}
