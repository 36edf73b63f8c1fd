/**
 * The labeled samples on the `samples` topic as the CLI reads them (`export samples`, `models train
 * --from samples`), through any LogAccess (embedded log, a running engine's HTTP API, Kafka).
 */
import { UsageError } from '../engine/errors.js';
import type { SourceRecord } from '../engine/record.js';
import { readSnapshotSamples, type TrainerLog } from '../models/trainer-job.js';
import type { LabeledSample, TrainingSnapshot } from '../schemas/types.js';
import type { LogAccess } from './embedded.js';

/**
 * A TrainerLog `read` over a LogAccess: values come back decoded (DisplayRecord) and are handed on
 * as JSON text, which the trainer's decoder reads like Avro (processors/retrain-trigger.ts
 * decodeLoggedValue), so the trainer's own snapshot reader runs unchanged.
 */
export function trainerReadOver(access: LogAccess): Pick<TrainerLog, 'read'> {
  return {
    read: async (topic, partition, from, max) => {
      const records = await access.read(topic, { partition, from, max });
      return records.map(
        (r): SourceRecord => ({
          topic: r.topic,
          partition: r.partition,
          offset: r.offset,
          timestamp: r.timestamp,
          key: r.key === null ? null : Buffer.from(r.key, 'utf8'),
          value: r.value === null ? null : Buffer.from(JSON.stringify(r.value), 'utf8'),
          headers: r.headers,
        }),
      );
    },
  };
}

/**
 * Exactly the samples the built-in trainer reads for a trigger: the category's samples before the
 * snapshot's offsets, one per request ID (highest revision), sorted by request ID.
 */
export async function snapshotSamples(access: LogAccess, snapshot: Pick<TrainingSnapshot, 'topic' | 'offsets'>, category: string): Promise<{ samples: LabeledSample[]; undecodable: number }> {
  let undecodable = 0;
  const samples = await readSnapshotSamples(trainerReadOver(access), () => undefined, snapshot, category, () => undecodable++);
  return { samples, undecodable };
}

/** The samples topic's end offsets now: a snapshot of everything on it. */
export async function currentSnapshot(access: LogAccess, topic: string): Promise<Pick<TrainingSnapshot, 'topic' | 'offsets'>> {
  const summary = (await access.topics()).find((t) => t.topic === topic);
  if (!summary) throw new UsageError(`there is no "${topic}" topic yet: no sample has been made (run the engine or \`sampleloop replay\` first)`);
  return { topic, offsets: summary.endOffsets.map((offset, partition) => ({ partition, offset })) };
}

/**
 * The latest revision of every sample as the compacted topic holds it: per request ID (the record
 * key) the record at the highest offset, a tombstone removing it; optionally one category only.
 * Sorted by request ID. Values that are not samples are counted and left out.
 */
export async function latestSamples(access: LogAccess, topic: string, category?: string): Promise<{ samples: LabeledSample[]; undecodable: number }> {
  const latest = new Map<string, LabeledSample | null>();
  let undecodable = 0;
  for (const r of await access.read(topic)) {
    const value = r.value as Partial<LabeledSample> | null;
    if (value === null) {
      if (r.key !== null) latest.set(r.key, null);
      continue;
    }
    if (typeof value.requestId !== 'string' || typeof value.category !== 'string' || typeof value.label !== 'string' || typeof value.features !== 'object' || value.features === null) {
      undecodable++;
      continue;
    }
    const key = r.key ?? value.requestId;
    latest.delete(key); // keeps insertion order = order of the latest write
    latest.set(key, value as LabeledSample);
  }
  const samples = [...latest.values()].filter((s): s is LabeledSample => s !== null && (category === undefined || s.category === category));
  return { samples: samples.sort((a, b) => (a.requestId < b.requestId ? -1 : a.requestId > b.requestId ? 1 : 0)), undecodable };
}
