import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import type { SampleloopConfig } from '../config/config.js';
import type { Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';
import { partitionForKey } from '../engine/partitioner.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { StreamTask } from '../engine/task.js';
import { encodeFramed } from '../schemas/codec.js';
import { CachedKeyValueStore } from '../engine/state/kv-store.js';
import type { RocksDatabase } from '../engine/state/rocks.js';
import { buildSamplesTopology, joinOptionsFromConfig } from '../topologies/samples.js';
import type { OutputSerdes } from '../topologies/serde.js';
import type { PrivacyPolicy } from '../processors/privacy.js';
import type { ReplayRecord } from './input/batch.js';
import { PREDICTIONS_STREAM } from './input/records.js';

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

/** Records between commits: bounds the outputs held in memory. */
const COMMIT_RECORDS = 5_000;
/** The join state is spilled once the old generation in use exceeds this share of its limit (see `oldGenerationInUse`). */
const HEAP_SPILL_FRACTION = 0.5;
/** What V8 adds to `--max-old-space-size` in `heap_size_limit` for the young generation: 3 semi-spaces of 16 MiB (64-bit). */
const YOUNG_GENERATION_RESERVE = 48 * 1024 * 1024;

/**
 * Runs the samples topology (topologies/samples.ts, the online engine's) over records handed to it
 * directly, without an input log: one task per partition of `embedded.partitions`, each record routed
 * to the task of its key as the embedded log would partition it, with offsets counted per partition
 * as that log would number them. A commit hands the outputs to `onOutputs`; commits happen every
 * COMMIT_RECORDS records, so the outputs come in the same order whatever the batches the records
 * arrive in.
 *
 * The join state stays in the stores' write caches across commits and is written ("spilled") to the
 * scratch database only when it outgrows its budget: `replay.stateMemoryEntries` uncommitted
 * entries, or the old generation more than HEAP_SPILL_FRACTION full. A failed replay is run again
 * from the start, so the state needs no durability; held in memory, most of it (a prediction put,
 * matched, then deleted when its window closes) is never encoded or written at all. The scratch
 * database is new, so until a store first spills, its reads never reach RocksDB (`startsEmpty`).
 */
export class ReplayTopologyDriver {
  private readonly tasks: StreamTask[] = [];
  private readonly topics: readonly [string, string];
  private readonly offsets: number[][];
  private sinceCommit = 0;
  /** Uncommitted state entries held in memory before a spill (`replay.stateMemoryEntries`). */
  private readonly stateMemoryEntries: number;
  /** Records processed. */
  processed = 0;
  /** Times the join state was written to the scratch database. */
  private spills = 0;

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
        protectPayload: (bytes) => privacy.protectRaw(bytes),
        now: Date.now,
        // Each replay attempt opens a new scratch database: no store has rows in it yet.
        createStore: (spec, taskId) => new CachedKeyValueStore(spec.name, taskId, options.db, spec.codec, spec.readCacheEntries, spec.rangeScans, { startsEmpty: true }),
      });
      task.init();
      this.tasks.push(task);
    }
    this.topics = [config.topics.predictions, config.topics.feedback];
    this.offsets = [new Array<number>(partitions).fill(0), new Array<number>(partitions).fill(0)];
    this.stateMemoryEntries = config.replay.stateMemoryEntries;
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

  /** Passes the outputs on, spilling the join state first when it is over budget. */
  private async commit(): Promise<void> {
    const outputs = this.takeOutputs();
    if (this.overBudget()) this.spill();
    if (outputs.length > 0) await this.options.onOutputs(outputs);
  }

  /**
   * The input is exhausted: closes every window still open and passes the last outputs on. The state
   * left in the write caches is not spilled: nothing reads it any more, and it goes with the scratch database.
   */
  async finish(): Promise<void> {
    for (const task of this.tasks) task.endOfInput();
    const outputs = this.takeOutputs();
    if (outputs.length > 0) await this.options.onOutputs(outputs);
  }

  /** Every task's outputs since the last commit, task by task. */
  private takeOutputs(): OutputRecord[] {
    this.sinceCommit = 0;
    const outputs: OutputRecord[] = [];
    for (const task of this.tasks) for (const o of task.drainOutputs().outputs) outputs.push(o);
    return outputs;
  }

  private overBudget(): boolean {
    let pending = 0;
    for (const task of this.tasks) pending += task.pendingStateWrites();
    if (pending === 0) return false;
    return pending > this.stateMemoryEntries || oldGenerationInUse() > HEAP_SPILL_FRACTION;
  }

  /** Writes every task's uncommitted state to the scratch database, emptying the write caches. */
  private spill(): void {
    for (const task of this.tasks) this.options.db.write(task.drainStores(false).ops);
    this.spills++;
    this.options.logger.debug({ spills: this.spills }, 'replay: join state written to the scratch database');
  }

  close(): void {
    for (const task of this.tasks) task.close();
  }
}

/**
 * Share of the old generation (where held state ends up) in use. Not `used_heap_size / heap_size_limit`:
 * the limit includes the young generation's reserve, which under a small `--max-old-space-size` is a
 * large part of it (48 of 112 MiB at 64), so half the limit would be nearly all the old generation.
 */
function oldGenerationInUse(): number {
  const heap = getHeapStatistics();
  let young = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') young += space.space_used_size;
  }
  const limit = Math.max(heap.heap_size_limit / 2, heap.heap_size_limit - YOUNG_GENERATION_RESERVE);
  return (heap.used_heap_size - young) / limit;
}
