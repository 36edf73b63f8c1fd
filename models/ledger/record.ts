/**
 * Building a ModelVersion and its hashes: the chain fields (sequence, prevRecordHash, recordHash) and
 * modelSha256, and where a version's ONNX bytes are.
 *
 *   recordHash    = lowercase hex SHA-256 of canonicalEncoding(record), see below
 *   prevRecordHash = recordHash of the category's previous verified version ("" for the first)
 *   sequence      = previous sequence + 1 (1 for the first)
 *   modelSha256   = lowercase hex SHA-256 of the ONNX bytes
 *
 * canonicalEncoding(record) is the Avro binary encoding (no Confluent framing) of the record under
 * schemas/ModelVersion.avsc without the fields added later (`signer`, `signature`), with `recordHash` set to "" and the `metrics` map written as one block
 * with its entries in ascending key order (UTF-8 byte order). Avro binary is otherwise canonical for a
 * given schema, so any language with an Avro library can recompute the hash (docs/model-cluster.md).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type avro from 'avsc';
import { SampleloopError, errorMessage, type ErrorOptions } from '../../engine/errors.js';
import { parseSchema, schemaJson, type SchemaName } from '../../schemas/index.js';
import type { ModelVersion, TrainingSnapshot } from '../../schemas/types.js';

/** The ledger is inconsistent, or a version cannot be built or published (code SL_LEDGER). */
export class LedgerError extends SampleloopError {
  constructor(message: string, options?: ErrorOptions) {
    super('SL_LEDGER', message, options);
  }
}

export const MODEL_VERSION_SCHEMA: SchemaName = 'ModelVersion';

/** What a publisher supplies; the chain fields are computed by `buildVersion`. */
export interface NewVersion {
  category: string;
  /** Defaults to the sequence number as text ("1", "2", ...). */
  version?: string;
  /** The ONNX bytes (hashed; stored inline unless `onnxUri` is given). */
  onnx: Uint8Array;
  /** A file:// URI where the bytes live; when set the record does not carry the bytes. */
  onnxUri?: string;
  featureNames: string[];
  classes: string[];
  metrics?: Record<string, number>;
  trainingSnapshot?: TrainingSnapshot | null;
  trainer?: string;
  createdAt: number;
}

/** Fields added after the hash was defined, which it does not cover: the signature is over the hash. */
export const UNHASHED_FIELDS: readonly string[] = ['signer', 'signature'];

let hashingType: avro.Type | undefined;

/**
 * ModelVersion with `metrics` declared as an array of {key, value} records: Avro writes a map block and
 * an array block of such records with the same bytes, and an array keeps the order we sort it in
 * (a JS object would put integer-like keys first whatever we do).
 */
function canonicalType(): avro.Type {
  if (hashingType !== undefined) return hashingType;
  const schema = JSON.parse(schemaJson('ModelVersion')) as { name: string; fields: Array<{ name: string; type: unknown; default?: unknown }> };
  schema.name = 'ModelVersionCanonical';
  schema.fields = schema.fields.filter((f) => !UNHASHED_FIELDS.includes(f.name));
  for (const field of schema.fields) {
    if (field.name === 'metrics') {
      field.type = { type: 'array', items: { type: 'record', name: 'MetricEntry', fields: [{ name: 'key', type: 'string' }, { name: 'value', type: 'double' }] } };
      field.default = [];
    }
  }
  hashingType = parseSchema(schema);
  return hashingType;
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The bytes `recordHash` is computed over (see the module comment). */
export function canonicalEncoding(record: ModelVersion): Buffer {
  const metrics = Object.keys(record.metrics)
    .sort(byUtf8)
    .map((key) => ({ key, value: record.metrics[key] as number }));
  try {
    return canonicalType().toBuffer({
      category: record.category,
      version: record.version,
      sequence: record.sequence,
      createdAt: record.createdAt,
      onnx: record.onnx === null ? null : Buffer.from(record.onnx),
      onnxUri: record.onnxUri,
      modelSha256: record.modelSha256,
      featureNames: record.featureNames,
      classes: record.classes,
      metrics,
      trainingSnapshot: record.trainingSnapshot,
      trainer: record.trainer,
      prevRecordHash: record.prevRecordHash,
      recordHash: '',
    });
  } catch (err) {
    throw new LedgerError(`model version ${record.category}/${record.version} is not a valid ModelVersion: ${errorMessage(err)}`, { cause: err });
  }
}

export function computeRecordHash(record: ModelVersion): string {
  return createHash('sha256').update(canonicalEncoding(record)).digest('hex');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// Building and verifying

/** The next version of `input.category` after `previous` (its last verified version; undefined for the first). */
export function buildVersion(input: NewVersion, previous: ModelVersion | undefined): ModelVersion {
  if (input.category.length === 0) throw new LedgerError('a model version needs a non-empty category');
  if (previous !== undefined && previous.category !== input.category) {
    throw new LedgerError(`previous version belongs to category "${previous.category}", not "${input.category}"`);
  }
  const sequence = (previous?.sequence ?? 0) + 1;
  const version = input.version ?? String(sequence);
  if (version.length === 0) throw new LedgerError('a model version label must not be empty');
  checkNames('featureNames', input.featureNames);
  checkNames('classes', input.classes);
  if (new Set(input.classes).size !== input.classes.length) throw new LedgerError(`classes contain duplicates: ${input.classes.join(', ')}`);
  if (input.onnx.length === 0) throw new LedgerError('the ONNX model is empty');
  if (input.onnxUri !== undefined && !input.onnxUri.startsWith('file://')) throw new LedgerError(`onnxUri must be a file:// URI, got "${input.onnxUri}"`);
  const metrics: Record<string, number> = {};
  for (const [key, value] of Object.entries(input.metrics ?? {})) {
    if (!Number.isFinite(value)) throw new LedgerError(`metric "${key}" must be a finite number, got ${value}`);
    metrics[key] = value === 0 ? 0 : value; // -0 would not survive JSON
  }
  if (!Number.isSafeInteger(input.createdAt)) throw new LedgerError(`createdAt must be an integer epoch-millisecond time, got ${input.createdAt}`);
  const record: ModelVersion = {
    category: input.category,
    version,
    sequence,
    createdAt: input.createdAt,
    onnx: input.onnxUri === undefined ? Buffer.from(input.onnx) : null,
    onnxUri: input.onnxUri ?? null,
    modelSha256: sha256Hex(input.onnx),
    featureNames: [...input.featureNames],
    classes: [...input.classes],
    metrics,
    trainingSnapshot: input.trainingSnapshot ?? null,
    trainer: input.trainer ?? '',
    prevRecordHash: previous?.recordHash ?? '',
    recordHash: '',
    signer: null,
    signature: null,
  };
  record.recordHash = computeRecordHash(record);
  return record;
}

function checkNames(field: string, names: readonly string[]): void {
  if (names.length === 0) throw new LedgerError(`${field} must not be empty`);
  const bad = names.find((n) => typeof n !== 'string' || n.length === 0);
  if (bad !== undefined) throw new LedgerError(`${field} must be non-empty strings`);
}

/** The ONNX bytes of a version: inline, or read from its file:// URI. Throws LedgerError when unavailable. */
export function modelBytes(record: ModelVersion): Buffer {
  if (record.onnx !== null) return record.onnx;
  if (record.onnxUri === null) throw new LedgerError(`version ${record.category}/${record.version} has neither inline ONNX bytes nor an onnxUri`);
  if (!record.onnxUri.startsWith('file://')) throw new LedgerError(`version ${record.category}/${record.version}: only file:// URIs are supported, got ${record.onnxUri}`);
  try {
    return readFileSync(fileURLToPath(record.onnxUri));
  } catch (err) {
    throw new LedgerError(`version ${record.category}/${record.version}: cannot read ${record.onnxUri}: ${errorMessage(err)}`, { cause: err });
  }
}

