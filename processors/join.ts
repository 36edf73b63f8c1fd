import type { Processor, ProcessorContext } from '../engine/processor.js';
import type { StreamRecord } from '../engine/record.js';
import type { JoinSpec } from '../engine/topology.js';
import type { KeyValueStore } from '../engine/state/kv-store.js';
import type {
  Feedback,
  LabeledSample,
  LateRecord,
  OrphanFeedback,
  Prediction,
  ReviewRecord,
  SampleOrigin,
  UnmatchedPrediction,
} from '../schemas/types.js';
import { bufferedFeedbackCodec, heldPredictionCodec, matchedFlagCodec, numberCodec, type BufferedFeedback, type HeldPrediction } from './join-state.js';
import { buildSample, labelFeedback } from './labeling.js';
import { ExpiryIndex } from './join-expiry.js';

export interface JoinOptions {
  beforeMs: number;
  afterMs: number;
  graceMs: number;
  duplicates: 'latest' | 'first';
  onTimeout: 'unmatched' | 'confirm';
  /** Classes per category, for `correct = false` without a label; default: the prediction's score keys. */
  classes: Record<string, readonly string[]>;
  origin: SampleOrigin;
  /** Advance stream time with the wall clock while no input arrives. */
  idleAdvance: boolean;
  punctuateIntervalMs: number;
  /**
   * An input record whose event time is more than this ahead of the wall clock is a dead letter
   * (`future-timestamp`), checked where the input is read (InputExtractor); null: no bound.
   */
  maxFutureMs: number | null;
}

export const DEFAULT_JOIN_OPTIONS: JoinOptions = {
  beforeMs: 60_000,
  afterMs: 24 * 3600_000,
  graceMs: 3600_000,
  duplicates: 'latest',
  onTimeout: 'unmatched',
  classes: {},
  origin: 'online',
  idleAdvance: true,
  punctuateIntervalMs: 1000,
  maxFutureMs: 3600_000,
};

/** Named outputs of the join node. */
export const JoinOutput = {
  samples: 'samples',
  unmatched: 'unmatched',
  orphans: 'orphans',
  late: 'late',
  review: 'review',
} as const;

export type JoinResult = LabeledSample | UnmatchedPrediction | OrphanFeedback | LateRecord | ReviewRecord;

export function joinStoreNames(name: string): { predictions: string; feedback: string; expiry: string; meta: string } {
  return { predictions: `${name}-predictions`, feedback: `${name}-feedback`, expiry: `${name}-expiry`, meta: `${name}-meta` };
}

/** The prediction ⋈ feedback join as a DSL node: one processor over four named stores. */
export function predictionFeedbackJoin(name: string, options: JoinOptions): JoinSpec<JoinResult> {
  const stores = joinStoreNames(name);
  return {
    stores: [
      { name: stores.predictions, codec: heldPredictionCodec() },
      { name: stores.feedback, codec: bufferedFeedbackCodec() },
      // Derived from the other two (close times and matched flags): rebuilt after a changelog restore, never changelogged.
      { name: stores.expiry, codec: matchedFlagCodec, readCacheEntries: 0, rangeScans: true, changelog: false },
      { name: stores.meta, codec: numberCodec },
    ],
    supplier: (sides) => new PredictionFeedbackJoin(sides.left, stores, options) as Processor<unknown, JoinResult>,
  };
}

const PREDICTION_KIND = '0';
const FEEDBACK_KIND = '1';
const STREAM_TIME_KEY = 'streamTime';

function expiryKey(closeTime: number, kind: string, requestId: string): string {
  return `${String(closeTime).padStart(16, '0')}|${kind}|${requestId}`;
}

function expiryBound(time: number): string {
  return String(Math.max(0, time)).padStart(16, '0');
}

/** See docs/join-semantics.md: this class implements it step for step. */
export class PredictionFeedbackJoin implements Processor<Prediction | Feedback, JoinResult> {
  private ctx!: ProcessorContext<JoinResult>;
  private predictions!: KeyValueStore<HeldPrediction>;
  private feedback!: KeyValueStore<BufferedFeedback>;
  private expiry!: ExpiryIndex;
  private meta!: KeyValueStore<number>;
  private streamTime = Number.NEGATIVE_INFINITY;
  private nextClose = Number.POSITIVE_INFINITY;
  private sawRecord = false;
  private lastWall: number | undefined;

  constructor(
    private readonly predictionSource: string,
    private readonly storeNames: ReturnType<typeof joinStoreNames>,
    private readonly options: JoinOptions,
  ) {}

  init(ctx: ProcessorContext<JoinResult>): void {
    this.ctx = ctx;
    this.predictions = ctx.store(this.storeNames.predictions);
    this.feedback = ctx.store(this.storeNames.feedback);
    this.meta = ctx.store(this.storeNames.meta);
    this.streamTime = this.meta.get(STREAM_TIME_KEY) ?? Number.NEGATIVE_INFINITY;
    const expiryStore = ctx.store<number>(this.storeNames.expiry);
    if (ctx.stateRestored()) this.rebuildExpiry(expiryStore);
    this.expiry = new ExpiryIndex(expiryStore, () => this.scanStart());
    this.refreshNextClose();
    ctx.schedule(this.options.punctuateIntervalMs, (now) => this.onWallClock(now));
  }

  /** The expiry index from the held predictions and buffered feedback, replacing whatever the local store had. */
  private rebuildExpiry(store: KeyValueStore<number>): void {
    const predictions = this.predictions;
    const feedback = this.feedback;
    store.replaceAll(
      (function* entries(): Iterable<[string, number]> {
        for (const [requestId, held] of predictions.committedEntries()) yield [expiryKey(held.closeTime, PREDICTION_KIND, requestId), held.matched ? 1 : 0];
        for (const [requestId, waiting] of feedback.committedEntries()) {
          for (const item of waiting.items) yield [expiryKey(item.closeTime, FEEDBACK_KIND, requestId), 0];
        }
      })(),
    );
  }

  currentStreamTime(): number {
    return this.streamTime;
  }

  process(record: StreamRecord<Prediction | Feedback>, from: string): void {
    this.sawRecord = true;
    if (from === this.predictionSource) this.onPrediction(record.value as Prediction);
    else this.onFeedback(record.value as Feedback);
    this.advance(record.timestamp);
  }

  prefetch(keys: readonly string[]): void {
    this.predictions.prefetch?.(keys);
    this.feedback.prefetch?.(keys);
  }

  endOfInput(): void {
    this.closeUpTo(Number.MAX_SAFE_INTEGER);
  }

  private onWallClock(now: number): void {
    if (this.options.idleAdvance && !this.sawRecord && this.lastWall !== undefined && Number.isFinite(this.streamTime)) {
      this.advance(this.streamTime + (now - this.lastWall));
    }
    this.sawRecord = false;
    this.lastWall = now;
  }

  private advance(time: number): void {
    if (time <= this.streamTime) return;
    this.streamTime = time;
    this.meta.put(STREAM_TIME_KEY, time);
    if (time >= this.nextClose) this.closeUpTo(time);
  }

  private fits(tp: number, tf: number): boolean {
    return tf >= tp - this.options.beforeMs && tf <= tp + this.options.afterMs;
  }

  private onPrediction(p: Prediction): void {
    this.ctx.metrics.note('prediction', { category: p.category, version: p.modelVersion });
    const closeTime = p.timestamp + this.options.afterMs + this.options.graceMs;
    if (closeTime <= this.streamTime) {
      this.emitLate({ kind: 'PREDICTION', requestId: p.requestId, recordTimestamp: p.timestamp, streamTime: this.streamTime, closeTime, prediction: p, feedback: null });
      return;
    }
    if (this.predictions.get(p.requestId) !== undefined) {
      this.ctx.metrics.count('duplicate-prediction');
      this.ctx.deadLetter({
        reasonCode: 'duplicate-prediction',
        reason: 'a prediction for this request ID is already in the join window; the first one is kept',
        redactedPayload: Buffer.from(JSON.stringify(p)),
      });
      return;
    }
    const held: HeldPrediction = { prediction: p, matched: false, revision: -1, appliedFeedbackTimestamp: -1, closeTime };
    this.addExpiry(closeTime, PREDICTION_KIND, p.requestId);
    const waiting = this.feedback.get(p.requestId);
    if (waiting) {
      this.feedback.delete(p.requestId);
      for (const item of waiting.items) {
        this.expiry.delete(expiryKey(item.closeTime, FEEDBACK_KIND, p.requestId));
        if (this.fits(p.timestamp, item.feedback.timestamp)) this.apply(held, item.feedback);
        else this.emitOrphan(item.feedback, 'outside-window', p.timestamp);
      }
    }
    this.predictions.put(p.requestId, held);
  }

  private onFeedback(f: Feedback): void {
    const held = this.predictions.get(f.requestId);
    this.ctx.metrics.note('feedback', { category: held?.prediction.category ?? null });
    if (held) {
      if (this.fits(held.prediction.timestamp, f.timestamp)) {
        this.apply(held, f);
        this.predictions.put(f.requestId, held);
      } else {
        this.emitOrphan(f, 'outside-window', held.prediction.timestamp);
      }
      return;
    }
    const closeTime = f.timestamp + this.options.beforeMs + this.options.afterMs + this.options.graceMs;
    if (closeTime <= this.streamTime) {
      this.emitLate({ kind: 'FEEDBACK', requestId: f.requestId, recordTimestamp: f.timestamp, streamTime: this.streamTime, closeTime, prediction: null, feedback: f });
      return;
    }
    const waiting = this.feedback.get(f.requestId) ?? { items: [] };
    waiting.items.push({ feedback: f, closeTime });
    this.feedback.put(f.requestId, waiting);
    this.addExpiry(closeTime, FEEDBACK_KIND, f.requestId);
    this.ctx.metrics.count('feedback-buffered');
  }

  private apply(held: HeldPrediction, f: Feedback): void {
    const p = held.prediction;
    const outcome = labelFeedback(p, f, this.options.classes[p.category]);
    if (outcome.kind === 'review') {
      this.ctx.metrics.count('review');
      const review: ReviewRecord = { prediction: p, feedback: f, reason: outcome.reason };
      this.ctx.forward({ key: p.requestId, value: review, timestamp: Math.max(p.timestamp, f.timestamp), headers: {} }, JoinOutput.review);
      return;
    }
    if (held.matched) {
      if (this.options.duplicates === 'first') {
        this.ctx.metrics.count('duplicate-feedback');
        return;
      }
      if (f.timestamp < held.appliedFeedbackTimestamp) {
        this.ctx.metrics.count('superseded-feedback');
        return;
      }
    }
    if (!held.matched) this.expiry.put(expiryKey(held.closeTime, PREDICTION_KIND, p.requestId), 1);
    held.matched = true;
    held.revision += 1;
    held.appliedFeedbackTimestamp = f.timestamp;
    this.ctx.metrics.count(held.revision === 0 ? 'matched' : 'revised');
    this.ctx.metrics.observe('label_delay_seconds', Math.max(0, f.timestamp - p.timestamp) / 1000);
    this.ctx.metrics.observe('feedback_to_sample_seconds', Math.max(0, Date.now() - f.timestamp) / 1000);
    const sample = buildSample(p, outcome, f.timestamp, held.revision, this.options.origin);
    this.noteSample(sample);
    this.ctx.forward({ key: p.requestId, value: sample, timestamp: Math.max(p.timestamp, f.timestamp), headers: {} }, JoinOutput.samples);
  }

  /** For live accuracy (CONFIRMED share per category and model version): a revision replaces the request's earlier label source. */
  private noteSample(sample: LabeledSample): void {
    this.ctx.metrics.note('sample', { requestId: sample.requestId, category: sample.category, version: sample.modelVersion, labelSource: sample.labelSource, revision: sample.revision });
  }

  private addExpiry(closeTime: number, kind: string, requestId: string): void {
    this.expiry.put(expiryKey(closeTime, kind, requestId), 0);
    if (closeTime < this.nextClose) this.nextClose = closeTime;
  }

  /** Everything closing at or before stream time is gone, so scans start after it (skipping RocksDB tombstones). */
  private scanStart(): string {
    return Number.isFinite(this.streamTime) ? expiryBound(this.streamTime + 1) : '';
  }

  private refreshNextClose(): void {
    const first = this.expiry.first();
    this.nextClose = first ? Number(first[0].slice(0, 16)) : Number.POSITIVE_INFINITY;
  }

  /**
   * Closes, in key order (close time, predictions first, request ID), everything closing at or
   * before `time`.
   */
  private closeUpTo(time: number): void {
    for (let entry = this.expiry.first(); entry !== undefined; entry = this.expiry.first()) {
      const [key, matched] = entry;
      const closeTime = Number(key.slice(0, 16));
      if (closeTime > time) {
        this.nextClose = closeTime;
        return;
      }
      this.expiry.removeFirst();
      if (key.charAt(17) === PREDICTION_KIND) {
        // A matched prediction just leaves the window: no need to read (and decode) it.
        if (matched === 1) this.predictions.delete(key.slice(19));
        else this.closePrediction(key.slice(19), closeTime);
      } else {
        this.closeFeedback(key.slice(19), closeTime);
      }
    }
    this.nextClose = Number.POSITIVE_INFINITY;
  }

  private closePrediction(requestId: string, closeTime: number): void {
    const held = this.predictions.get(requestId);
    if (!held || held.closeTime !== closeTime) return;
    this.predictions.delete(requestId);
    if (held.matched) return;
    const p = held.prediction;
    if (this.options.onTimeout === 'confirm') {
      this.ctx.metrics.count('default-sample');
      const sample = buildSample(p, { label: p.predictedLabel, labelSource: 'DEFAULT' }, null, 0, this.options.origin);
      this.noteSample(sample);
      this.ctx.forward({ key: requestId, value: sample, timestamp: p.timestamp, headers: {} }, JoinOutput.samples);
      return;
    }
    this.ctx.metrics.count('unmatched');
    const unmatched: UnmatchedPrediction = { prediction: p, reason: 'no-feedback', closedAt: closeTime };
    this.ctx.forward({ key: requestId, value: unmatched, timestamp: p.timestamp, headers: {} }, JoinOutput.unmatched);
  }

  private closeFeedback(requestId: string, closeTime: number): void {
    const waiting = this.feedback.get(requestId);
    if (!waiting) return;
    const remaining = waiting.items.filter((item) => item.closeTime !== closeTime);
    for (const item of waiting.items) if (item.closeTime === closeTime) this.emitOrphan(item.feedback, 'no-prediction', null, closeTime);
    if (remaining.length === 0) this.feedback.delete(requestId);
    else this.feedback.put(requestId, { items: remaining });
  }

  private closedAt(): number {
    return Number.isFinite(this.streamTime) ? this.streamTime : 0;
  }

  /** `closedAt`: the window's close time for closed feedback, the current stream time for an outside-window decision. */
  private emitOrphan(f: Feedback, reason: 'no-prediction' | 'outside-window', predictionTimestamp: number | null, closedAt = this.closedAt()): void {
    this.ctx.metrics.count(reason === 'no-prediction' ? 'orphan-no-prediction' : 'orphan-outside-window');
    const orphan: OrphanFeedback = { feedback: f, reason, predictionTimestamp, closedAt };
    this.ctx.forward({ key: f.requestId, value: orphan, timestamp: f.timestamp, headers: {} }, JoinOutput.orphans);
  }

  private emitLate(late: LateRecord): void {
    this.ctx.metrics.count(late.kind === 'PREDICTION' ? 'late-prediction' : 'late-feedback');
    const record: LateRecord = { ...late, streamTime: this.closedAt() };
    this.ctx.forward({ key: late.requestId, value: record, timestamp: late.recordTimestamp, headers: {} }, JoinOutput.late);
  }
}
