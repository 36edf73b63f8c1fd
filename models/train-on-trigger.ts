/** One trigger: read the snapshot, train a candidate, judge it against the serving version, publish it when the gate passes. */
import { silentLogger, type Logger } from '../engine/logger.js';
import type { WriterSchemaLookup } from '../schemas/codec.js';
import type { RetrainTrigger, TrainingSnapshot } from '../schemas/types.js';
import { onnxHoldoutResults, versionOnnxBytes } from './holdout-evaluation.js';
import type { LogisticModel } from './logistic-regression.js';
import { exportOnnx, modelSha256 } from './onnx-export.js';
import { trainInWorker } from './train-async.js';
import { judgeCandidate } from './promotion-gate.js';
import { blankDecision, type DecisionKind, type TrainerDecision, type TrainerProgress } from './trainer-decision.js';
import { TRAINER_ID, type LedgerPort, type NewModelVersion, type TrainerLog, type TrainerSettings } from './trainer-ports.js';
import { buildTrainingSet, readSnapshotSamples, splitHoldout, type TrainingRow, type TrainingSet } from './training-set.js';

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
  const decision: TrainerDecision = blankDecision({ triggerId, category, candidateVersion, servingVersion: serving?.version ?? '' });
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
  const onIteration = ({ iteration, loss }: { iteration: number; loss: number }): void => {
    if (iteration === 1 || iteration % settings.progressEveryIterations === 0) logger.info({ triggerId, category, iteration, loss }, 'trainer: iteration');
    progress({ phase: 'training', triggerId, category, iteration, loss, maxIterations: settings.maxIterations });
  };
  const candidate = await fitAndExport(train, set, settings, candidateVersion, category, onIteration);
  const onnx = candidate.onnx;
  decision.iterations = candidate.iterations;
  decision.candidateSha256 = modelSha256(onnx);
  logger.info({ triggerId, category, iterations: candidate.iterations, loss: candidate.loss, seconds: candidate.seconds }, 'trainer: trained');

  progress({ phase: 'evaluating', triggerId, category });
  const candidateRight = await onnxHoldoutResults(onnx, holdout);
  decision.candidateAccuracy = share(candidateRight);
  if (serving) {
    let servingRight: boolean[];
    try {
      servingRight = await onnxHoldoutResults(versionOnnxBytes(serving), holdout, { featureNames: serving.featureNames, classes: serving.classes });
    } catch (err) {
      // A serving model that cannot run gets nothing right, so a working candidate replaces it.
      logger.error({ err, triggerId, category, servingVersion: serving.version }, 'trainer: the serving version cannot be evaluated; counting every holdout row as wrong');
      servingRight = holdout.map(() => false);
    }
    decision.servingAccuracy = share(servingRight);
    const verdict = judgeCandidate(candidateRight, servingRight, settings);
    decision.gate = verdict.statistic;
    if (!verdict.promote) return { decision: decide('rejected', verdict.reason, verdict.message), onnx };
    decision.message = verdict.message;
  }

  // The gate judged `candidate`; with refitOnAll the published version learns from the holdout rows too.
  let publishedModel = candidate;
  if (settings.refitOnAll) {
    publishedModel = await fitAndExport(set.rows, set, settings, candidateVersion, category, onIteration);
    logger.info({ triggerId, category, rows: set.rows.length, iterations: publishedModel.iterations, seconds: publishedModel.seconds }, 'trainer: refitted on every sample');
  }
  decision.publishedSha256 = modelSha256(publishedModel.onnx);
  decision.publishedTrainSize = settings.refitOnAll ? set.rows.length : train.length;
  const published = await publishCandidate(deps.ledger, {
    category,
    version: candidateVersion,
    createdAt: now(),
    onnx: Buffer.from(publishedModel.onnx),
    onnxUri: null,
    modelSha256: decision.publishedSha256,
    featureNames: set.featureNames,
    classes: set.classes,
    metrics: versionMetrics(decision, candidate, publishedModel, settings.refitOnAll ? await onnxHoldoutResults(publishedModel.onnx, set.rows) : null),
    trainingSnapshot: { topic: trigger.snapshot.topic, offsets: trigger.snapshot.offsets.map((o) => ({ ...o })), sampleCount: samples.length },
    trainer: TRAINER_ID,
  });
  if (serving === undefined) return { decision: decide('promoted', 'no-serving-version', `first version of the category: holdout accuracy ${fmt(decision.candidateAccuracy)}`), onnx, published };
  return { decision: decide('promoted', 'candidate-better', decision.message), onnx, published };
}

/** The one place the trainer hands a version to the ledger. */
async function publishCandidate(ledger: LedgerPort, version: NewModelVersion): Promise<NewModelVersion> {
  await ledger.publishVersion(version);
  return version;
}

interface FittedModel {
  onnx: Uint8Array;
  iterations: number;
  loss: number;
  seconds: number;
}

async function fitAndExport(
  rows: readonly TrainingRow[],
  set: Pick<TrainingSet, 'featureNames' | 'classes'>,
  settings: TrainerSettings,
  version: string,
  category: string,
  onIteration: (progress: { iteration: number; loss: number }) => void,
): Promise<FittedModel> {
  const started = Date.now();
  let iterations = 0;
  let loss = Number.NaN;
  const model: LogisticModel = await trainInWorker(
    {
      rows: rows.map((r) => ({ features: r.vector, label: r.label })),
      featureNames: set.featureNames,
      classes: set.classes,
      options: { l2: settings.l2, maxIterations: settings.maxIterations, tolerance: settings.tolerance },
    },
    (p) => {
      iterations = p.iteration;
      loss = p.loss;
      onIteration(p);
    },
  );
  return { onnx: exportOnnx(model, { version, category }), iterations, loss, seconds: (Date.now() - started) / 1000 };
}

/**
 * Ledger metrics of a promoted version: the gated candidate's holdout figures (what the gate judged)
 * and, after a refit, the published model's (trained on every row, so its accuracy on them is a
 * training accuracy, not an estimate).
 */
function versionMetrics(decision: TrainerDecision, gated: FittedModel, published: FittedModel, publishedRight: boolean[] | null): Record<string, number> {
  const metrics: Record<string, number> = {
    holdoutAccuracy: decision.candidateAccuracy ?? Number.NaN,
    holdoutSize: decision.holdoutSize,
    trainSize: decision.trainSize,
    trainIterations: gated.iterations,
    trainLoss: gated.loss,
    publishedTrainSize: decision.publishedTrainSize,
    refitOnAll: publishedRight === null ? 0 : 1,
  };
  if (decision.servingAccuracy !== null) metrics.servingHoldoutAccuracy = decision.servingAccuracy;
  if (decision.gate) {
    metrics.gateCandidateOnlyRight = decision.gate.candidateOnlyRight;
    metrics.gateServingOnlyRight = decision.gate.servingOnlyRight;
    if (decision.gate.pValue !== null) metrics.gatePValue = decision.gate.pValue;
  }
  if (publishedRight !== null) {
    metrics.publishedTrainAccuracy = share(publishedRight);
    metrics.publishedTrainIterations = published.iterations;
    metrics.publishedTrainLoss = published.loss;
  }
  return metrics;
}

function share(right: readonly boolean[]): number {
  return right.length === 0 ? 0 : right.filter(Boolean).length / right.length;
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
