/**
 * The retrain trigger (docs/retraining.md).
 *
 * Samples are keyed by requestId, so one category's samples are spread over every partition. Like a
 * Kafka Streams `groupBy`, two small re-keying processors turn samples and model versions into
 * `CategoryEvent`s keyed by category on an internal repartition topic; `RetrainTriggerProcessor`
 * then sees every event of a category in one task and keeps its counters in stores.
 */
import { errorMessage } from '../engine/errors.js';
import type { Processor, ProcessorContext } from '../engine/processor.js';
import type { StreamRecord } from '../engine/record.js';
import type { KeyValueStore } from '../engine/state/kv-store.js';
import type { RetrainTrigger } from '../schemas/types.js';
import { parseCategoryEvent, type CategoryEvent } from './retrain-trigger-events.js';
import { holdoutPosition } from '../models/holdout.js';
import { naturalCompare } from '../models/training-set.js';
import { buildDriftProfile, countLive, featureDrift, type DriftProfile } from './feature-drift.js';
import { firingReason, type DriftReading, type TriggerSettings } from './retrain-trigger-rules.js';
import { ALL_KEYS_END, freshState, keyOf, MAX_KNOWN_VERSIONS, type CategoryState, type SeenEntry, type triggerStoreNames, type WindowEntry } from './retrain-trigger-state.js';

export { categoryEventSerializer, decodeLoggedValue, ModelRekeyProcessor, parseCategoryEvent, SampleRekeyProcessor, type CategoryEvent } from './retrain-trigger-events.js';
export type { DriftReading, TriggerReason, TriggerSettings } from './retrain-trigger-rules.js';
export { triggerStoreNames, triggerStores, type CategoryState } from './retrain-trigger-state.js';

/** A hash position in [0, 1) as 8 hex digits, so store keys sort as the positions do. */
function positionKey(position: number): string {
  return Math.floor(position * 2 ** 32).toString(16).padStart(8, '0');
}

export interface RetrainTriggerOptions {
  settings: TriggerSettings;
  /** A category's rule settings (its `categories.<name>.trigger` overrides); default: `settings`. */
  settingsFor?: (category: string) => TriggerSettings;
  samplesTopic: string;
  /** Partition count of the samples topic, so every partition is in the snapshot. */
  samplesPartitions?: () => number;
  /** Wall clock (ms); the runtime's clock in tests. */
  now: () => number;
}

/** CategoryEvent (key category) → RetrainTrigger (key category). See docs/retraining.md for the rules. */
export class RetrainTriggerProcessor implements Processor<Buffer | null, RetrainTrigger> {
  private ctx!: ProcessorContext<RetrainTrigger>;
  private categories!: KeyValueStore<CategoryState>;
  private seen!: KeyValueStore<SeenEntry>;
  private window!: KeyValueStore<WindowEntry>;
  private positions!: KeyValueStore<number>;
  private reference!: KeyValueStore<Record<string, number>>;
  private profiles!: KeyValueStore<DriftProfile>;

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
    this.reference = ctx.store(this.storeNames.reference);
    this.profiles = ctx.store(this.storeNames.profiles);
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
    const state = { ...freshState(), ...this.categories.get(keyOf(category)) };
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
    // already serving (learned from its samples): its age runs from then
    if (event.version === state.servingVersion) return;
    // a version published before the app ran starts serving when the app learns of it, not at `models publish`
    this.adoptVersion(category, state, event.version, Math.max(event.createdAt, now));
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
      if (event.features !== undefined) this.observeFeatures(category, state, event.requestId, event.features);
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

  /** A new request's features: counted against the serving version's profile, and offered to the reference sample. */
  private observeFeatures(category: string, state: CategoryState, requestId: string, features: Record<string, number>): void {
    const profile = this.profiles.get(keyOf(category));
    if (profile !== undefined && profile.version === state.servingVersion) {
      countLive(profile, features);
      this.profiles.put(keyOf(category), profile);
    }
    // A bottom-k sample by request-ID hash: uniform over every request seen, the same whatever the order.
    const position = holdoutPosition(requestId);
    if (position >= state.referenceThreshold) return;
    this.reference.put(`${keyOf(category)}/${positionKey(position)}/${encodeURIComponent(requestId)}`, features);
    state.referenceSize++;
    const limit = 2 * this.settingsOf(category).driftReferenceSamples;
    while (state.referenceSize > limit) {
      state.referenceThreshold /= 2;
      for (const [key] of this.reference.range(`${keyOf(category)}/${positionKey(state.referenceThreshold)}`, `${keyOf(category)}/~`)) {
        this.reference.delete(key);
        state.referenceSize--;
      }
    }
  }

  /** The new serving version's drift reference: the reference sample as it stands (the samples before it, which it was trained on). */
  private freezeDriftProfile(category: string, version: string): void {
    const s = this.settingsOf(category);
    const rows: Array<Record<string, number>> = [];
    for (const [, features] of this.reference.range(`${keyOf(category)}/`, `${keyOf(category)}/~`)) rows.push(features);
    // a reference as large as the live count the rule needs: with n samples on each side, noise alone gives a PSI of about (bins - 1) × 2 / n
    if (s.maxFeaturePsi === null || rows.length < s.minDriftSamples) {
      this.profiles.delete(keyOf(category));
      return;
    }
    this.profiles.put(keyOf(category), buildDriftProfile(version, rows, s.driftBins, naturalCompare));
  }

  private driftReading(category: string, state: CategoryState): DriftReading | undefined {
    const profile = this.profiles.get(keyOf(category));
    if (profile === undefined || profile.version !== state.servingVersion) return undefined;
    return { referenceSamples: profile.referenceSamples, liveSamples: profile.liveSamples, features: featureDrift(profile) };
  }

  /** A new serving version: counters, window and the pending trigger start over. */
  private adoptVersion(category: string, state: CategoryState, version: string, since: number): void {
    this.freezeDriftProfile(category, version);
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
    while (state.windowEnd - state.windowStart > this.settingsOf(category).windowSamples) {
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
    const s = this.settingsOf(category);
    if (state.changes <= state.changesAtLastFire) return;
    if (state.pending && now - state.lastFiredAt < s.debounceMs) return;
    const fired = firingReason(state, s, now, s.maxFeaturePsi === null ? undefined : this.driftReading(category, state));
    if (fired === undefined) return;
    const { reason, details, driftedFeatures } = fired;

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
      driftedFeatures,
    };
    this.ctx.metrics.count(`trigger-${reason}`);
    this.ctx.logger.info({ category, triggerId: trigger.triggerId, reason, ...details, ...(driftedFeatures.length > 0 ? { driftedFeatures } : {}) }, 'retrain trigger fired');
    this.ctx.forward({ key: category, value: trigger, timestamp: now, headers: {} });
  }

  private settingsOf(category: string): TriggerSettings {
    return this.options.settingsFor?.(category) ?? this.options.settings;
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
