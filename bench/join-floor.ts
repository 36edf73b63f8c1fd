/**
 * The storage floor of the embedded join: the durable work any implementation of the engine's
 * embedded design must do per record, with no join logic at all (no windows, expiry index,
 * labeling rules, privacy, dead letters, metrics). It bounds what optimizing the join can reach:
 * if the floor is below the target, only a different storage design can meet it.
 *
 * Per chunk of input, exactly like phase (b): the producer appends the chunk; each record is read
 * back and decoded; a prediction is held in a write cache with its input bytes as the stored value
 * (the cheapest possible state encoding); a feedback record finds its prediction (write cache, else
 * one batched multiGet per chunk and a decode of the stored bytes) and one LabeledSample is encoded;
 * then outputs, state changes and input offsets are committed in one atomic RocksDB batch.
 *
 * Variants:
 * - `rocksdb-log`: the current design — the embedded log lives in RocksDB next to the state.
 * - `memory-log`: the log's appends and reads cost only a buffer copy (what segment files with a
 *   commit marker in RocksDB would approach) and held predictions stay decoded in memory across
 *   commits; RocksDB still receives every state put and delete.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError } from '../engine/errors.js';
import { EmbeddedLog, type GroupOffset } from '../engine/embedded/log.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { buildSample } from '../processors/labeling.js';
import { decodeRecord, encodeFramed, type DecodeOptions } from '../schemas/codec.js';
import { schemaJson } from '../schemas/index.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { Prediction } from '../schemas/types.js';
import type { WriteOp } from '../engine/state/rocks.js';
import { collectGarbage, cpuDelta, threadCpuSeconds } from './measure.js';
import type { BenchTraffic, InputFormat } from './traffic.js';

export type FloorVariant = 'rocksdb-log' | 'memory-log';
export const FLOOR_VARIANTS: readonly FloorVariant[] = ['rocksdb-log', 'memory-log'];

export interface FloorResult {
  variant: FloorVariant;
  format: InputFormat;
  records: number;
  samples: number;
  seconds: number;
  cpuSeconds: number;
  recordsPerSecond: number;
  recordsPerMainThreadCpuSecond: number;
  threadCpuSeconds: Record<string, number>;
}

const TOPICS = { predictions: 'predictions', feedback: 'feedback', samples: 'samples' } as const;
const STATE_PREFIX = Buffer.from([0x70]);
const GROUP = 'floor';

interface Held {
  bytes: Buffer;
  prediction: Prediction;
}

function stateKey(requestId: Buffer): Buffer {
  return Buffer.concat([STATE_PREFIX, requestId]);
}

export async function measureStorageFloor(
  traffic: BenchTraffic,
  format: InputFormat,
  variant: FloorVariant,
  chunk: number,
  registerInputSchemas: (registry: LocalSchemaRegistry) => Promise<void>,
): Promise<FloorResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-floor-'));
  const log = await EmbeddedLog.open(dir);
  try {
    log.ensureTopic(TOPICS.predictions);
    log.ensureTopic(TOPICS.feedback);
    log.ensureTopic(TOPICS.samples, { compact: true });
    const registry = new LocalSchemaRegistry();
    if (format === 'avro') await registerInputSchemas(registry);
    const sampleSchemaId = await registry.register('samples-value', schemaJson('LabeledSample'));
    const decodeOptions: DecodeOptions = { maxBytes: 1024 * 1024, writerSchema: (id) => registry.cached(id) };
    const decode = <T>(schema: 'Prediction' | 'Feedback', bytes: Buffer): T => {
      const result = decodeRecord(schema, bytes, decodeOptions);
      if (!result.ok) throw new DecodeError(`floor: ${schema} rejected: ${result.reason}`);
      return result.value as T;
    };
    const dirty = new Map<string, Held | null>();
    const resident = new Map<string, Held>();
    const keepResident = variant === 'memory-log';
    const offsets = { predictions: 0, feedback: 0 };
    let samples = 0;
    let wallMs = 0;
    let cpuMicros = 0;
    collectGarbage();
    const threadsBefore = threadCpuSeconds();
    for (let from = 0; from < traffic.events; from += chunk) {
      const count = Math.min(chunk, traffic.events - from);
      const input: OutputRecord[] = new Array(count);
      for (let k = 0; k < count; k++) {
        const event = from + k;
        input[k] = {
          topic: traffic.kind(event) === 'prediction' ? TOPICS.predictions : TOPICS.feedback,
          key: Buffer.from(traffic.requestId(event), 'utf8'),
          value: traffic.bytes(format, event),
          timestamp: traffic.timestamp(event),
          headers: {},
        };
      }
      const cpu = process.cpuUsage();
      const started = performance.now();

      let predictions: ReadonlyArray<SourceRecord | OutputRecord>;
      let feedback: ReadonlyArray<SourceRecord | OutputRecord>;
      if (keepResident) {
        copyOut(input);
        predictions = input.filter((r) => r.topic === TOPICS.predictions);
        feedback = input.filter((r) => r.topic === TOPICS.feedback);
      } else {
        log.append(input);
        predictions = log.read(TOPICS.predictions, 0, offsets.predictions, chunk);
        feedback = log.read(TOPICS.feedback, 0, offsets.feedback, chunk);
      }
      offsets.predictions += predictions.length;
      offsets.feedback += feedback.length;

      for (const r of predictions) {
        const held: Held = { bytes: r.value as Buffer, prediction: decode<Prediction>('Prediction', r.value as Buffer) };
        const id = (r.key as Buffer).toString('utf8');
        dirty.set(id, held);
        if (keepResident) resident.set(id, held);
      }
      const ids = feedback.map((r) => (r.key as Buffer).toString('utf8'));
      const missing = keepResident ? [] : ids.filter((id) => !dirty.has(id));
      const stored = log.db.getMany(missing.map((id) => stateKey(Buffer.from(id, 'utf8'))));
      const fetched = new Map<string, Buffer | undefined>();
      missing.forEach((id, i) => fetched.set(id, stored[i]));

      const outputs: OutputRecord[] = [];
      feedback.forEach((r, i) => {
        const id = ids[i] as string;
        const value = decode<{ timestamp: number }>('Feedback', r.value as Buffer);
        let held = dirty.get(id) ?? resident.get(id);
        if (held === undefined) {
          const bytes = fetched.get(id);
          if (bytes) held = { bytes, prediction: decode<Prediction>('Prediction', bytes) };
        }
        if (!held) return;
        const p = held.prediction;
        const sample = buildSample(p, { label: p.predictedLabel, labelSource: 'CONFIRMED' }, p.timestamp, 0, 'online');
        outputs.push({ topic: TOPICS.samples, key: r.key, value: encodeFramed('LabeledSample', sampleSchemaId, sample), timestamp: value.timestamp, headers: {} });
        dirty.set(id, null);
        resident.delete(id);
        samples++;
      });

      const ops: WriteOp[] = [];
      for (const [id, held] of dirty) {
        const key = stateKey(Buffer.from(id, 'utf8'));
        ops.push(held === null ? { type: 'del', key } : { type: 'put', key, value: held.bytes });
      }
      dirty.clear();
      const committed: GroupOffset[] = [
        { group: GROUP, topic: TOPICS.predictions, partition: 0, offset: offsets.predictions },
        { group: GROUP, topic: TOPICS.feedback, partition: 0, offset: offsets.feedback },
      ];
      if (keepResident) {
        copyOut(outputs);
        log.commit([], ops, committed);
      } else {
        log.commit(outputs, ops, committed);
      }

      wallMs += performance.now() - started;
      const used = process.cpuUsage(cpu);
      cpuMicros += used.user + used.system;
      // As in phase (b): let N-API finalizers run between chunks. Not timed.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const threads = cpuDelta(threadsBefore, threadCpuSeconds());
    return {
      variant,
      format,
      records: traffic.events,
      samples,
      seconds: wallMs / 1000,
      cpuSeconds: cpuMicros / 1e6,
      recordsPerSecond: traffic.events / (wallMs / 1000),
      recordsPerMainThreadCpuSecond: traffic.events / (threads.main ?? cpuMicros / 1e6),
      threadCpuSeconds: threads,
    };
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What appending records to a segment file costs in this process: one copy of their bytes. */
function copyOut(records: readonly OutputRecord[]): void {
  let total = 0;
  for (const r of records) total += (r.value?.length ?? 0) + (r.key?.length ?? 0) + 16;
  const buffer = Buffer.allocUnsafe(total);
  let at = 0;
  for (const r of records) {
    buffer.writeDoubleBE(r.timestamp, at);
    at += 16;
    if (r.key) at += r.key.copy(buffer, at);
    if (r.value) at += r.value.copy(buffer, at);
  }
}
