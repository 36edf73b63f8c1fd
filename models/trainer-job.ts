/**
 * The built-in trainer (docs/retraining.md): consumes `retrain-triggers`, trains a logistic regression
 * on the category's samples up to the trigger's snapshot, and promotes the candidate through the
 * model ledger only when it does at least as well as the serving version on the same holdout.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SampleloopConfig } from '../config/config.js';
import { DecodeError, errorMessage, SampleloopError } from '../engine/errors.js';
import { directAccess } from '../access/embedded.js';
import type { EmbeddedLog, GroupOffset } from '../engine/embedded/log.js';
import { silentLogger, type Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';
import type { ProcessorMetrics } from '../engine/processor.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { decodeLoggedValue } from '../processors/retrain-trigger.js';
import type { WriterSchemaLookup } from '../schemas/codec.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import type { LabeledSample, ModelVersion, RetrainTrigger, TrainingSnapshot } from '../schemas/types.js';
import { inHoldout } from './holdout.js';
import { ledgerClient } from './ledger.js';
import type { LogisticModel } from './logistic-regression.js';
import { trainInWorker } from './train-async.js';
import { ModelError } from './model-error.js';
import { exportOnnx, modelSha256 } from './onnx-export.js';
import { loadOnnxModel } from './onnx-runtime.js';

/** `trainer` field of the versions this job publishes. */
export const TRAINER_ID = 'sampleloop-logreg/1';

/** A version as handed to the ledger, which adds sequence and the hash chain. */
export type NewModelVersion = Omit<ModelVersion, 'recordHash' | 'prevRecordHash' | 'sequence'>;

/** What the trainer needs from the model ledger (models/ledger.ts). */
export interface LedgerPort {
  /** The version serving `category` now: the newest in the ledger, or undefined. */
  latest(category: string): Promise<ModelVersion | undefined>;
  /** Labels already used in the category, so the candidate's label does not collide with one published by hand. */
  versions?(category: string): Promise<string[]>;
  publishVersion(version: NewModelVersion): Promise<unknown>;
}

export interface TrainerSettings {
  holdoutFraction: number;
  minTrainSamples: number;
  minHoldoutSamples: number;
  /** Promote when candidate accuracy >= serving accuracy + minImprovement. */
  minImprovement: number;
  l2: number;
  maxIterations: number;
  tolerance: number;
  pollIntervalMs: number;
  progressEveryIterations: number;
}

/**
 * What the job needs from a log: read samples and triggers, commit a decision with the trigger's
 * offset. `embeddedTrainerLog` (atomic commit) and `kafkaTrainerLog` (models/trainer-kafka.ts,
 * at-least-once: a re-handled trigger is detected in the ledger) implement it.
 */
export interface TrainerLog {
  /** Partitions of `topic`; 0 when it does not exist. */
  partitions(topic: string): Promise<number>;
  /** Up to `max` records of one partition from offset `from` on, in offset order (fewer at the end). */
  read(topic: string, partition: number, from: number, max: number): Promise<SourceRecord[]>;
  committedOffset(group: string, topic: string, partition: number): Promise<number | undefined>;
  /** Writes `outputs` and moves the group's offsets. */
  commit(outputs: readonly OutputRecord[], offsets: readonly GroupOffset[]): Promise<void>;
  /** Resolves when records may have been appended, or after `timeoutMs`. */
  waitForAppend(timeoutMs: number): Promise<void>;
  /**
   * The partitions of `topic` this job instance handles, when instances share them (Kafka: the
   * partitions the trainer's consumer group assigned to it); without it, every partition.
   */
  ownedPartitions?(topic: string): Promise<number[]>;
}

/** The embedded log as a TrainerLog: reads are local, a commit is one atomic write. */
export function embeddedTrainerLog(log: EmbeddedLog, ensureTopics: readonly string[] = []): TrainerLog {
  for (const topic of ensureTopics) log.ensureTopic(topic);
  return {
    partitions: (topic) => Promise.resolve(log.topic(topic)?.partitions ?? 0),
    read: (topic, partition, from, max) => Promise.resolve(log.read(topic, partition, from, max)),
    committedOffset: (group, topic, partition) => Promise.resolve(log.committedOffset(group, topic, partition)),
    commit: (outputs, offsets) => {
      log.commit(outputs, [], offsets);
      return Promise.resolve();
    },
    waitForAppend: (timeoutMs) => log.waitForAppend(timeoutMs),
  };
}

export type DecisionKind = 'promoted' | 'rejected' | 'skipped' | 'failed';

export interface TrainerDecision {
  triggerId: string;
  category: string;
  decision: DecisionKind;
  /** Machine code: candidate-not-worse, candidate-worse, no-serving-version, too-few-samples, too-few-classes, already-trained, superseded, error. */
  reason: string;
  message: string;
  candidateVersion: string;
  candidateSha256: string;
  candidateAccuracy: number | null;
  servingVersion: string;
  servingAccuracy: number | null;
  holdoutSize: number;
  trainSize: number;
  /** Distinct request IDs of the category in the snapshot. */
  sampleCount: number;
  /** Samples left out: label outside the classes or a feature missing. */
  skippedSamples: number;
  iterations: number;
  decidedAt: number;
}

export type TrainerProgress =
  | { phase: 'reading'; triggerId: string; category: string }
  | { phase: 'training'; triggerId: string; category: string; iteration: number; loss: number; maxIterations: number }
  | { phase: 'evaluating'; triggerId: string; category: string }
  | { phase: 'decided'; triggerId: string; category: string; decision: TrainerDecision };

// ---------------------------------------------------------------- reading the snapshot

/** The category's samples in the snapshot, one per request ID (highest revision wins), sorted by request ID. */
export async function readSnapshotSamples(
  log: Pick<TrainerLog, 'read'>,
  lookup: WriterSchemaLookup,
  snapshot: Pick<TrainingSnapshot, 'topic' | 'offsets'>,
  category: string,
  onUndecodable: (partition: number, offset: number, err: unknown) => void = () => {},
): Promise<LabeledSample[]> {
  const latest = new Map<string, LabeledSample>();
  const PAGE = 5_000;
  for (const { partition, offset: end } of snapshot.offsets) {
    let from = 0;
    while (from < end) {
      const records = await log.read(snapshot.topic, partition, from, PAGE);
      if (records.length === 0) break;
      for (const r of records) {
        if (r.offset >= end) break;
        if (r.value === null) continue;
        let sample: LabeledSample;
        try {
          sample = asSample(decodeLoggedValue(r.value, lookup));
        } catch (err) {
          onUndecodable(partition, r.offset, err);
          continue;
        }
        if (sample.category !== category) continue;
        const previous = latest.get(sample.requestId);
        if (previous === undefined || sample.revision >= previous.revision) latest.set(sample.requestId, sample);
      }
      from = (records[records.length - 1]?.offset ?? end) + 1;
    }
  }
  return [...latest.values()].sort((a, b) => compareCodeUnits(a.requestId, b.requestId));
}

function asSample(value: unknown): LabeledSample {
  const v = value as Partial<LabeledSample> | null;
  if (
    typeof v?.requestId !== 'string' ||
    typeof v.category !== 'string' ||
    typeof v.label !== 'string' ||
    typeof v.revision !== 'number' ||
    typeof v.features !== 'object' ||
    v.features === null
  ) {
    throw new DecodeError('not a LabeledSample (requestId, category, label, revision and features are required)');
  }
  return v as LabeledSample;
}

// ---------------------------------------------------------------- building the data set

export interface TrainingRow {
  requestId: string;
  /** The sample's feature map (the serving model reads it with its own feature order). */
  features: Record<string, number>;
  /** In the order of the data set's featureNames. */
  vector: number[];
  label: string;
}

export interface TrainingSet {
  featureNames: string[];
  classes: string[];
  rows: TrainingRow[];
  skipped: number;
}

/**
 * Feature names: the serving version's (`servingFeatureNames`, when it names any), so a promoted
 * version accepts exactly the requests the serving one does; else every feature key that more than
 * half of the samples carry, in natural order (px2 before px10), so a key only a few requests carry (a
 * debugging field the model ignores) does not make every other sample unusable. Classes: the
 * configured ones, else every label in natural order. Depends only on its arguments, so the same
 * snapshot always gives the same columns. Samples lacking a feature or with a label outside
 * configured classes are skipped.
 */
export function buildTrainingSet(samples: readonly LabeledSample[], configuredClasses?: readonly string[], servingFeatureNames?: readonly string[]): TrainingSet {
  const featureNames = servingFeatureNames && servingFeatureNames.length > 0 ? [...servingFeatureNames] : majorityFeatureNames(samples);
  const classes = configuredClasses && configuredClasses.length > 0 ? [...new Set(configuredClasses)] : [...new Set(samples.map((s) => s.label))].sort(naturalCompare);
  const known = new Set(classes);
  const rows: TrainingRow[] = [];
  let skipped = 0;
  for (const s of samples) {
    const vector = featureNames.map((name) => s.features[name]);
    if (!known.has(s.label) || vector.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      skipped++;
      continue;
    }
    rows.push({ requestId: s.requestId, features: s.features, vector: vector as number[], label: s.label });
  }
  return { featureNames, classes, rows, skipped };
}

function majorityFeatureNames(samples: readonly LabeledSample[]): string[] {
  const featureCounts = new Map<string, number>();
  for (const s of samples) for (const k of Object.keys(s.features)) featureCounts.set(k, (featureCounts.get(k) ?? 0) + 1);
  return [...featureCounts].filter(([, count]) => count * 2 > samples.length).map(([k]) => k).sort(naturalCompare);
}

export function splitHoldout(rows: readonly TrainingRow[], fraction: number): { train: TrainingRow[]; holdout: TrainingRow[] } {
  const train: TrainingRow[] = [];
  const holdout: TrainingRow[] = [];
  for (const row of rows) (inHoldout(row.requestId, fraction) ? holdout : train).push(row);
  return { train, holdout };
}

// ---------------------------------------------------------------- evaluation

/** Share of rows an ONNX model labels right, reading each row's features in the model's own order; a row it cannot read counts as wrong. */
export async function onnxHoldoutAccuracy(bytes: Uint8Array, rows: readonly TrainingRow[], options: { featureNames?: string[]; classes?: string[] } = {}): Promise<number> {
  if (rows.length === 0) return 0;
  const model = await loadOnnxModel(bytes, {
    ...(options.featureNames && options.featureNames.length > 0 ? { featureNames: options.featureNames } : {}),
    ...(options.classes && options.classes.length > 0 ? { classes: options.classes } : {}),
  });
  try {
    if (model.featureNames.length === 0) throw new ModelError('the model does not name its features; cannot evaluate it on samples');
    const readable: TrainingRow[] = [];
    const vectors: number[][] = [];
    for (const row of rows) {
      const vector = model.featureNames.map((name) => row.features[name]);
      if (vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        readable.push(row);
        vectors.push(vector as number[]);
      }
    }
    let correct = 0;
    const BATCH = 4096;
    for (let i = 0; i < vectors.length; i += BATCH) {
      const predictions = await model.predictBatch(vectors.slice(i, i + BATCH));
      predictions.forEach((p, j) => {
        if (p.label === readable[i + j]?.label) correct++;
      });
    }
    return correct / rows.length;
  } finally {
    await model.close();
  }
}

/** ONNX bytes of a ledger version: inline, or from its file:// URI. */
export function versionOnnxBytes(version: Pick<ModelVersion, 'onnx' | 'onnxUri' | 'category' | 'version'>): Uint8Array {
  if (version.onnx) return version.onnx;
  if (version.onnxUri?.startsWith('file:')) return readFileSync(fileURLToPath(version.onnxUri));
  throw new ModelError(`model version ${version.category}/${version.version} has neither inline ONNX bytes nor a file:// onnxUri`);
}

// ---------------------------------------------------------------- one trigger

export interface TrainingOutcome {
  decision: TrainerDecision;
  /** The candidate's ONNX bytes (also when rejected); absent when nothing was trained. */
  onnx?: Uint8Array;
  /** The version handed to the ledger when promoted. */
  published?: NewModelVersion;
}

export interface TrainOnTriggerDeps {
  log: Pick<TrainerLog, 'read'>;
  writerSchema: WriterSchemaLookup;
  ledger: LedgerPort;
  settings: TrainerSettings;
  classesFor?: (category: string) => readonly string[] | undefined;
  logger?: Logger;
  now?: () => number;
  onProgress?: (progress: TrainerProgress) => void;
}

/** Trains, evaluates and decides on one trigger; publishes the candidate when the gate passes. */
export async function trainOnTrigger(trigger: RetrainTrigger, deps: TrainOnTriggerDeps): Promise<TrainingOutcome> {
  const logger = deps.logger ?? silentLogger();
  const now = deps.now ?? Date.now;
  const { settings } = deps;
  const { category, triggerId } = trigger;
  const progress = (p: TrainerProgress): void => deps.onProgress?.(p);
  const serving = await deps.ledger.latest(category);
  // serving sequence + 1, or `<that>.1`, `.2`, ... when a version published by hand already took the label
  const usedLabels = new Set(deps.ledger.versions ? await deps.ledger.versions(category) : []);
  const nextSequence = String((serving?.sequence ?? 0) + 1);
  let candidateVersion = nextSequence;
  for (let n = 1; usedLabels.has(candidateVersion); n++) candidateVersion = `${nextSequence}.${n}`;
  const decision: TrainerDecision = {
    triggerId,
    category,
    decision: 'skipped',
    reason: '',
    message: '',
    candidateVersion,
    candidateSha256: '',
    candidateAccuracy: null,
    servingVersion: serving?.version ?? '',
    servingAccuracy: null,
    holdoutSize: 0,
    trainSize: 0,
    sampleCount: 0,
    skippedSamples: 0,
    iterations: 0,
    decidedAt: 0,
  };
  const decide = (kind: DecisionKind, reason: string, message: string): TrainerDecision => {
    Object.assign(decision, { decision: kind, reason, message, decidedAt: now() });
    progress({ phase: 'decided', triggerId, category, decision });
    return decision;
  };

  if (serving?.trainer === TRAINER_ID && serving.trainingSnapshot && sameSnapshot(serving.trainingSnapshot, trigger.snapshot)) {
    return { decision: decide('skipped', 'already-trained', `version ${serving.version} was already trained on this snapshot`) };
  }
  if (serving !== undefined && serving.version !== trigger.servingVersion) {
    // a new serving version ends the trigger (retraining.md): e.g. an external trainer already handled it,
    // or an operator rolled back; training on it would judge a version the trigger never looked at
    return {
      decision: decide(
        'skipped',
        'superseded',
        `the trigger judged version "${trigger.servingVersion}" but version ${serving.version} has been published since; the trigger counts new samples for it`,
      ),
    };
  }

  progress({ phase: 'reading', triggerId, category });
  let undecodable = 0;
  const samples = await readSnapshotSamples(deps.log, deps.writerSchema, trigger.snapshot, category, () => undecodable++);
  if (undecodable > 0) logger.warn({ triggerId, category, undecodable }, 'trainer: samples that could not be decoded were left out');
  const set = buildTrainingSet(samples, deps.classesFor?.(category), serving?.featureNames);
  const { train, holdout } = splitHoldout(set.rows, settings.holdoutFraction);
  Object.assign(decision, { sampleCount: samples.length, skippedSamples: set.skipped, trainSize: train.length, holdoutSize: holdout.length });
  if (samples.length !== trigger.snapshot.sampleCount) {
    logger.warn({ triggerId, category, expected: trigger.snapshot.sampleCount, found: samples.length }, 'trainer: the snapshot holds a different number of samples than the trigger counted (compaction or retention?)');
  }
  if (train.length < settings.minTrainSamples || holdout.length < settings.minHoldoutSamples) {
    return {
      decision: decide('skipped', 'too-few-samples', `${train.length} training and ${holdout.length} holdout samples; need ${settings.minTrainSamples} and ${settings.minHoldoutSamples}`),
    };
  }
  if (new Set(train.map((r) => r.label)).size < 2 || set.classes.length < 2) {
    return { decision: decide('skipped', 'too-few-classes', 'the training samples hold fewer than 2 classes') };
  }

  logger.info({ triggerId, category, trainSize: train.length, holdoutSize: holdout.length, features: set.featureNames.length, classes: set.classes.length }, 'trainer: training');
  const started = Date.now();
  let finalLoss = Number.NaN;
  const model: LogisticModel = await trainInWorker(
    {
      rows: train.map((r) => ({ features: r.vector, label: r.label })),
      featureNames: set.featureNames,
      classes: set.classes,
      options: { l2: settings.l2, maxIterations: settings.maxIterations, tolerance: settings.tolerance },
    },
    ({ iteration, loss }) => {
      decision.iterations = iteration;
      finalLoss = loss;
      if (iteration === 1 || iteration % settings.progressEveryIterations === 0) logger.info({ triggerId, category, iteration, loss }, 'trainer: iteration');
      progress({ phase: 'training', triggerId, category, iteration, loss, maxIterations: settings.maxIterations });
    },
  );
  const onnx = exportOnnx(model, { version: candidateVersion, category });
  decision.candidateSha256 = modelSha256(onnx);
  logger.info({ triggerId, category, iterations: decision.iterations, loss: finalLoss, seconds: (Date.now() - started) / 1000 }, 'trainer: trained');

  progress({ phase: 'evaluating', triggerId, category });
  decision.candidateAccuracy = await onnxHoldoutAccuracy(onnx, holdout);
  if (serving) {
    try {
      decision.servingAccuracy = await onnxHoldoutAccuracy(versionOnnxBytes(serving), holdout, { featureNames: serving.featureNames, classes: serving.classes });
    } catch (err) {
      // A serving model that cannot run gets nothing right, so a working candidate replaces it.
      logger.error({ err, triggerId, category, servingVersion: serving.version }, 'trainer: the serving version cannot be evaluated; counting its accuracy as 0');
      decision.servingAccuracy = 0;
    }
  }

  const servingAccuracy = decision.servingAccuracy;
  const candidateAccuracy = decision.candidateAccuracy;
  if (servingAccuracy !== null && candidateAccuracy < servingAccuracy + settings.minImprovement) {
    return {
      decision: decide('rejected', 'candidate-worse', `candidate ${fmt(candidateAccuracy)} < serving ${fmt(servingAccuracy)}${settings.minImprovement !== 0 ? ` + ${settings.minImprovement}` : ''} on ${holdout.length} holdout samples`),
      onnx,
    };
  }

  const metrics: Record<string, number> = {
    holdoutAccuracy: candidateAccuracy,
    holdoutSize: holdout.length,
    trainSize: train.length,
    trainIterations: decision.iterations,
    trainLoss: finalLoss,
  };
  if (servingAccuracy !== null) metrics.servingHoldoutAccuracy = servingAccuracy;
  const published: NewModelVersion = {
    category,
    version: candidateVersion,
    createdAt: now(),
    onnx: Buffer.from(onnx),
    onnxUri: null,
    modelSha256: decision.candidateSha256,
    featureNames: set.featureNames,
    classes: set.classes,
    metrics,
    trainingSnapshot: { topic: trigger.snapshot.topic, offsets: trigger.snapshot.offsets.map((o) => ({ ...o })), sampleCount: samples.length },
    trainer: TRAINER_ID,
  };
  await deps.ledger.publishVersion(published);
  const message =
    servingAccuracy === null
      ? `first version of the category: holdout accuracy ${fmt(candidateAccuracy)}`
      : `candidate ${fmt(candidateAccuracy)} >= serving ${fmt(servingAccuracy)} on ${holdout.length} holdout samples`;
  return { decision: decide('promoted', servingAccuracy === null ? 'no-serving-version' : 'candidate-not-worse', message), onnx, published };
}

function sameSnapshot(a: Pick<TrainingSnapshot, 'topic' | 'offsets'>, b: Pick<TrainingSnapshot, 'topic' | 'offsets'>): boolean {
  if (a.topic !== b.topic || a.offsets.length !== b.offsets.length) return false;
  const key = (o: { partition: number; offset: number }): string => `${o.partition}:${o.offset}`;
  const left = a.offsets.map(key).sort();
  const right = b.offsets.map(key).sort();
  return left.every((k, i) => k === right[i]);
}

function fmt(x: number): string {
  return x.toFixed(4);
}

// ---------------------------------------------------------------- the job

export interface TrainerJobOptions {
  log: TrainerLog;
  writerSchema: WriterSchemaLookup;
  ledger: LedgerPort;
  settings: TrainerSettings;
  topics: { triggers: string; /** null: decisions are only logged. */ decisions: string | null };
  /** Names the consumer group `<applicationId>.trainer`. */
  applicationId: string;
  classesFor?: (category: string) => readonly string[] | undefined;
  logger?: Logger;
  metrics?: EngineMetrics;
  now?: () => number;
  onProgress?: (progress: TrainerProgress) => void;
}

/**
 * Reads `retrain-triggers` from the committed position of group `<applicationId>.trainer`, handles
 * each trigger, then commits the decision record and the new position in one atomic write. When a
 * category has several triggers waiting, only the newest is trained (the others are `superseded`).
 * Re-handling a trigger after a crash is harmless: a version already trained on the same snapshot is
 * detected in the ledger (`already-trained`).
 */
export class TrainerJob {
  readonly group: string;
  private readonly logger: Logger;
  private readonly metrics: ProcessorMetrics | undefined;
  private readonly now: () => number;

  constructor(private readonly options: TrainerJobOptions) {
    this.group = `${options.applicationId}.trainer`;
    this.logger = options.logger ?? silentLogger();
    this.metrics = options.metrics?.forProcessor('trainer', 'trainer-job');
    this.now = options.now ?? Date.now;
  }

  /** Handles every trigger waiting now; resolves to the decisions made, in order. */
  async processPending(): Promise<TrainerDecision[]> {
    const { log, topics } = this.options;
    const owned = log.ownedPartitions ? await log.ownedPartitions(topics.triggers) : [...Array(await log.partitions(topics.triggers)).keys()];
    const decisions: TrainerDecision[] = [];
    for (const p of owned) {
      const from = (await log.committedOffset(this.group, topics.triggers, p)) ?? 0;
      const records = await log.read(topics.triggers, p, from, 1000);
      const triggers = records.map((r) => ({ offset: r.offset, trigger: this.decodeTrigger(r.value, p, r.offset) }));
      const newest = new Map<string, number>();
      for (const t of triggers) if (t.trigger) newest.set(t.trigger.category, t.offset);
      for (const { offset, trigger } of triggers) {
        let decision: TrainerDecision | undefined;
        if (trigger && newest.get(trigger.category) !== offset) {
          decision = this.plainDecision(trigger, 'skipped', 'superseded', 'a newer trigger of the category is waiting');
          this.report(decision);
        } else if (trigger) {
          decision = await this.handle(trigger);
          if (decision === undefined) return decisions; // retriable failure: try again on the next poll
        }
        await this.commit(p, offset + 1, decision);
        if (decision) decisions.push(decision);
      }
    }
    return decisions;
  }

  /** Polls for triggers until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let handled = 0;
      try {
        handled = (await this.processPending()).length;
      } catch (err) {
        this.logger.error({ err }, 'trainer: polling failed');
      }
      if (handled === 0 && !signal.aborted) await this.options.log.waitForAppend(this.options.settings.pollIntervalMs);
    }
  }

  private async handle(trigger: RetrainTrigger): Promise<TrainerDecision | undefined> {
    const started = Date.now();
    try {
      const { decision } = await trainOnTrigger(trigger, {
        log: this.options.log,
        writerSchema: this.options.writerSchema,
        ledger: this.options.ledger,
        settings: this.options.settings,
        logger: this.logger,
        now: this.now,
        ...(this.options.classesFor ? { classesFor: this.options.classesFor } : {}),
        ...(this.options.onProgress ? { onProgress: this.options.onProgress } : {}),
      });
      this.metrics?.observe('training-seconds', (Date.now() - started) / 1000);
      this.report(decision);
      return decision;
    } catch (err) {
      if (err instanceof SampleloopError && err.retriable) {
        this.logger.warn({ err, triggerId: trigger.triggerId }, 'trainer: retriable failure; the trigger will be handled again');
        this.metrics?.count('retried');
        return undefined;
      }
      const decision = this.plainDecision(trigger, 'failed', 'error', errorMessage(err));
      this.logger.error({ err, triggerId: trigger.triggerId, category: trigger.category }, 'trainer: trigger failed');
      this.report(decision);
      return decision;
    }
  }

  private report(decision: TrainerDecision): void {
    this.metrics?.count(decision.decision);
    this.metrics?.note('decision', {
      category: decision.category,
      decision: decision.decision,
      reason: decision.reason,
      candidateVersion: decision.candidateVersion,
      candidateAccuracy: decision.candidateAccuracy,
      servingVersion: decision.servingVersion,
      servingAccuracy: decision.servingAccuracy,
      holdoutSize: decision.holdoutSize,
      sampleCount: decision.sampleCount,
      decidedAt: decision.decidedAt,
    });
    const fields = { ...decision };
    if (decision.decision === 'promoted') this.logger.info(fields, 'trainer: candidate promoted');
    else if (decision.decision === 'rejected') this.logger.warn(fields, 'trainer: candidate rejected by the promotion gate');
    else this.logger.info(fields, `trainer: trigger ${decision.decision}`);
  }

  private plainDecision(trigger: RetrainTrigger, kind: DecisionKind, reason: string, message: string): TrainerDecision {
    return {
      triggerId: trigger.triggerId,
      category: trigger.category,
      decision: kind,
      reason,
      message,
      candidateVersion: '',
      candidateSha256: '',
      candidateAccuracy: null,
      servingVersion: trigger.servingVersion,
      servingAccuracy: null,
      holdoutSize: 0,
      trainSize: 0,
      sampleCount: 0,
      skippedSamples: 0,
      iterations: 0,
      decidedAt: this.now(),
    };
  }

  private decodeTrigger(bytes: Buffer | null, partition: number, offset: number): RetrainTrigger | undefined {
    try {
      if (bytes === null) throw new DecodeError('empty record');
      const value = decodeLoggedValue(bytes, this.options.writerSchema) as Partial<RetrainTrigger> | null;
      const snapshot = value?.snapshot;
      if (typeof value?.triggerId !== 'string' || typeof value.category !== 'string' || typeof snapshot?.topic !== 'string' || !Array.isArray(snapshot.offsets)) {
        throw new DecodeError('not a RetrainTrigger (triggerId, category and snapshot are required)');
      }
      const sampleCount = typeof snapshot.sampleCount === 'number' ? snapshot.sampleCount : 0;
      return { servingVersion: '', reason: '', details: {}, createdAt: 0, ...value, snapshot: { topic: snapshot.topic, offsets: snapshot.offsets, sampleCount } } as RetrainTrigger;
    } catch (err) {
      this.metrics?.count('undecodable-trigger');
      this.logger.error({ err, topic: this.options.topics.triggers, partition, offset }, 'trainer: skipping a record that is not a RetrainTrigger');
      return undefined;
    }
  }

  private async commit(partition: number, next: number, decision: TrainerDecision | undefined): Promise<void> {
    const outputs: OutputRecord[] = [];
    const { decisions } = this.options.topics;
    if (decision && decisions !== null) {
      outputs.push({ topic: decisions, key: Buffer.from(decision.category, 'utf8'), value: Buffer.from(JSON.stringify(decision), 'utf8'), timestamp: decision.decidedAt, headers: {} });
    }
    await this.options.log.commit(outputs, [{ group: this.group, topic: this.options.topics.triggers, partition, offset: next }]);
  }
}

/** Runs the job next to the engine; `stop()` aborts the loop and waits for the trigger in progress. */
export function startTrainerLoop(job: TrainerJob, logger: Logger = silentLogger()): { stop(): Promise<void> } {
  const controller = new AbortController();
  const done = job.run(controller.signal).catch((err: unknown) => logger.error({ err }, 'trainer loop stopped'));
  return {
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

export function trainerSettingsFromConfig(config: SampleloopConfig): TrainerSettings {
  const { enabled: _enabled, ...settings } = config.trainer;
  return settings;
}

export interface EmbeddedTrainerOptions {
  /** Replaces the ledger on the models topic (tests). */
  ledger?: LedgerPort;
  onProgress?: (progress: TrainerProgress) => void;
  /** false: do not poll; the caller drives `job.processPending()` (tests). Default true. */
  loop?: boolean;
}

/**
 * The trainer of `startEmbeddedApp` (when `trainer.enabled`): reads the app's log, publishes through
 * the ledger on the models topic (or `deps.ledger`), and runs until `stop()`.
 */
export function startEmbeddedTrainer(
  config: SampleloopConfig,
  deps: { log: EmbeddedLog; registry: SchemaRegistry; logger?: Logger; metrics?: EngineMetrics; now?: () => number } & EmbeddedTrainerOptions,
): { job: TrainerJob; stop(): Promise<void> } {
  const now = deps.now ?? Date.now;
  const job = new TrainerJob({
    log: embeddedTrainerLog(deps.log, [config.topics.retrainTriggers, config.topics.trainerDecisions]),
    writerSchema: (id) => deps.registry.cached(id),
    ledger: deps.ledger ?? ledgerClient(directAccess(deps.log, deps.registry, now), config.topics.models),
    settings: trainerSettingsFromConfig(config),
    topics: { triggers: config.topics.retrainTriggers, decisions: config.topics.trainerDecisions },
    applicationId: config.applicationId,
    classesFor: (category) => config.categories[category]?.classes,
    now,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
  });
  if (deps.loop === false) return { job, stop: () => Promise.resolve() };
  return { job, stop: startTrainerLoop(job, deps.logger).stop };
}

// ---------------------------------------------------------------- ordering helpers

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Digit runs compare as numbers, everything else by code unit: the same order on every machine. */
export function naturalCompare(a: string, b: string): number {
  const re = /\d+|\D+/g;
  const ca = a.match(re) ?? [];
  const cb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i] as string;
    const y = cb[i] as string;
    if (x === y) continue;
    const digits = /^\d/.test(x) && /^\d/.test(y);
    if (digits) {
      const xs = x.replace(/^0+(?=\d)/, '');
      const ys = y.replace(/^0+(?=\d)/, '');
      if (xs.length !== ys.length) return xs.length - ys.length;
      if (xs !== ys) return compareCodeUnits(xs, ys);
      return compareCodeUnits(x, y);
    }
    return compareCodeUnits(x, y);
  }
  return ca.length - cb.length || compareCodeUnits(a, b);
}
