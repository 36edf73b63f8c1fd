import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import { CachedKeyValueStore } from '../state/kv-store.js';
import { RocksDatabase } from '../state/rocks.js';
import { StreamTask, type DeadLetterEnvelope } from '../task.js';
import type { Topology } from '../topology.js';
import { changelogTopic, changelogWatermarks, restoreFromChangelogs } from './changelog.js';
import type { KafkaConsumerType, LibrdkafkaSettings } from './client.js';

export interface RunningTask {
  task: StreamTask;
  db: RocksDatabase;
  dir: string;
}

export interface KafkaTasksOptions {
  applicationId: string;
  librdkafka: LibrdkafkaSettings;
  stateDir: string;
  logger: Logger;
  metrics: EngineMetrics;
  deadLetterTopic: string;
  encodeDeadLetter(envelope: DeadLetterEnvelope): Buffer;
  protectPayload?(bytes: Buffer): { payload: Buffer; encoding: 'sealed' | 'withheld' } | null;
  now: () => number;
}

const CHECKPOINT = '.checkpoint';

export function taskKey(topology: string, partition: number): string {
  return `${topology}_${partition}`;
}

/**
 * The tasks this instance runs, each with its RocksDB state under stateDir/applicationId/task. A task
 * is opened from its checkpoint plus the changelogs' tail, or rebuilt from the changelogs without a
 * checkpoint; closed with a checkpoint (after a successful commit) or dropped without one.
 */
export class KafkaTasks {
  private readonly running = new Map<string, RunningTask>();

  constructor(
    private readonly options: KafkaTasksOptions,
    private readonly consumer: KafkaConsumerType,
  ) {}

  get(key: string): RunningTask | undefined {
    return this.running.get(key);
  }

  has(key: string): boolean {
    return this.running.has(key);
  }

  get size(): number {
    return this.running.size;
  }

  keys(): string[] {
    return [...this.running.keys()];
  }

  entries(): IterableIterator<[string, RunningTask]> {
    return this.running.entries();
  }

  values(): IterableIterator<RunningTask> {
    return this.running.values();
  }

  async open(topology: Topology, partition: number): Promise<void> {
    const o = this.options;
    const key = taskKey(topology.name, partition);
    if (this.running.has(key)) return;
    const dir = join(o.stateDir, o.applicationId, key);
    const checkpointPath = join(dir, CHECKPOINT);
    // Without a clean-shutdown checkpoint the local state may be ahead of or behind the changelog: rebuild it.
    const checkpoint = existsSync(checkpointPath) ? (JSON.parse(readFileSync(checkpointPath, 'utf8')) as Record<string, number>) : undefined;
    if (!checkpoint) rmSync(dir, { recursive: true, force: true });
    else rmSync(checkpointPath);
    mkdirSync(dir, { recursive: true });
    const db = await RocksDatabase.open(dir);
    const task = new StreamTask(topology, partition, {
      applicationId: o.applicationId,
      logger: o.logger,
      metrics: o.metrics,
      deadLetterTopic: o.deadLetterTopic,
      encodeDeadLetter: o.encodeDeadLetter,
      ...(o.protectPayload ? { protectPayload: o.protectPayload } : {}),
      now: o.now,
      createStore: (spec, taskId) => new CachedKeyValueStore(spec.name, taskId, db, spec.codec, spec.readCacheEntries, spec.rangeScans),
    });
    task.openStores();
    try {
      await restoreFromChangelogs(task, checkpoint, { applicationId: o.applicationId, librdkafka: o.librdkafka, logger: o.logger, metrics: o.metrics, consumer: this.consumer });
    } catch (err) {
      await db.close();
      throw err;
    }
    task.init();
    this.running.set(key, { task, db, dir });
  }

  /** Closes a task without a checkpoint: its next owner (maybe this instance) rebuilds it from the changelogs. */
  async drop(key: string): Promise<void> {
    const rt = this.running.get(key);
    if (!rt) return;
    this.running.delete(key);
    try {
      rt.task.close();
    } finally {
      await rt.db.close();
    }
  }

  /** Closes a task whose work is committed, with a checkpoint of its changelogs' ends. */
  async close(key: string): Promise<void> {
    const rt = this.running.get(key);
    if (!rt) return;
    this.running.delete(key);
    rt.task.close();
    const checkpoint: Record<string, number> = {};
    for (const spec of rt.task.topology.stores.values()) {
      if (spec.changelog === false) continue;
      const topic = changelogTopic(this.options.applicationId, rt.task.topology.name, spec.name);
      const w = await changelogWatermarks(this.consumer, topic, rt.task.partition);
      checkpoint[topic] = w.highOffset;
    }
    await rt.db.close();
    writeFileSync(join(rt.dir, CHECKPOINT), JSON.stringify(checkpoint));
  }
}
