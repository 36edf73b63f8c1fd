import type avro from 'avsc';
import type { Processor, ProcessorContext } from '../engine/processor.js';
import type { StreamRecord } from '../engine/record.js';
import { decodeRecord } from '../schemas/codec.js';
import { schemaOf } from '../schemas/index.js';
import type { Feedback, Prediction, Request } from '../schemas/types.js';
import type { PrivacyPolicy } from './privacy.js';
import { sealedAtIngest } from './input-protection.js';

type InputName = 'Request' | 'Prediction' | 'Feedback';
type InputValue<N extends InputName> = N extends 'Request' ? Request : N extends 'Prediction' ? Prediction : Feedback;

export interface DecodeOptions {
  maxRecordBytes: number;
  privacy: PrivacyPolicy;
  /** Writer schemas of Confluent-framed input, by id (already fetched). */
  writerSchema?: (id: number) => avro.Type | undefined;
  /** When set, records of other categories are dead letters (`unknown-category`). */
  knownCategories?: ReadonlySet<string>;
}

/**
 * First step of every input: bytes → validated record with sensitive attributes protected.
 * Anything that fails goes to the dead-letter topic with a reason code; nothing downstream
 * (state, changelogs, outputs) ever sees a raw sensitive value.
 */
export class DecodeProcessor<N extends InputName> implements Processor<Buffer | null, InputValue<N>> {
  private ctx!: ProcessorContext<InputValue<N>>;
  private fields: ReadonlySet<string> | undefined;

  constructor(
    private readonly schema: N,
    private readonly options: DecodeOptions,
  ) {}

  init(ctx: ProcessorContext<InputValue<N>>): void {
    this.ctx = ctx;
  }

  process(record: StreamRecord<Buffer | null>): void {
    const sealed = sealedAtIngest(record.value, record.headers);
    if (sealed !== undefined) {
      // Protected at ingest because it could not be decoded: its bytes are already sealed (or withheld), never sealed twice.
      this.ctx.metrics.count(`rejected-${sealed.reasonCode}`);
      this.ctx.deadLetter({ reasonCode: sealed.reasonCode, reason: sealed.reason, redactedPayload: record.value as Buffer, payloadEncoding: sealed.encoding });
      return;
    }
    const result = decodeRecord<InputValue<N>>(this.schema, record.value, {
      maxBytes: this.options.maxRecordBytes,
      ...(this.options.writerSchema ? { writerSchema: this.options.writerSchema } : {}),
    });
    if (!result.ok) {
      this.reject(result.reasonCode, result.reason, result.partial);
      return;
    }
    const value = result.value as InputValue<N> & { category?: string; attributes?: Record<string, string> };
    if (this.options.knownCategories && value.category !== undefined && !this.options.knownCategories.has(value.category)) {
      this.reject('unknown-category', `category is not configured (known: ${[...this.options.knownCategories].join(', ')}); the record's category is in the payload`, value as unknown as Record<string, unknown>);
      return;
    }
    if (value.attributes !== undefined) value.attributes = this.options.privacy.protect(value.category ?? null, value.attributes);
    this.ctx.forward({ key: value.requestId, value, timestamp: value.timestamp, headers: record.headers });
  }

  private reject(reasonCode: string, reason: string, partial: Record<string, unknown> | undefined): void {
    this.ctx.metrics.count(`rejected-${reasonCode}`);
    const redacted = partial && this.redactable(partial) ? this.redact(partial) : undefined;
    if (redacted) {
      this.ctx.deadLetter({ reasonCode, reason, redactedPayload: redacted });
      return;
    }
    // Bytes we could not parse may hold sensitive values we cannot find: keep them sealed, never in clear.
    const protectedPayload = this.options.privacy.protectRaw(this.ctx.recordContext()?.value ?? Buffer.alloc(0));
    // No rule names a sensitive attribute: the dead letter keeps the original bytes.
    if (protectedPayload === null) this.ctx.deadLetter({ reasonCode, reason });
    else this.ctx.deadLetter({ reasonCode, reason, redactedPayload: protectedPayload.payload, payloadEncoding: protectedPayload.encoding });
  }

  /**
   * Whether a re-encoding can vouch for every sensitive value: not when a field outside the schema is
   * present (e.g. the raw request a gateway log carries, with its customer data) or an attribute holds
   * an object or array (sensitive values nested under a key the rules do not name). Those are sealed.
   */
  private redactable(partial: Record<string, unknown>): boolean {
    this.fields ??= new Set((schemaOf(this.schema) as unknown as { fields: Array<{ name: string }> }).fields.map((f) => f.name));
    for (const key of Object.keys(partial)) if (!this.fields.has(key)) return false;
    const attributes = partial.attributes;
    if (attributes === undefined || attributes === null) return true;
    if (typeof attributes !== 'object' || Array.isArray(attributes)) return false;
    for (const v of Object.values(attributes as Record<string, unknown>)) if (typeof v === 'object' && v !== null) return false;
    return true;
  }

  /** Re-encodes what could be parsed with its sensitive attributes protected, so dead letters never carry them in clear. */
  private redact(partial: Record<string, unknown>): Buffer | undefined {
    const attributes = partial.attributes;
    const category = typeof partial.category === 'string' ? partial.category : null;
    const safe: Record<string, unknown> = { ...partial };
    if (typeof attributes === 'object' && attributes !== null && !Array.isArray(attributes)) {
      const strings: Record<string, string> = {};
      for (const [k, v] of Object.entries(attributes as Record<string, unknown>)) strings[k] = typeof v === 'string' ? v : JSON.stringify(v);
      safe.attributes = this.options.privacy.protect(category, strings);
    }
    try {
      return Buffer.from(JSON.stringify(safe, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
    } catch {
      // Nested too deeply to re-encode (JSON.stringify overflows the stack): the original is sealed instead.
      return undefined;
    }
  }
}
