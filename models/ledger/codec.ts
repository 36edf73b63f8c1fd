/** Decoding records of the models topic (Confluent-framed Avro or JSON) into ModelVersions, and the JSON form. */
import { errorMessage } from '../../engine/errors.js';
import { decodeFramed, referencedSchemaId, type WriterSchemaLookup } from '../../schemas/codec.js';
import { schemaOf } from '../../schemas/index.js';
import type { ModelVersion, TrainingSnapshot } from '../../schemas/types.js';
import { LedgerError } from './record.js';


/**
 * A ModelVersion from a decoded value: Avro-decoded (bytes as Buffer) or JSON as `consume` prints it
 * (bytes as `{"base64": ...}` or as UTF-8 text). Throws LedgerError when a field is missing or of the
 * wrong type.
 */
export function modelVersionFromValue(value: unknown): ModelVersion {
  if (!isObject(value)) throw new LedgerError('ledger record is not an object');
  const v = value;
  const str = (name: string, fallback?: string): string => {
    const x = v[name];
    if (x === undefined && fallback !== undefined) return fallback;
    if (typeof x !== 'string') throw new LedgerError(`ledger record: ${name} must be a string`);
    return x;
  };
  const num = (name: string, source: Record<string, unknown> = v): number => {
    const x = source[name];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new LedgerError(`ledger record: ${name} must be a number`);
    return x;
  };
  const strings = (name: string): string[] => {
    const x = v[name];
    if (!Array.isArray(x) || !x.every((s): s is string => typeof s === 'string')) throw new LedgerError(`ledger record: ${name} must be an array of strings`);
    return x;
  };
  const nullableString = (name: string): string | null => {
    const x = v[name];
    if (x === undefined || x === null) return null;
    if (typeof x !== 'string') throw new LedgerError(`ledger record: ${name} must be a string or null`);
    return x;
  };
  const metricsValue = v.metrics ?? {};
  if (!isObject(metricsValue)) throw new LedgerError('ledger record: metrics must be a map of numbers');
  const metrics: Record<string, number> = {};
  for (const key of Object.keys(metricsValue)) metrics[key] = num(key, metricsValue);
  return {
    category: str('category'),
    version: str('version'),
    sequence: num('sequence'),
    createdAt: num('createdAt'),
    onnx: bytesField(v.onnx),
    onnxUri: nullableString('onnxUri'),
    modelSha256: str('modelSha256'),
    featureNames: strings('featureNames'),
    classes: strings('classes'),
    metrics,
    trainingSnapshot: snapshotField(v.trainingSnapshot),
    trainer: str('trainer', ''),
    prevRecordHash: str('prevRecordHash'),
    recordHash: str('recordHash'),
    signer: nullableString('signer'),
    signature: nullableString('signature'),
  };
}

function bytesField(x: unknown): Buffer | null {
  if (x === undefined || x === null) return null;
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof Uint8Array) return Buffer.from(x);
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  if (isObject(x) && typeof x.base64 === 'string' && Object.keys(x).length === 1) return Buffer.from(x.base64, 'base64');
  throw new LedgerError('ledger record: onnx must be bytes, {"base64": ...} or null');
}

function snapshotField(x: unknown): TrainingSnapshot | null {
  if (x === undefined || x === null) return null;
  if (!isObject(x) || typeof x.topic !== 'string' || typeof x.sampleCount !== 'number' || !Array.isArray(x.offsets)) {
    throw new LedgerError('ledger record: trainingSnapshot must be {topic, offsets, sampleCount} or null');
  }
  const offsets = x.offsets.map((o: unknown) => {
    if (!isObject(o) || typeof o.partition !== 'number' || typeof o.offset !== 'number') throw new LedgerError('ledger record: trainingSnapshot.offsets must be [{partition, offset}]');
    return { partition: o.partition, offset: o.offset };
  });
  return { topic: x.topic, offsets, sampleCount: x.sampleCount };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !Buffer.isBuffer(x);
}

/** Decodes the raw value of a models-topic record: Confluent-framed Avro, or JSON (first byte `{`). */
export function decodeLedgerValue(bytes: Buffer | null, lookup: WriterSchemaLookup): ModelVersion {
  if (bytes === null) throw new LedgerError('ledger record has no value (tombstone)');
  if (referencedSchemaId(bytes) !== undefined) {
    try {
      // A writer schema this process has not seen (registered by another registry client) is read as
      // this release's ModelVersion: verification then tells whether that was right.
      return modelVersionFromValue(decodeFramed(bytes, (id) => lookup(id) ?? schemaOf('ModelVersion')).value);
    } catch (err) {
      if (err instanceof LedgerError) throw err;
      throw new LedgerError(`ledger record is not decodable: ${errorMessage(err)}`, { cause: err });
    }
  }
  const text = bytes.toString('utf8');
  if (text.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new LedgerError(`ledger record is not valid JSON: ${errorMessage(err)}`, { cause: err });
    }
    return modelVersionFromValue(parsed);
  }
  throw new LedgerError('ledger record is neither Confluent-framed Avro nor JSON');
}

/** The JSON form of a version (bytes as {"base64": ...}), as written through a running engine's HTTP API. */
export function ledgerJson(record: ModelVersion): Record<string, unknown> {
  return { ...record, onnx: record.onnx === null ? null : { base64: record.onnx.toString('base64') } };
}
