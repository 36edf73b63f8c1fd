/** One trigger: read the snapshot, train a candidate, judge it against the serving version, publish it when the gate passes. */
import { silentLogger, type Logger } from '../engine/logger.js';
import type { WriterSchemaLookup } from '../schemas/codec.js';
import type { RetrainTrigger, TrainingSnapshot } from '../schemas/types.js';
import { onnxHoldoutAccuracy, versionOnnxBytes } from './holdout-evaluation.js';
import type { LogisticModel } from './logistic-regression.js';
import { exportOnnx, modelSha256 } from './onnx-export.js';
import { trainInWorker } from './train-async.js';
import type { DecisionKind, TrainerDecision, TrainerProgress } from './trainer-decision.js';
import { TRAINER_ID, type LedgerPort, type NewModelVersion, type TrainerLog, type TrainerSettings } from './trainer-ports.js';
import { buildTrainingSet, readSnapshotSamples, splitHoldout } from './training-set.js';

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
