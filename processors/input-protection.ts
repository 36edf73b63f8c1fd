import type avro from 'avsc';
import type { SampleloopConfig } from '../config/config.js';
import type { Headers, OutputRecord } from '../engine/record.js';
import { decodeRecord } from '../schemas/codec.js';
import { schemaOf } from '../schemas/index.js';
import type { InputSchemaName } from '../schemas/validate.js';
import { isSealed, type PrivacyPolicy } from './privacy.js';

/**
 * Headers of an input record that was protected at ingest because it cannot be decoded: the
 * decoder's verdict travels with the sealed (or withheld) bytes, so the engine dead-letters the
 * record with the reason it would have given for the original bytes.
 */
export const INGEST_HEADERS = {
  payload: 'sampleloop.ingest.payload',
  reasonCode: 'sampleloop.ingest.reason.code',
  reason: 'sampleloop.ingest.reason',
} as const;

export interface InputProtectionOptions {
  /** Input topic → the schema its records are decoded with. */
  schemas: ReadonlyMap<string, InputSchemaName>;
  /** Called on the first record of an input topic (so a fresh data dir gets its key only when needed). */
  privacy: () => PrivacyPolicy;
  maxRecordBytes: number;
  /** Writer schemas of Confluent-framed values, by id (the schema registry's cache). */
  writerSchema?: (id: number) => avro.Type | undefined;
}

/**
 * Ingest protection: the privacy rules applied to input records (requests, predictions, feedback)
 * BEFORE they are appended, so no input topic holds a sensitive value in clear. Every ingress of the
 * embedded log goes through it (`produce`, the HTTP topic API, the demo; a gateway writing
 * predictions calls `protectRecords` the same way). What a record becomes:
 * - decodable: the JSON of the decoded record with its attributes protected (fields outside the
 *   schema, which the engine drops anyway, are not stored);
 * - not decodable, but JSON whose attributes can be protected in place (every field in the schema,
 *   every sensitive attribute a string, no nested attribute): the same JSON with those attributes
 *   protected, so the engine rejects it for the same reason;
 * - anything else: sealed (encrypted) as a dead letter's payload is (PrivacyPolicy.protectRaw), or
 *   withheld when there is no key, with the decoder's reason in the INGEST_HEADERS.
 * Tokenizing and masking are idempotent, so the engine protecting the stored values again changes nothing.
 */
export class InputProtection {
  private policy: PrivacyPolicy | undefined;
  private fieldsBySchema = new Map<InputSchemaName, ReadonlySet<string>>();

  constructor(private readonly options: InputProtectionOptions) {}

  /** Whether records of `topic` are protected on ingest. */
  protects(topic: string): boolean {
    return this.options.schemas.has(topic);
  }

  protectRecords(records: readonly OutputRecord[]): OutputRecord[] {
    return records.map((record) => this.protectRecord(record));
  }

  /** `record` as it may be stored: unchanged when its topic is not an input topic. */
  protectRecord(record: OutputRecord): OutputRecord {
    const schema = this.options.schemas.get(record.topic);
    if (schema === undefined || record.value === null) return record;
    if (sealedAtIngest(record.value, record.headers) !== undefined) return record;
    const privacy = (this.policy ??= this.options.privacy());
    const result = decodeRecord<{ category?: string; attributes?: Record<string, string> }>(schema, record.value, {
      maxBytes: this.options.maxRecordBytes,
      ...(this.options.writerSchema ? { writerSchema: this.options.writerSchema } : {}),
    });
    if (result.ok) {
      const value = result.value;
      if (value.attributes !== undefined) value.attributes = privacy.protect(value.category ?? null, value.attributes);
      return { ...record, value: Buffer.from(JSON.stringify(value), 'utf8') };
    }
    const inPlace = isJsonText(record.value) && result.partial !== undefined ? this.protectInPlace(schema, result.partial, privacy) : undefined;
    if (inPlace !== undefined) return { ...record, value: inPlace };
    const raw = privacy.protectRaw(record.value);
    // No rule names a sensitive attribute: the bytes hold nothing to protect.
    if (raw === null) return record;
    return {
      ...record,
      value: raw.payload,
      headers: { ...record.headers, [INGEST_HEADERS.payload]: raw.encoding, [INGEST_HEADERS.reasonCode]: result.reasonCode, [INGEST_HEADERS.reason]: result.reason },
    };
  }

  /** The JSON with its sensitive attributes protected, or undefined when that cannot vouch for every sensitive value. */
  private protectInPlace(schema: InputSchemaName, partial: Record<string, unknown>, privacy: PrivacyPolicy): Buffer | undefined {
    const fields = this.schemaFields(schema);
    for (const key of Object.keys(partial)) if (!fields.has(key)) return undefined;
    const attributes = partial.attributes;
    if (attributes === undefined || attributes === null) return Buffer.from(JSON.stringify(partial), 'utf8');
    if (typeof attributes !== 'object' || Array.isArray(attributes)) return undefined;
    const category = typeof partial.category === 'string' ? partial.category : null;
    const sensitive = privacy.sensitiveFields(category);
    const strings: Record<string, string> = {};
    for (const [k, v] of Object.entries(attributes as Record<string, unknown>)) {
      if (typeof v === 'object' && v !== null) return undefined;
      if (typeof v === 'string') strings[k] = v;
      // A sensitive value that is no string (a phone as a number) cannot be protected without changing the record's verdict.
      else if (sensitive.has(k)) return undefined;
    }
    const protectedStrings = privacy.protect(category, strings);
    try {
      return Buffer.from(JSON.stringify({ ...partial, attributes: { ...(attributes as Record<string, unknown>), ...protectedStrings } }), 'utf8');
    } catch {
      return undefined;
    }
  }

  private schemaFields(schema: InputSchemaName): ReadonlySet<string> {
    let fields = this.fieldsBySchema.get(schema);
    if (fields === undefined) {
      fields = new Set((schemaOf(schema) as unknown as { fields: Array<{ name: string }> }).fields.map((f) => f.name));
      this.fieldsBySchema.set(schema, fields);
    }
    return fields;
  }
}

/** Input topics and their schemas: `requests`, `predictions`, `feedback` as configured. */
export function inputTopicSchemas(topics: SampleloopConfig['topics']): Map<string, InputSchemaName> {
  return new Map<string, InputSchemaName>([
    [topics.requests, 'Request'],
    [topics.predictions, 'Prediction'],
    [topics.feedback, 'Feedback'],
  ]);
}

/** The ingest protection of `config`, or undefined when `privacy.protectOnIngest` is off. */
export function inputProtectionFor(
  config: SampleloopConfig,
  privacy: () => PrivacyPolicy,
  writerSchema?: (id: number) => avro.Type | undefined,
): InputProtection | undefined {
  if (!config.privacy.protectOnIngest) return undefined;
  return new InputProtection({ schemas: inputTopicSchemas(config.topics), privacy, maxRecordBytes: config.input.maxRecordBytes, ...(writerSchema ? { writerSchema } : {}) });
}

/** The decoder's verdict on a record protected at ingest (sealed or withheld bytes), or undefined for any other record. */
export function sealedAtIngest(value: Buffer | null, headers: Headers): { reasonCode: string; reason: string; encoding: 'sealed' | 'withheld' } | undefined {
  if (value === null) return undefined;
  const declared = headers[INGEST_HEADERS.payload];
  let encoding: 'sealed' | 'withheld';
  if (isSealed(value)) encoding = 'sealed';
  else if (declared === 'withheld' && value.length === 0) encoding = 'withheld';
  else return undefined;
  const reasonCode = headers[INGEST_HEADERS.reasonCode];
  return {
    reasonCode: reasonCode !== undefined && /^[a-z][a-z-]{0,63}$/.test(reasonCode) ? reasonCode : 'undecodable',
    reason: headers[INGEST_HEADERS.reason] ?? 'the record was sealed before it was appended (it could not be decoded); open the dead letter with `consume --unseal`',
    encoding,
  };
}

function isJsonText(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b;
  }
  return false;
}
