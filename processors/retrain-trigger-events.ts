/**
 * The trigger's input, re-keyed by category: samples and model versions become `CategoryEvent`s on an
 * internal repartition topic (like a Kafka Streams `groupBy`), so one task sees a category's every event.
 */
import { DecodeError, errorMessage } from '../engine/errors.js';
import type { Processor, ProcessorContext } from '../engine/processor.js';
import type { StreamRecord } from '../engine/record.js';
import type { Serializer } from '../engine/topology.js';
import { decodeFramed, referencedSchemaId, type WriterSchemaLookup } from '../schemas/codec.js';
import type { LabelSource } from '../schemas/types.js';

/** What the repartition topic carries, keyed by category. */
export type CategoryEvent =
  | {
      kind: 'sample';
      requestId: string;
      revision: number;
      labelSource: LabelSource;
      modelVersion: string;
      /** Where the sample is in the samples topic (for the trigger's snapshot). */
      partition: number;
      offset: number;
      /** The request's numeric features (for feature-drift); absent in events written before it existed. */
      features?: Record<string, number>;
    }
  | { kind: 'model'; version: string; sequence: number; createdAt: number };

/** Decodes a logged value: Confluent-framed Avro (through the registry) or a JSON object. Throws DecodeError. */
export function decodeLoggedValue(bytes: Buffer, lookup: WriterSchemaLookup): unknown {
  if (referencedSchemaId(bytes) !== undefined) return decodeFramed(bytes, lookup).value;
  const text = bytes.toString('utf8');
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new DecodeError(`not valid JSON: ${errorMessage(err)}`, { cause: err });
    }
  }
  throw new DecodeError(`neither Confluent-framed Avro nor a JSON object (${bytes.length} bytes)`);
}

function field<T>(value: unknown, name: string, type: 'string' | 'number'): T {
  const v = (value as Record<string, unknown> | null)?.[name];
  if (typeof v !== type || (type === 'number' && !Number.isFinite(v))) throw new DecodeError(`field "${name}" is missing or not a ${type}`);
  return v as T;
}

/** The finite numbers of a features map (anything else is left out). */
function numericFeatures(value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof value !== 'object' || value === null) return out;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

const LABEL_SOURCES: ReadonlySet<string> = new Set(['CONFIRMED', 'CORRECTED', 'DEFAULT']);

/** samples (key requestId) → CategoryEvent (key category). Tombstones are skipped. */
export class SampleRekeyProcessor implements Processor<Buffer | null, CategoryEvent> {
  private ctx!: ProcessorContext<CategoryEvent>;

  constructor(private readonly lookup: WriterSchemaLookup) {}

  init(ctx: ProcessorContext<CategoryEvent>): void {
    this.ctx = ctx;
  }

  process(record: StreamRecord<Buffer | null>): void {
    if (record.value === null) return;
    const source = this.ctx.recordContext();
    let event: CategoryEvent;
    let category: string;
    try {
      const sample = decodeLoggedValue(record.value, this.lookup);
      category = field<string>(sample, 'category', 'string');
      const labelSource = field<string>(sample, 'labelSource', 'string');
      if (!LABEL_SOURCES.has(labelSource)) throw new DecodeError(`labelSource "${labelSource}" is not CONFIRMED, CORRECTED or DEFAULT`);
      event = {
        kind: 'sample',
        requestId: field<string>(sample, 'requestId', 'string'),
        revision: field<number>(sample, 'revision', 'number'),
        labelSource: labelSource as LabelSource,
        modelVersion: field<string>(sample, 'modelVersion', 'string'),
        partition: source?.partition ?? 0,
        offset: source?.offset ?? 0,
        features: numericFeatures((sample as { features?: unknown }).features),
      };
    } catch (err) {
      this.ctx.deadLetter({ reasonCode: 'undecodable-sample', reason: `trigger cannot read this sample: ${errorMessage(err)}` });
      return;
    }
    this.ctx.forward({ key: category, value: event, timestamp: record.timestamp, headers: {} });
  }
}

/** models (ModelVersion, key category) → CategoryEvent. Only the version facts travel, not the ONNX bytes. */
export class ModelRekeyProcessor implements Processor<Buffer | null, CategoryEvent> {
  private ctx!: ProcessorContext<CategoryEvent>;

  constructor(private readonly lookup: WriterSchemaLookup) {}

  init(ctx: ProcessorContext<CategoryEvent>): void {
    this.ctx = ctx;
  }

  process(record: StreamRecord<Buffer | null>): void {
    if (record.value === null) return;
    let event: CategoryEvent;
    let category: string;
    try {
      const version = decodeLoggedValue(record.value, this.lookup);
      category = field<string>(version, 'category', 'string');
      event = {
        kind: 'model',
        version: field<string>(version, 'version', 'string'),
        sequence: field<number>(version, 'sequence', 'number'),
        createdAt: field<number>(version, 'createdAt', 'number'),
      };
    } catch (err) {
      this.ctx.deadLetter({ reasonCode: 'undecodable-model-version', reason: `trigger cannot read this model version: ${errorMessage(err)}` });
      return;
    }
    this.ctx.forward({ key: category, value: event, timestamp: record.timestamp, headers: {} });
  }
}

/** The repartition topic's value format: JSON (internal topic, read only by the trigger). */
export const categoryEventSerializer: Serializer<CategoryEvent> = (record) => ({
  key: record.key === null ? null : Buffer.from(record.key, 'utf8'),
  value: Buffer.from(JSON.stringify(record.value), 'utf8'),
});

export function parseCategoryEvent(bytes: Buffer): CategoryEvent {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new DecodeError(`category event is not JSON: ${errorMessage(err)}`, { cause: err });
  }
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (kind === 'sample') {
    const labelSource = field<string>(value, 'labelSource', 'string');
    if (!LABEL_SOURCES.has(labelSource)) throw new DecodeError(`labelSource "${labelSource}" is unknown`);
    return {
      kind,
      requestId: field<string>(value, 'requestId', 'string'),
      revision: field<number>(value, 'revision', 'number'),
      labelSource: labelSource as LabelSource,
      modelVersion: field<string>(value, 'modelVersion', 'string'),
      partition: field<number>(value, 'partition', 'number'),
      offset: field<number>(value, 'offset', 'number'),
      ...(typeof (value as { features?: unknown }).features === 'object' ? { features: numericFeatures((value as { features?: unknown }).features) } : {}),
    };
  }
  if (kind === 'model') {
    return {
      kind,
      version: field<string>(value, 'version', 'string'),
      sequence: field<number>(value, 'sequence', 'number'),
      createdAt: field<number>(value, 'createdAt', 'number'),
    };
  }
  throw new DecodeError(`category event has unknown kind ${JSON.stringify(kind)}`);
}

