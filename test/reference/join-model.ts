/**
 * Independent reference model of the prediction ⋈ feedback join (docs/join-semantics.md).
 *
 * Deliberately naive: plain Maps and arrays, a full scan on every closing pass, no imports from
 * the engine. It exists so a randomized differential test can compare the real join with it
 * record for record; clarity beats speed here.
 */

export interface RefPrediction {
  requestId: string;
  category: string;
  timestamp: number;
  predictedLabel: string;
  scores: Record<string, number>;
  modelVersion: string;
  features: Record<string, number>;
  attributes: Record<string, string>;
}

export interface RefFeedback {
  requestId: string;
  timestamp: number;
  actualLabel: string | null;
  correct: boolean | null;
}

export type RefInput =
  | { kind: 'prediction'; value: RefPrediction }
  | { kind: 'feedback'; value: RefFeedback };

export interface RefJoinConfig {
  beforeMs: number;
  afterMs: number;
  graceMs: number;
  duplicates: 'latest' | 'first';
  onTimeout: 'unmatched' | 'confirm';
  /** `categories.<name>.classes`; a category not listed uses the keys of the prediction's scores. */
  classes?: Record<string, string[]>;
}

/** The defaults of the `join.*` table in docs/join-semantics.md. */
export const REF_DEFAULT_JOIN_CONFIG: Readonly<RefJoinConfig> = Object.freeze({
  beforeMs: 60_000,
  afterMs: 86_400_000,
  graceMs: 3_600_000,
  duplicates: 'latest',
  onTimeout: 'unmatched',
});

export type RefLabelSource = 'CONFIRMED' | 'CORRECTED' | 'DEFAULT';

export interface RefSampleOutput {
  topic: 'samples';
  requestId: string;
  category: string;
  label: string;
  labelSource: RefLabelSource;
  predictedLabel: string;
  modelVersion: string;
  requestTimestamp: number;
  feedbackTimestamp: number | null;
  revision: number;
  features: Record<string, number>;
  attributes: Record<string, string>;
}

export interface RefUnmatchedOutput {
  topic: 'unmatched';
  requestId: string;
  /** The prediction's close time `tp + afterMs + graceMs`. */
  closedAt: number;
}

export interface RefOrphanOutput {
  topic: 'orphans';
  requestId: string;
  reason: 'outside-window' | 'no-prediction';
  feedbackTimestamp: number;
  /** `no-prediction`: the feedback's close time; `outside-window`: null (rejected on the spot, never closed). */
  closedAt: number | null;
}

export interface RefLateOutput {
  topic: 'late';
  kind: 'PREDICTION' | 'FEEDBACK';
  requestId: string;
  recordTimestamp: number;
  /** Stream time before the late record (the value the late check used). */
  streamTime: number;
  closeTime: number;
}

export interface RefReviewOutput {
  topic: 'review';
  requestId: string;
  reason: 'incorrect-without-label' | 'unknown-label';
}

export interface RefDeadLetterOutput {
  topic: 'dead-letters';
  requestId: string;
  reasonCode: 'duplicate-prediction' | 'invalid-feedback';
}

export type RefOutput =
  | RefSampleOutput
  | RefUnmatchedOutput
  | RefOrphanOutput
  | RefLateOutput
  | RefReviewOutput
  | RefDeadLetterOutput;

export type RefTopic = RefOutput['topic'];
export type RefCounterName = 'duplicate-feedback' | 'superseded-feedback';

export type RefLabelResult =
  | { kind: 'label'; label: string; labelSource: 'CONFIRMED' | 'CORRECTED' }
  | { kind: 'needs-review'; reason: 'incorrect-without-label' | 'unknown-label' };

/** The labeling table of the doc. `classes` are the category's configured classes, if any. */
export function refLabel(
  prediction: RefPrediction,
  feedback: RefFeedback,
  configuredClasses?: string[],
): RefLabelResult {
  if (feedback.actualLabel !== null) {
    if (configuredClasses && configuredClasses.length > 0 && !configuredClasses.includes(feedback.actualLabel)) {
      return { kind: 'needs-review', reason: 'unknown-label' };
    }
    if (feedback.actualLabel === prediction.predictedLabel) {
      return { kind: 'label', label: prediction.predictedLabel, labelSource: 'CONFIRMED' };
    }
    return { kind: 'label', label: feedback.actualLabel, labelSource: 'CORRECTED' };
  }
  if (feedback.correct === true) {
    return { kind: 'label', label: prediction.predictedLabel, labelSource: 'CONFIRMED' };
  }
  const classes = [...new Set(configuredClasses ?? Object.keys(prediction.scores))];
  if (classes.length === 2 && classes.includes(prediction.predictedLabel)) {
    const other = classes.find((c) => c !== prediction.predictedLabel);
    if (other !== undefined) return { kind: 'label', label: other, labelSource: 'CORRECTED' };
  }
  return { kind: 'needs-review', reason: 'incorrect-without-label' };
}

interface HeldPrediction {
  prediction: RefPrediction;
  closeTime: number;
  matched: boolean;
  revision: number;
  appliedFeedbackTimestamp: number | null;
}

interface BufferedFeedback {
  feedback: RefFeedback;
  closeTime: number;
}

function isValidFeedback(feedback: RefFeedback): boolean {
  return feedback.actualLabel !== null || feedback.correct !== null;
}

function checkConfig(config: RefJoinConfig): void {
  for (const key of ['beforeMs', 'afterMs', 'graceMs'] as const) {
    const value = config[key];
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`reference join: ${key} must be a finite number >= 0, got ${value}`);
    }
  }
}

function checkTimestamp(input: RefInput): void {
  if (!Number.isFinite(input.value.timestamp)) {
    throw new RangeError(
      `reference join: ${input.kind} ${input.value.requestId} has a non-finite timestamp ${input.value.timestamp}`,
    );
  }
}

/** Step-by-step reference join. `runReference` is the usual entry point. */
export class ReferenceJoin {
  private readonly config: RefJoinConfig;
  private currentStreamTime = Number.NEGATIVE_INFINITY;
  private readonly held = new Map<string, HeldPrediction>();
  /** requestId → feedback buffered for it, in arrival order. */
  private readonly buffered = new Map<string, BufferedFeedback[]>();
  private readonly counterValues: Record<RefCounterName, number> = {
    'duplicate-feedback': 0,
    'superseded-feedback': 0,
  };

  constructor(config: RefJoinConfig) {
    checkConfig(config);
    this.config = config;
  }

  get streamTime(): number {
    return this.currentStreamTime;
  }

  counters(): Record<string, number> {
    return { ...this.counterValues };
  }

  /** The four steps of the doc for one record. Returns what the record caused, in emission order. */
  push(input: RefInput): RefOutput[] {
    checkTimestamp(input);
    const out: RefOutput[] = [];
    if (input.kind === 'feedback' && !isValidFeedback(input.value)) {
      // Rejected by validation before the join: it does not touch stream time.
      out.push({ topic: 'dead-letters', requestId: input.value.requestId, reasonCode: 'invalid-feedback' });
      return out;
    }
    if (input.kind === 'prediction') this.processPrediction(input.value, out);
    else this.processFeedback(input.value, out);
    this.currentStreamTime = Math.max(this.currentStreamTime, input.value.timestamp);
    this.closeDue(out);
    return out;
  }

  /** A wall-clock punctuation: stream time moves forward (never back), then step 4 runs. */
  advanceStreamTime(to: number): RefOutput[] {
    const out: RefOutput[] = [];
    this.currentStreamTime = Math.max(this.currentStreamTime, to);
    this.closeDue(out);
    return out;
  }

  /** End of a bounded input: stream time goes to +infinity and everything held is closed. */
  flush(): RefOutput[] {
    return this.advanceStreamTime(Number.POSITIVE_INFINITY);
  }

  private predictionCloseTime(p: RefPrediction): number {
    return p.timestamp + this.config.afterMs + this.config.graceMs;
  }

  private feedbackCloseTime(f: RefFeedback): number {
    return f.timestamp + this.config.beforeMs + this.config.afterMs + this.config.graceMs;
  }

  private fits(p: RefPrediction, f: RefFeedback): boolean {
    return p.timestamp - this.config.beforeMs <= f.timestamp && f.timestamp <= p.timestamp + this.config.afterMs;
  }

  private processPrediction(p: RefPrediction, out: RefOutput[]): void {
    const closeTime = this.predictionCloseTime(p);
    if (closeTime <= this.currentStreamTime) {
      out.push({
        topic: 'late',
        kind: 'PREDICTION',
        requestId: p.requestId,
        recordTimestamp: p.timestamp,
        streamTime: this.currentStreamTime,
        closeTime,
      });
      return;
    }
    if (this.held.has(p.requestId)) {
      out.push({ topic: 'dead-letters', requestId: p.requestId, reasonCode: 'duplicate-prediction' });
      return;
    }
    const state: HeldPrediction = {
      prediction: p,
      closeTime,
      matched: false,
      revision: 0,
      appliedFeedbackTimestamp: null,
    };
    this.held.set(p.requestId, state);
    const waiting = this.buffered.get(p.requestId) ?? [];
    this.buffered.delete(p.requestId);
    for (const { feedback } of waiting) {
      if (this.fits(p, feedback)) this.applyFeedback(state, feedback, out);
      else out.push(this.outsideWindowOrphan(feedback));
    }
  }

  private processFeedback(f: RefFeedback, out: RefOutput[]): void {
    const state = this.held.get(f.requestId);
    if (state !== undefined) {
      if (this.fits(state.prediction, f)) this.applyFeedback(state, f, out);
      else out.push(this.outsideWindowOrphan(f));
      return;
    }
    const closeTime = this.feedbackCloseTime(f);
    if (closeTime <= this.currentStreamTime) {
      out.push({
        topic: 'late',
        kind: 'FEEDBACK',
        requestId: f.requestId,
        recordTimestamp: f.timestamp,
        streamTime: this.currentStreamTime,
        closeTime,
      });
      return;
    }
    const list = this.buffered.get(f.requestId) ?? [];
    list.push({ feedback: f, closeTime });
    this.buffered.set(f.requestId, list);
  }

  private outsideWindowOrphan(f: RefFeedback): RefOrphanOutput {
    return {
      topic: 'orphans',
      requestId: f.requestId,
      reason: 'outside-window',
      feedbackTimestamp: f.timestamp,
      closedAt: null,
    };
  }

  private applyFeedback(state: HeldPrediction, f: RefFeedback, out: RefOutput[]): void {
    const p = state.prediction;
    const result = refLabel(p, f, this.config.classes?.[p.category]);
    if (result.kind === 'needs-review') {
      out.push({ topic: 'review', requestId: p.requestId, reason: result.reason });
      return;
    }
    if (!state.matched) {
      state.matched = true;
      state.revision = 0;
    } else if (this.config.duplicates === 'first') {
      this.counterValues['duplicate-feedback'] += 1;
      return;
    } else if (state.appliedFeedbackTimestamp !== null && f.timestamp < state.appliedFeedbackTimestamp) {
      this.counterValues['superseded-feedback'] += 1;
      return;
    } else {
      state.revision += 1;
    }
    state.appliedFeedbackTimestamp = f.timestamp;
    out.push(this.sample(p, result.label, result.labelSource, f.timestamp, state.revision));
  }

  private sample(
    p: RefPrediction,
    label: string,
    labelSource: RefLabelSource,
    feedbackTimestamp: number | null,
    revision: number,
  ): RefSampleOutput {
    return {
      topic: 'samples',
      requestId: p.requestId,
      category: p.category,
      label,
      labelSource,
      predictedLabel: p.predictedLabel,
      modelVersion: p.modelVersion,
      requestTimestamp: p.timestamp,
      feedbackTimestamp,
      revision,
      features: { ...p.features },
      attributes: { ...p.attributes },
    };
  }

  /** Step 4: close everything whose close time is <= stream time, in the doc's order. */
  private closeDue(out: RefOutput[]): void {
    type Due =
      | { kind: 'prediction'; closeTime: number; requestId: string; state: HeldPrediction }
      | { kind: 'feedback'; closeTime: number; requestId: string; entry: BufferedFeedback; arrival: number };
    const due: Due[] = [];
    for (const [requestId, state] of this.held) {
      if (state.closeTime <= this.currentStreamTime) {
        due.push({ kind: 'prediction', closeTime: state.closeTime, requestId, state });
      }
    }
    for (const [requestId, list] of this.buffered) {
      list.forEach((entry, arrival) => {
        if (entry.closeTime <= this.currentStreamTime) {
          due.push({ kind: 'feedback', closeTime: entry.closeTime, requestId, entry, arrival });
        }
      });
    }
    const kindRank = (d: Due): number => (d.kind === 'prediction' ? 0 : 1);
    due.sort((a, b) => {
      if (a.closeTime !== b.closeTime) return a.closeTime - b.closeTime;
      if (kindRank(a) !== kindRank(b)) return kindRank(a) - kindRank(b);
      if (a.requestId !== b.requestId) return a.requestId < b.requestId ? -1 : 1;
      const arrivalA = a.kind === 'feedback' ? a.arrival : 0;
      const arrivalB = b.kind === 'feedback' ? b.arrival : 0;
      return arrivalA - arrivalB;
    });

    for (const item of due) {
      if (item.kind === 'prediction') {
        this.held.delete(item.requestId);
        this.closePrediction(item.state, out);
      } else {
        out.push({
          topic: 'orphans',
          requestId: item.requestId,
          reason: 'no-prediction',
          feedbackTimestamp: item.entry.feedback.timestamp,
          closedAt: item.closeTime,
        });
      }
    }
    for (const [requestId, list] of this.buffered) {
      const open = list.filter((entry) => entry.closeTime > this.currentStreamTime);
      if (open.length === 0) this.buffered.delete(requestId);
      else this.buffered.set(requestId, open);
    }
  }

  private closePrediction(state: HeldPrediction, out: RefOutput[]): void {
    if (state.matched) return;
    const p = state.prediction;
    if (this.config.onTimeout === 'unmatched') {
      out.push({ topic: 'unmatched', requestId: p.requestId, closedAt: state.closeTime });
    } else {
      out.push(this.sample(p, p.predictedLabel, 'DEFAULT', null, 0));
    }
  }
}

/**
 * Runs the reference join over `inputs` in the given arrival order. `endOfInput: 'flush'` (what a
 * bounded replay does) closes everything still held at the end; the default `'none'` leaves it held.
 */
export function runReference(
  inputs: RefInput[],
  config: RefJoinConfig,
  options: { endOfInput?: 'flush' | 'none' } = {},
): { outputs: RefOutput[]; counters: Record<string, number> } {
  const join = new ReferenceJoin(config);
  const outputs: RefOutput[] = [];
  const collect = (emitted: RefOutput[]): void => {
    for (const output of emitted) outputs.push(output);
  };
  for (const input of inputs) collect(join.push(input));
  if ((options.endOfInput ?? 'none') === 'flush') collect(join.flush());
  return { outputs, counters: join.counters() };
}
