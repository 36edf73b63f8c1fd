/**
 * The models a predictor serves: one ONNX session per category, kept in step with the model ledger.
 * The ledger is read as a global table (every instance reads all of it); before each batch a cheap
 * end-offset check tells whether anything new arrived. New versions are verified against the version
 * being served (bytes + chain + a signature by a key the trust policy trusts for the category, see
 * ledger.ts), loaded, then swapped in atomically: a batch uses the
 * sessions it resolved at its start, and a replaced session is released once no batch uses it.
 */
import type { EmbeddedLog } from '../engine/embedded/log.js';
import { errorMessage } from '../engine/errors.js';
import type { SourceRecord } from '../engine/record.js';
import { referencedSchemaId, type WriterSchemaLookup } from '../schemas/codec.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import type { ModelVersion } from '../schemas/types.js';
import { decodeLedgerValue, LedgerBook, type LedgerRecord, type TrustPolicy } from './ledger.js';
import { loadOnnxModel, type LoadOnnxOptions, type OnnxModel, type Prediction } from './onnx-runtime.js';

/** Where the registry reads the ledger from. */
export interface LedgerSource {
  /** End offset of every partition of the models topic; called before each batch, so it must be cheap. */
  endOffsets(): number[];
  /** Records of `partition` at offsets >= `from`, at most `max`, in offset order. */
  read(partition: number, from: number, max: number): LedgerRecord[];
}

/** One raw record of the models topic, decoded (or with the reason it could not be). */
export function toLedgerRecord(r: { partition: number; offset: number; timestamp: number; key: Buffer | null; value: Buffer | null }, lookup: WriterSchemaLookup): LedgerRecord {
  const base = { partition: r.partition, offset: r.offset, timestamp: r.timestamp, key: r.key === null ? null : r.key.toString('utf8') };
  try {
    return { ...base, version: decodeLedgerValue(r.value, lookup) };
  } catch (err) {
    return { ...base, decodeError: errorMessage(err) };
  }
}

/**
 * Decodes models-topic records for a Kafka global table: a writer schema the registry has not cached
 * yet is fetched first (a failed fetch leaves the record undecodable: verification reports it).
 */
export function ledgerRecordDecoder(registry: SchemaRegistry): (record: SourceRecord) => Promise<LedgerRecord> {
  return async (record) => {
    const id = record.value ? referencedSchemaId(record.value) : undefined;
    if (id !== undefined && !registry.cached(id)) await registry.lookup(id).catch(() => undefined);
    return toLedgerRecord(record, (i) => registry.cached(i));
  };
}

/** The models topic of the embedded log, decoded with the given schema lookup (the app's registry). */
export function embeddedLedgerSource(log: EmbeddedLog, topic: string, lookup: WriterSchemaLookup): LedgerSource {
  return {
    endOffsets: () => {
      const config = log.topic(topic);
      if (config === undefined) return [];
      return Array.from({ length: config.partitions }, (_, p) => log.endOffset(topic, p));
    },
    read: (partition, from, max) => log.read(topic, partition, from, max).map((r) => toLedgerRecord(r, lookup)),
  };
}

export type ModelLoader = (bytes: Uint8Array, options: LoadOnnxOptions) => Promise<OnnxModel>;

export interface ModelRegistryOptions {
  /** Whose signatures are accepted for which category (models/ledger/trust.ts); a version not signed by a trusted key is refused. */
  trust: TrustPolicy;
  /** Loads a session (default `loadOnnxModel`, one thread per session); injectable for tests. */
  loadModel?: ModelLoader;
  /** Category whose model serves categories that have none. */
  defaultCategory?: string;
  /** Ledger records read per call (models can be megabytes each). */
  readBatch?: number;
}

/** A loaded version. Immutable: a new version is a new ServedModel. */
export interface ServedModel {
  readonly category: string;
  readonly version: string;
  readonly sequence: number;
  readonly modelSha256: string;
  readonly recordHash: string;
  /** Order of the model's input columns. */
  readonly featureNames: readonly string[];
  readonly classes: readonly string[];
  readonly model: OnnxModel;
}

export type ModelEvent =
  /** `signedBy`: the trusted key's name, null for an unsigned version served under `allowUnsigned`. */
  | { kind: 'loaded'; category: string; version: string; sequence: number; modelSha256: string; replaced: string | null; signedBy: string | null }
  | { kind: 'refused'; category: string; version: string | null; sequence: number | null; offset: number; code: string; reason: string; serving: string | null }
  /** Reading the ledger failed part-way; what was read is applied, the rest is retried at the next refresh. */
  | { kind: 'ledger-unreadable'; reason: string };

interface Slot {
  served: ServedModel;
  inFlight: number;
  retired: boolean;
}

export class ModelRegistry {
  private readonly book: LedgerBook;
  private readonly slots = new Map<string, Slot>();
  private readonly slotOf = new WeakMap<ServedModel, Slot>();
  private positions: number[] = [];
  private refreshing: Promise<ModelEvent[]> | undefined;
  private closed = false;
  private readonly loadModel: ModelLoader;
  private readonly readBatch: number;

  constructor(
    private readonly source: LedgerSource,
    private readonly options: ModelRegistryOptions,
  ) {
    this.book = new LedgerBook(options.trust);
    this.loadModel = options.loadModel ?? loadOnnxModel;
    this.readBatch = options.readBatch ?? 64;
  }

  /**
   * Applies ledger records that arrived since the last call: verifies, loads and swaps. Returns what
   * happened (for the caller to log and count); a concurrent caller waits and gets no events. Never
   * rejects: a read failure is reported as a `ledger-unreadable` event.
   */
  async refresh(): Promise<ModelEvent[]> {
    if (this.refreshing) {
      await this.refreshing;
      return [];
    }
    const ends = this.source.endOffsets();
    if (ends.every((end, p) => end <= (this.positions[p] ?? 0))) return [];
    this.refreshing = this.sync(ends);
    try {
      return await this.refreshing;
    } finally {
      this.refreshing = undefined;
    }
  }

  private async sync(ends: number[]): Promise<ModelEvent[]> {
    const events: ModelEvent[] = [];
    const toLoad = new Map<string, { version: ModelVersion; bytes: Uint8Array; offset: number; signedBy: string | null }>();
    let readError: unknown;
    try {
      ends.forEach((end, p) => this.readPartition(p, end, events, toLoad));
    } catch (err) {
      readError = err; // versions verified before the failure are still loaded; reading resumes after them
    }
    for (const [category, { version, bytes, offset, signedBy }] of toLoad) events.push(await this.load(category, version, bytes, offset, signedBy));
    if (readError !== undefined) events.push({ kind: 'ledger-unreadable', reason: errorMessage(readError) });
    return events;
  }

  private readPartition(p: number, end: number, events: ModelEvent[], toLoad: Map<string, { version: ModelVersion; bytes: Uint8Array; offset: number; signedBy: string | null }>): void {
    let position = this.positions[p] ?? 0;
    while (position < end) {
      const records = this.source.read(p, position, this.readBatch);
      if (records.length === 0) break;
      for (const record of records) {
        const checked = this.book.apply(record);
        if (checked.verification.ok && checked.version && checked.bytes) {
          toLoad.set(checked.category, { version: checked.version, bytes: checked.bytes, offset: checked.offset, signedBy: checked.verification.signedBy ?? null });
        } else if (!checked.verification.ok) {
          events.push({
            kind: 'refused',
            category: checked.category,
            version: checked.version?.version ?? null,
            sequence: checked.version?.sequence ?? null,
            offset: checked.offset,
            code: checked.verification.code,
            reason: checked.verification.reason,
            serving: this.slots.get(checked.category)?.served.version ?? null,
          });
        }
        position = record.offset + 1;
        this.positions[p] = position;
      }
    }
    this.positions[p] = Math.max(position, end);
  }

  private async load(category: string, version: ModelVersion, bytes: Uint8Array, offset: number, signedBy: string | null): Promise<ModelEvent> {
    const current = this.slots.get(category);
    let model: OnnxModel;
    try {
      model = await this.loadModel(bytes, { featureNames: version.featureNames, classes: version.classes });
    } catch (err) {
      return refusal(version, offset, `onnxruntime could not load it: ${errorMessage(err)}`, current);
    }
    if (model.featureNames.length === 0) {
      await model.close();
      return refusal(version, offset, 'the version names no features', current);
    }
    if (this.closed) {
      await model.close();
      return refusal(version, offset, 'the registry is closed', current);
    }
    const served: ServedModel = {
      category,
      version: version.version,
      sequence: version.sequence,
      modelSha256: version.modelSha256,
      recordHash: version.recordHash,
      featureNames: [...model.featureNames],
      classes: [...model.classes],
      model,
    };
    const slot: Slot = { served, inFlight: 0, retired: false };
    this.slots.set(category, slot);
    this.slotOf.set(served, slot);
    if (current) await this.retire(current);
    return { kind: 'loaded', category, version: served.version, sequence: served.sequence, modelSha256: served.modelSha256, replaced: current?.served.version ?? null, signedBy };
  }

  /** The model serving `category` (or the default category's), as of the last refresh. */
  resolve(category: string): ServedModel | undefined {
    const slot = this.slots.get(category) ?? (this.options.defaultCategory === undefined ? undefined : this.slots.get(this.options.defaultCategory));
    return slot?.served;
  }

  /**
   * Keeps `served` open until the matching `release`, even if a newer version replaces it meanwhile:
   * a batch holds the models it resolved for its whole duration.
   */
  hold(served: ServedModel): void {
    const slot = this.slotOf.get(served);
    if (slot) slot.inFlight++;
  }

  async release(served: ServedModel): Promise<void> {
    const slot = this.slotOf.get(served);
    if (!slot) return;
    slot.inFlight--;
    if (slot.retired && slot.inFlight === 0) await slot.served.model.close();
  }

  /** One `predictBatch` on a served model, held for the duration of the call. */
  async predict(served: ServedModel, rows: Float64Array[]): Promise<Prediction[]> {
    this.hold(served);
    try {
      return await served.model.predictBatch(rows);
    } finally {
      await this.release(served);
    }
  }

  /** What is being served, by category. */
  serving(): ServedModel[] {
    return [...this.slots.values()].map((s) => s.served).sort((a, b) => a.category.localeCompare(b.category));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.refreshing) await this.refreshing.catch(() => []);
    const slots = [...this.slots.values()];
    this.slots.clear();
    for (const slot of slots) await this.retire(slot);
  }

  private async retire(slot: Slot): Promise<void> {
    slot.retired = true;
    if (slot.inFlight === 0) await slot.served.model.close();
  }
}

/** A version that verified but cannot be served: it stays in the chain, the previous model keeps serving. */
function refusal(version: ModelVersion, offset: number, reason: string, current: Slot | undefined): ModelEvent {
  return { kind: 'refused', category: version.category, version: version.version, sequence: version.sequence, offset, code: 'load-failed', reason, serving: current?.served.version ?? null };
}
