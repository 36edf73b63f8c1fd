/**
 * The retrain trigger (docs/retraining.md).
 *
 * Samples are keyed by requestId, so one category's samples are spread over every partition. Like a
 * Kafka Streams `groupBy`, two small re-keying processors turn samples and model versions into
 * `CategoryEvent`s keyed by category on an internal repartition topic; `RetrainTriggerProcessor`
 * then sees every event of a category in one task and keeps its counters in stores.
 */
import { DecodeError, errorMessage } from '../engine/errors.js';
import type { Processor, ProcessorContext } from '../engine/processor.js';
import type { StreamRecord } from '../engine/record.js';
import type { Serializer, StoreSpec } from '../engine/topology.js';
import { decodeFramed, referencedSchemaId, type WriterSchemaLookup } from '../schemas/codec.js';
import type { KeyValueStore, Codec } from '../engine/state/kv-store.js';
import type { LabelSource, RetrainTrigger } from '../schemas/types.js';

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
    }
  | { kind: 'model'; version: string; sequence: number; createdAt: number };

export type TriggerReason = 'sample-count' | 'accuracy-drop' | 'age';

export interface TriggerSettings {
  /** Fire when this many new samples (distinct request IDs) arrived since the serving version. */
  minNewSamples: number;
  /** Fire when the live accuracy over the window falls below this ... */
  minLiveAccuracy: number;
  /** ... and the window holds at least this many samples. */
  minWindowSamples: number;
  /** Size of the sliding window of the serving version's CONFIRMED / CORRECTED samples. */
  windowSamples: number;
  /** Fire when the serving version is this old (wall clock) and has new samples; null: never. */
  maxAgeMs: number | null;
  /** New samples the age rule needs. */
  minNewSamplesForAge: number;
  /** A fired trigger blocks the next one of its category until a new version appears or this passes. */
  debounceMs: number;
  /** Wall-clock period of the check that fires age triggers while no sample arrives. */
  checkIntervalMs: number;
}

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

/** Per-category state of the trigger. Times are wall-clock ms; -1 means "not yet". */
export interface CategoryState {
  servingVersion: string;
  servingSince: number;
  /** True once the version came from the models topic; from then on samples no longer switch it. */
  servingFromLedger: boolean;
  ledgerSequence: number;
  /** Versions learned from samples (bounded), so a late sample of an old version does not switch back. */
  knownVersions: string[];
  /** Distinct request IDs first seen since the serving version. */
  newSamples: number;
  /** Distinct request IDs ever seen (= the snapshot's sampleCount). */
  totalSamples: number;
  /** Accepted sample events (new request IDs and newer revisions): a trigger needs new data since the last one. */
  changes: number;
  changesAtLastFire: number;
  /** The window is the entries with sequence numbers in [windowStart, windowEnd). */
  windowStart: number;
  windowEnd: number;
  windowConfirmed: number;
  windowCorrected: number;
  pending: boolean;
  lastFiredAt: number;
  /** Triggers fired for the serving version (the n of the trigger id). */
  firedForVersion: number;
}

interface SeenEntry {
  revision: number;
  /** Window sequence number of this request, -1 when it never entered the window. */
  windowSeq: number;
}

interface WindowEntry {
  requestId: string;
  labelSource: 'CONFIRMED' | 'CORRECTED';
}

function jsonCodec<V>(): Codec<V> {
  return { encode: (v) => Buffer.from(JSON.stringify(v), 'utf8'), decode: (b) => JSON.parse(b.toString('utf8')) as V };
}

export function triggerStoreNames(name: string): { categories: string; seen: string; window: string; positions: string } {
  return { categories: `${name}-categories`, seen: `${name}-seen`, window: `${name}-window`, positions: `${name}-positions` };
}

export function triggerStores(name: string): StoreSpec[] {
  const names = triggerStoreNames(name);
  return [
    { name: names.categories, codec: jsonCodec<CategoryState>(), rangeScans: true },
    { name: names.seen, codec: jsonCodec<SeenEntry>() },
    { name: names.window, codec: jsonCodec<WindowEntry>(), readCacheEntries: 0 },
    { name: names.positions, codec: jsonCodec<number>() },
  ];
}

export interface RetrainTriggerOptions {
  settings: TriggerSettings;
  samplesTopic: string;
  /** Partition count of the samples topic, so every partition is in the snapshot. */
  samplesPartitions?: () => number;
  /** Wall clock (ms); the runtime's clock in tests. */
  now: () => number;
}

const MAX_KNOWN_VERSIONS = 16;
/** Store keys must be ASCII for range scans; URI encoding keeps any category name ASCII and '/'-free. */
const keyOf = (category: string): string => encodeURIComponent(category);
const ALL_KEYS_END = '\u007f';

function freshState(): CategoryState {
  return {
    servingVersion: '',
    servingSince: -1,
    servingFromLedger: false,
    ledgerSequence: -1,
    knownVersions: [],
    newSamples: 0,
    totalSamples: 0,
    changes: 0,
    changesAtLastFire: 0,
    windowStart: 0,
    windowEnd: 0,
    windowConfirmed: 0,
    windowCorrected: 0,
    pending: false,
    lastFiredAt: -1,
    firedForVersion: 0,
  };
}

/** CategoryEvent (key category) → RetrainTrigger (key category). See docs/retraining.md for the rules. */
export class RetrainTriggerProcessor implements Processor<Buffer | null, RetrainTrigger> {
  private ctx!: ProcessorContext<RetrainTrigger>;
  private categories!: KeyValueStore<CategoryState>;
  private seen!: KeyValueStore<SeenEntry>;
  private window!: KeyValueStore<WindowEntry>;
  private positions!: KeyValueStore<number>;

  constructor(
    private readonly storeNames: ReturnType<typeof triggerStoreNames>,
    private readonly options: RetrainTriggerOptions,
  ) {}

  init(ctx: ProcessorContext<RetrainTrigger>): void {
    this.ctx = ctx;
    this.categories = ctx.store(this.storeNames.categories);
    this.seen = ctx.store(this.storeNames.seen);
    this.window = ctx.store(this.storeNames.window);
    this.positions = ctx.store(this.storeNames.positions);
    ctx.schedule(this.options.settings.checkIntervalMs, (now) => this.checkAll(now));
  }

  process(record: StreamRecord<Buffer | null>): void {
    if (record.key === null || record.value === null) return;
    let event: CategoryEvent;
    try {
      event = parseCategoryEvent(record.value);
    } catch (err) {
      this.ctx.deadLetter({ reasonCode: 'undecodable-category-event', reason: errorMessage(err) });
      return;
    }
    const category = record.key;
    const state = this.categories.get(keyOf(category)) ?? freshState();
    const now = this.options.now();
    if (event.kind === 'model') this.onModel(category, state, event, now);
    else this.onSample(category, state, event, now);
    this.evaluate(category, state, now);
    this.categories.put(keyOf(category), state);
  }

  private onModel(category: string, state: CategoryState, event: Extract<CategoryEvent, { kind: 'model' }>, now: number): void {
    if (event.sequence <= state.ledgerSequence) return;
    state.ledgerSequence = event.sequence;
    state.servingFromLedger = true;
    if (event.version === state.servingVersion) {
      state.servingSince = event.createdAt;
      return;
    }
    this.adoptVersion(category, state, event.version, event.createdAt);
    this.ctx.logger.info({ category, version: event.version, at: now }, 'trigger: new serving version from the model ledger');
  }

  private onSample(category: string, state: CategoryState, event: Extract<CategoryEvent, { kind: 'sample' }>, now: number): void {
    const position = `${event.partition}`;
    if ((this.positions.get(position) ?? 0) < event.offset + 1) this.positions.put(position, event.offset + 1);
    this.learnVersionFromSample(category, state, event.modelVersion, now);

    const seenKey = `${keyOf(category)}/${event.requestId}`;
    let seen = this.seen.get(seenKey);
    if (seen !== undefined && event.revision <= seen.revision) {
      this.ctx.metrics.count('trigger-duplicate-sample');
      return;
    }
    if (seen === undefined) {
      seen = { revision: event.revision, windowSeq: -1 };
      state.totalSamples++;
      state.newSamples++;
    }
    seen.revision = event.revision;
    state.changes++;

    const explicit = event.labelSource === 'CONFIRMED' || event.labelSource === 'CORRECTED';
    const ofServing = state.servingVersion === '' || event.modelVersion === state.servingVersion;
    if (seen.windowSeq >= state.windowStart) {
      // A newer revision of a request still in the window replaces its label source there.
      if (explicit) this.relabelWindowEntry(category, state, seen.windowSeq, event.labelSource as WindowEntry['labelSource']);
    } else if (seen.windowSeq === -1 && explicit && ofServing) {
      seen.windowSeq = this.pushWindowEntry(category, state, { requestId: event.requestId, labelSource: event.labelSource as WindowEntry['labelSource'] });
    }
    this.seen.put(seenKey, seen);
  }

  private learnVersionFromSample(category: string, state: CategoryState, modelVersion: string, now: number): void {
    if (state.servingFromLedger || modelVersion === '' || modelVersion === state.servingVersion) return;
    if (state.knownVersions.includes(modelVersion)) return;
    state.knownVersions = [...state.knownVersions, modelVersion].slice(-MAX_KNOWN_VERSIONS);
    this.adoptVersion(category, state, modelVersion, now);
    this.ctx.logger.info({ category, version: modelVersion }, 'trigger: new serving version seen in samples');
  }

  /** A new serving version: counters, window and the pending trigger start over. */
  private adoptVersion(category: string, state: CategoryState, version: string, since: number): void {
    state.servingVersion = version;
    state.servingSince = since;
    state.newSamples = 0;
    state.pending = false;
    state.firedForVersion = 0;
    for (let seq = state.windowStart; seq < state.windowEnd; seq++) this.window.delete(`${keyOf(category)}/${seq}`);
    state.windowStart = state.windowEnd;
    state.windowConfirmed = 0;
    state.windowCorrected = 0;
  }

  private pushWindowEntry(category: string, state: CategoryState, entry: WindowEntry): number {
    const seq = state.windowEnd++;
    this.window.put(`${keyOf(category)}/${seq}`, entry);
    this.countWindow(state, entry.labelSource, 1);
    while (state.windowEnd - state.windowStart > this.options.settings.windowSamples) {
      const oldKey = `${keyOf(category)}/${state.windowStart}`;
      const old = this.window.get(oldKey);
      if (old) this.countWindow(state, old.labelSource, -1);
      this.window.delete(oldKey);
      state.windowStart++;
    }
    return seq;
  }

  private relabelWindowEntry(category: string, state: CategoryState, seq: number, labelSource: WindowEntry['labelSource']): void {
    const key = `${keyOf(category)}/${seq}`;
    const entry = this.window.get(key);
    if (!entry || entry.labelSource === labelSource) return;
    this.countWindow(state, entry.labelSource, -1);
    this.countWindow(state, labelSource, 1);
    this.window.put(key, { ...entry, labelSource });
  }

  private countWindow(state: CategoryState, labelSource: WindowEntry['labelSource'], by: number): void {
    if (labelSource === 'CONFIRMED') state.windowConfirmed += by;
    else state.windowCorrected += by;
  }

  /** Wall-clock check: fires age triggers (and triggers whose debounce ran out) without waiting for a sample. */
  private checkAll(now: number): void {
    for (const [key, state] of this.categories.range('', ALL_KEYS_END)) {
      const before = state.lastFiredAt;
      this.evaluate(decodeURIComponent(key), state, now);
      if (state.lastFiredAt !== before) this.categories.put(key, state);
    }
  }

  private evaluate(category: string, state: CategoryState, now: number): void {
    const s = this.options.settings;
    if (state.changes <= state.changesAtLastFire) return;
    if (state.pending && now - state.lastFiredAt < s.debounceMs) return;
    const windowSamples = state.windowConfirmed + state.windowCorrected;
    const liveAccuracy = windowSamples > 0 ? state.windowConfirmed / windowSamples : undefined;
    const ageMs = state.servingSince >= 0 ? Math.max(0, now - state.servingSince) : undefined;
    let reason: TriggerReason | undefined;
    if (liveAccuracy !== undefined && windowSamples >= s.minWindowSamples && liveAccuracy < s.minLiveAccuracy) reason = 'accuracy-drop';
    else if (state.newSamples >= s.minNewSamples) reason = 'sample-count';
    else if (s.maxAgeMs !== null && ageMs !== undefined && ageMs >= s.maxAgeMs && state.newSamples >= s.minNewSamplesForAge) reason = 'age';
    if (reason === undefined) return;

    const details: Record<string, number> = { newSamples: state.newSamples, totalSamples: state.totalSamples, windowSamples };
    if (liveAccuracy !== undefined) details.liveAccuracy = liveAccuracy;
    if (ageMs !== undefined) details.ageMs = ageMs;
    state.firedForVersion++;
    state.pending = true;
    state.lastFiredAt = now;
    state.changesAtLastFire = state.changes;
    const trigger: RetrainTrigger = {
      triggerId: `${category}-${state.servingVersion === '' ? 'none' : state.servingVersion}-${state.firedForVersion}`,
      category,
      reason,
      details,
      servingVersion: state.servingVersion,
      snapshot: { topic: this.options.samplesTopic, offsets: this.snapshotOffsets(), sampleCount: state.totalSamples },
      createdAt: now,
    };
    this.ctx.metrics.count(`trigger-${reason}`);
    this.ctx.logger.info({ category, triggerId: trigger.triggerId, reason, ...details }, 'retrain trigger fired');
    this.ctx.forward({ key: category, value: trigger, timestamp: now, headers: {} });
  }

  /** Next offset per samples partition after the last sample this task has counted. */
  private snapshotOffsets(): Array<{ partition: number; offset: number }> {
    let partitions = this.options.samplesPartitions?.() ?? 0;
    for (const [key] of this.positions.range('', ALL_KEYS_END)) partitions = Math.max(partitions, Number(key) + 1);
    const offsets: Array<{ partition: number; offset: number }> = [];
    for (let p = 0; p < partitions; p++) offsets.push({ partition: p, offset: this.positions.get(`${p}`) ?? 0 });
    return offsets;
  }
}
