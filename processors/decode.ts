import type avro from 'avsc';
import type { Processor, ProcessorContext } from '../engine/processor.js';
import type { SourceRecord, StreamRecord } from '../engine/record.js';
import type { Extraction, TimestampExtractor } from '../engine/timestamp-extractor.js';
import { decodeRecord } from '../schemas/codec.js';
import type { Feedback, Prediction, Request } from '../schemas/types.js';
import { ReasonCodes } from '../schemas/validate.js';
import { inputDeadLetter } from './dead-letter-payload.js';
import type { PrivacyPolicy } from './privacy.js';
import { sealedAtIngest } from './input-protection.js';

export type InputName = 'Request' | 'Prediction' | 'Feedback';
export type InputValue<N extends InputName> = N extends 'Request' ? Request : N extends 'Prediction' ? Prediction : Feedback;

export interface InputExtractorOptions {
  maxRecordBytes: number;
  privacy: PrivacyPolicy;
  /** Writer schemas of Confluent-framed input, by id (already fetched). */
  writerSchema?: (id: number) => avro.Type | undefined;
  /** An event time more than this ahead of the wall clock is invalid (`future-timestamp`); null: no bound. */
  maxFutureMs: number | null;
  /** The `stage` of this input's dead letters (the decode processor's name). */
  stage: string;
  /** Wall clock, injectable for tests. */
  now?: () => number;
}

/**
 * How sampleloop reads an input record's event time (the engine's TimestampExtractor): it decodes
 * and validates the record once, where the task's input reads it, and takes its `timestamp` field.
 * A record that cannot be decoded, or whose event time is more than `maxFutureMs` ahead of the wall
 * clock, is invalid: the engine sends it to the dead-letter topic where it stands, and it neither
 * takes part in ordering nor moves stream time. The dead letter never carries a sensitive value in
 * clear (see inputDeadLetter).
 */
export class InputExtractor<N extends InputName> implements TimestampExtractor {
  private readonly now: () => number;

  constructor(
    private readonly schema: N,
    private readonly options: InputExtractorOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  extract(record: SourceRecord): Extraction {
    const sealed = sealedAtIngest(record.value, record.headers);
    if (sealed !== undefined) {
      // Protected at ingest because it could not be decoded: its bytes are already sealed (or withheld), never sealed twice.
      return { valid: false, deadLetter: { reasonCode: sealed.reasonCode, reason: sealed.reason, redactedPayload: record.value as Buffer, payloadEncoding: sealed.encoding }, stage: this.options.stage };
    }
    const result = decodeRecord<InputValue<N>>(this.schema, record.value, {
      maxBytes: this.options.maxRecordBytes,
      ...(this.options.writerSchema ? { writerSchema: this.options.writerSchema } : {}),
    });
    if (!result.ok) return this.invalid(result.reasonCode, result.reason, result.partial, record.value);
    const value = result.value;
    const { maxFutureMs } = this.options;
    if (maxFutureMs !== null) {
      const now = this.now();
      if (value.timestamp > now + maxFutureMs) {
        const reason = `event time ${value.timestamp} is ${value.timestamp - now} ms ahead of the wall clock; the limit is join.maxFutureMs = ${maxFutureMs} ms (a timestamp in microseconds or seconds, or a wrong clock?)`;
        return this.invalid(ReasonCodes.futureTimestamp, reason, value as unknown as Record<string, unknown>, record.value);
      }
    }
    return { valid: true, timestamp: value.timestamp, value };
  }

  private invalid(reasonCode: string, reason: string, partial: Record<string, unknown> | undefined, raw: Buffer | null): Extraction {
    return { valid: false, deadLetter: inputDeadLetter(this.schema, this.options.privacy, reasonCode, reason, partial, raw), stage: this.options.stage };
  }
}

export interface DecodeOptions {
  privacy: PrivacyPolicy;
  /** When set, records of other categories are dead letters (`unknown-category`). */
  knownCategories?: ReadonlySet<string>;
}

/**
 * Second step of every input, after its source's InputExtractor decoded and validated it: records of
 * unknown categories go to the dead-letter topic, sensitive attributes are protected, so nothing
 * downstream (state, changelogs, outputs) ever sees a raw sensitive value.
 */
export class DecodeProcessor<N extends InputName> implements Processor<InputValue<N>, InputValue<N>> {
  private ctx!: ProcessorContext<InputValue<N>>;

  constructor(
    private readonly schema: N,
    private readonly options: DecodeOptions,
  ) {}

  init(ctx: ProcessorContext<InputValue<N>>): void {
    this.ctx = ctx;
  }

  process(record: StreamRecord<InputValue<N>>): void {
    const value = record.value as InputValue<N> & { category?: string; attributes?: Record<string, string> };
    if (this.options.knownCategories && value.category !== undefined && !this.options.knownCategories.has(value.category)) {
      const reasonCode = ReasonCodes.unknownCategory;
      this.ctx.metrics.count(`rejected-${reasonCode}`);
      const reason = `category is not configured (known: ${[...this.options.knownCategories].join(', ')}); the record's category is in the payload`;
      this.ctx.deadLetter(inputDeadLetter(this.schema, this.options.privacy, reasonCode, reason, value as unknown as Record<string, unknown>, this.ctx.recordContext()?.value ?? null));
      return;
    }
    if (value.attributes !== undefined) value.attributes = this.options.privacy.protect(value.category ?? null, value.attributes);
    this.ctx.forward({ key: value.requestId, value, timestamp: value.timestamp, headers: record.headers });
  }
}
