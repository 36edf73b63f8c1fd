/**
 * The model ledger: `ModelVersion` records on the `models` topic (key = category), hash-chained per
 * category so that any change to a stored version, or a version spliced into the history, is detected.
 *
 *   recordHash    = lowercase hex SHA-256 of canonicalEncoding(record), see below
 *   prevRecordHash = recordHash of the category's previous verified version ("" for the first)
 *   sequence      = previous sequence + 1 (1 for the first)
 *   modelSha256   = lowercase hex SHA-256 of the ONNX bytes
 *
 * canonicalEncoding(record) is the Avro binary encoding (no Confluent framing) of the record under
 * schemas/ModelVersion.avsc with `recordHash` set to "" and the `metrics` map written as one block
 * with its entries in ascending key order (UTF-8 byte order). Avro binary is otherwise canonical for a
 * given schema, so any language with an Avro library can recompute the hash (docs/model-cluster.md).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type avro from 'avsc';
import { SampleloopError, errorMessage, type ErrorOptions } from '../engine/errors.js';
import type { DisplayRecord, LogAccess } from '../access/embedded.js';
import { decodeFramed, referencedSchemaId, type WriterSchemaLookup } from '../schemas/codec.js';
import { parseSchema, schemaJson, schemaOf, type SchemaName } from '../schemas/index.js';
import type { ModelVersion, TrainingSnapshot } from '../schemas/types.js';

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

export type VerifyCode =
  | 'undecodable'
  | 'bytes-missing'
  | 'bytes-mismatch'
  | 'record-hash-mismatch'
  | 'chain-broken'
  | 'sequence'
  | 'category-mismatch'
  | 'duplicate-version';

export type Verification = { ok: true } | { ok: false; code: VerifyCode; reason: string };

// ---------------------------------------------------------------------------------------------
// Hashing

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

// ---------------------------------------------------------------------------------------------
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

/**
 * Checks one version against the category's previous verified version: the ONNX bytes hash to
 * `modelSha256`, the record hashes to `recordHash`, `prevRecordHash` links to the previous version and
 * `sequence` follows it. `bytes` saves re-reading an onnxUri the caller already read.
 */
export function verifyVersion(record: ModelVersion, previous: ModelVersion | undefined, options: { bytes?: Uint8Array } = {}): Verification {
  if (previous !== undefined && previous.category !== record.category) {
    return fail('category-mismatch', `version belongs to category "${record.category}" but is checked against a version of "${previous.category}"`);
  }
  let bytes: Uint8Array;
  try {
    bytes = options.bytes ?? modelBytes(record);
  } catch (err) {
    return fail('bytes-missing', errorMessage(err));
  }
  const actualSha = sha256Hex(bytes);
  if (actualSha !== record.modelSha256) {
    return fail('bytes-mismatch', `the ONNX bytes hash to ${actualSha} but the record says modelSha256 = ${record.modelSha256}`);
  }
  let actualHash: string;
  try {
    actualHash = computeRecordHash(record);
  } catch (err) {
    return fail('record-hash-mismatch', errorMessage(err));
  }
  if (actualHash !== record.recordHash) {
    return fail('record-hash-mismatch', `the record's fields hash to ${actualHash} but recordHash = ${record.recordHash || '""'} (the record was changed after it was published)`);
  }
  const expectedPrev = previous?.recordHash ?? '';
  if (record.prevRecordHash !== expectedPrev) {
    return fail(
      'chain-broken',
      previous === undefined
        ? `first version of "${record.category}" must have prevRecordHash "" but has ${record.prevRecordHash}`
        : `prevRecordHash ${record.prevRecordHash || '""'} does not link to the previous verified version ${previous.version} (sequence ${previous.sequence}, recordHash ${previous.recordHash})`,
    );
  }
  const expectedSequence = (previous?.sequence ?? 0) + 1;
  if (record.sequence !== expectedSequence) {
    return fail('sequence', `sequence is ${record.sequence}, expected ${expectedSequence}`);
  }
  return { ok: true };
}

function fail(code: VerifyCode, reason: string): Verification {
  return { ok: false, code, reason };
}

// ---------------------------------------------------------------------------------------------
// Decoding records of the models topic

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

// ---------------------------------------------------------------------------------------------
// Following the ledger

/** One record of the models topic, decoded when possible. */
export interface LedgerRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key: string | null;
  version?: ModelVersion;
  /** Why the record could not be decoded. */
  decodeError?: string;
}

export interface CheckedVersion {
  partition: number;
  offset: number;
  category: string;
  /** Undefined when the record could not be decoded. */
  version: ModelVersion | undefined;
  verification: Verification;
}

/**
 * Follows the models topic record by record and verifies each version against the last version of
 * its category that verified (the one a predictor serves). A version that fails is left out of the
 * chain: the next version must link to the last good one.
 */
export class LedgerBook {
  private readonly heads = new Map<string, ModelVersion>();
  private readonly labels = new Map<string, Set<string>>();

  /** Verifies `record` and, when it verifies, makes it its category's head. `bytes` is set when it verified. */
  apply(record: LedgerRecord): CheckedVersion & { bytes?: Uint8Array } {
    const base = { partition: record.partition, offset: record.offset };
    const version = record.version;
    if (version === undefined) {
      return { ...base, category: record.key ?? '', version: undefined, verification: fail('undecodable', record.decodeError ?? 'record could not be decoded') };
    }
    const previous = this.heads.get(version.category);
    let bytes: Uint8Array | undefined;
    let verification: Verification;
    try {
      bytes = modelBytes(version);
      verification = verifyVersion(version, previous, { bytes });
    } catch (err) {
      verification = fail('bytes-missing', errorMessage(err));
    }
    const labels = this.labels.get(version.category) ?? new Set<string>();
    if (verification.ok && labels.has(version.version)) {
      verification = fail('duplicate-version', `version label "${version.version}" is already used by an earlier verified version of "${version.category}"`);
    }
    if (!verification.ok || bytes === undefined) return { ...base, category: version.category, version, verification };
    labels.add(version.version);
    this.labels.set(version.category, labels);
    this.heads.set(version.category, version);
    return { ...base, category: version.category, version, verification, bytes };
  }

  /** The last verified version of a category. */
  head(category: string): ModelVersion | undefined {
    return this.heads.get(category);
  }

  allHeads(): Map<string, ModelVersion> {
    return new Map(this.heads);
  }

  hasVersion(category: string, label: string): boolean {
    return this.labels.get(category)?.has(label) ?? false;
  }
}

export interface LedgerView {
  /** Every record of the topic in log order, with its verification. */
  versions: CheckedVersion[];
  /** Per category, its versions in log order. */
  byCategory: Map<string, CheckedVersion[]>;
  /** Per category, the last verified version (what a predictor serves). */
  heads: Map<string, ModelVersion>;
  failures: CheckedVersion[];
}

/** Reads and verifies the whole ledger through the CLI's log access (direct or through a running engine). */
export async function readLedger(access: LogAccess, topic = 'models'): Promise<LedgerView> {
  const exists = (await access.topics()).some((t) => t.topic === topic);
  const records = exists ? await access.read(topic) : [];
  const book = new LedgerBook();
  const versions: CheckedVersion[] = [];
  const byCategory = new Map<string, CheckedVersion[]>();
  const sorted = [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const display of sorted) {
    const { bytes: _bytes, ...checked } = book.apply(displayToLedgerRecord(display));
    versions.push(checked);
    const list = byCategory.get(checked.category) ?? [];
    list.push(checked);
    byCategory.set(checked.category, list);
  }
  return { versions, byCategory, heads: book.allHeads(), failures: versions.filter((v) => !v.verification.ok) };
}

function displayToLedgerRecord(display: DisplayRecord): LedgerRecord {
  const base = { partition: display.partition, offset: display.offset, timestamp: display.timestamp, key: display.key };
  try {
    return { ...base, version: modelVersionFromValue(display.value) };
  } catch (err) {
    return { ...base, decodeError: errorMessage(err) };
  }
}

export interface Published {
  record: ModelVersion;
  previous: ModelVersion | undefined;
  /** Records of the ledger that failed verification when this version was published. */
  failures: CheckedVersion[];
}

/**
 * Appends the next version of `input.category`, linked to its last verified version. Written as
 * Confluent-framed Avro when the access can (direct access), else as JSON (through a running engine).
 * One publisher per category at a time: two racing publishers fork the chain, and `verify` reports the loser.
 */
export async function publishVersion(access: LogAccess, input: NewVersion, options: { topic?: string } = {}): Promise<Published> {
  const topic = options.topic ?? 'models';
  const view = await readLedger(access, topic);
  const previous = view.heads.get(input.category);
  if (input.version !== undefined && (view.byCategory.get(input.category) ?? []).some((v) => v.verification.ok && v.version?.version === input.version)) {
    throw new LedgerError(`category "${input.category}" already has a version "${input.version}"; version labels are unique per category`);
  }
  const record = buildVersion(input, previous);
  if (access.produceAvro) {
    await access.produceAvro(topic, MODEL_VERSION_SCHEMA, [{ key: record.category, value: record, timestamp: record.createdAt }]);
  } else {
    await access.produce(topic, JSON.stringify(ledgerJson(record)), { keyField: 'category', createPartitions: 1 });
  }
  return { record, previous, failures: view.failures };
}

/** A version as a trainer hands it over: everything but the chain fields, which the ledger computes. */
export type UnchainedVersion = Omit<ModelVersion, 'recordHash' | 'prevRecordHash' | 'sequence'>;

/** The ledger as an in-process publisher (e.g. the built-in trainer) uses it. */
export interface LedgerClient {
  /** The last verified version of `category` (what predictors serve), or undefined. */
  latest(category: string): Promise<ModelVersion | undefined>;
  /** The version labels of the category's verified versions (labels are unique per category). */
  versions(category: string): Promise<string[]>;
  publishVersion(version: UnchainedVersion): Promise<Published>;
}

/** `access` is e.g. `directAccess(app.log, app.registry)` inside the engine process. */
export function ledgerClient(access: LogAccess, topic = 'models'): LedgerClient {
  return {
    latest: async (category) => (await readLedger(access, topic)).heads.get(category),
    versions: async (category) =>
      ((await readLedger(access, topic)).byCategory.get(category) ?? []).flatMap((v) => (v.verification.ok && v.version ? [v.version.version] : [])),
    publishVersion: async (v) => {
      const bytes = modelBytes({ ...v, sequence: 0, prevRecordHash: '', recordHash: '' });
      if (v.modelSha256 !== '' && sha256Hex(bytes) !== v.modelSha256) {
        throw new LedgerError(`modelSha256 ${v.modelSha256} does not match the ONNX bytes (${sha256Hex(bytes)})`);
      }
      return publishVersion(
        access,
        {
          category: v.category,
          version: v.version,
          onnx: bytes,
          ...(v.onnx === null && v.onnxUri !== null ? { onnxUri: v.onnxUri } : {}),
          featureNames: v.featureNames,
          classes: v.classes,
          metrics: v.metrics,
          trainingSnapshot: v.trainingSnapshot,
          trainer: v.trainer,
          createdAt: v.createdAt,
        },
        { topic },
      );
    },
  };
}
